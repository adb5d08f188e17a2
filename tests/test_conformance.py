"""The conformance suite: it passes on every shipped backend and fails on broken ones.

``FakeChip`` is an independent, minimal backend (exact float product plus seeded noise); with
``fault=none`` it must pass every check, and each fault must fail exactly the checks that
look at what it breaks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lumina_hal import DeviceInfo, Param, PhotonicDevice, Telemetry
from lumina_hal.cli import main
from lumina_hal.errors import LinkError, SafetyLimitError
from lumina_hal.registry import register_driver, unregister_driver
from lumina_hal.testing.conformance import CHECKS, Check
from lumina_hal.testing.selftest import FAIL, run_check, run_selftest

FAULTS = (
    "none", "wrong_rows", "unseeded", "racy", "no_limits", "stale_telemetry", "both_kinds",
    "seek_ignored",
)  # fmt: skip


class FakeChip(PhotonicDevice):
    """A numpy chip: ``x @ W.T`` plus 1e-3 relative noise drawn from (seed, call index)."""

    uri_params = (
        Param("rows", int, 8, "array rows", minimum=1, maximum=64),
        Param("cols", int, 8, "array columns", minimum=1, maximum=64),
        Param("seed", int, 0, "noise seed", minimum=0),
        Param("fault", str, "none", "what to break", choices=FAULTS),
    )

    def __init__(self, rows: int = 8, cols: int = 8, seed: int = 0, fault: str = "none") -> None:
        super().__init__()
        self.rows, self.cols, self.seed, self.fault = rows, cols, seed, fault
        self._temperature_c = 25.0
        self._reset()

    def _open(self) -> None:
        self._reset()

    def _close(self) -> None:
        self._w = None

    def _info(self) -> DeviceInfo:
        kinds = {"simulated", "hardware"} if self.fault == "both_kinds" else {"simulated"}
        return DeviceInfo(
            "Fake", "fake", "F-1", "1.0", self.rows, self.cols, 12, 12, 12,
            frozenset({"seeded", "set_temperature", "noise_position", *kinds}),
        )  # fmt: skip

    def _load_weights(self, weights: np.ndarray) -> str:
        self._w = weights[::-1] if self.fault == "wrong_rows" else weights
        return f"{weights.shape[0]}x{weights.shape[1]}-{hash(weights.tobytes()) & 0xFFFF:04x}"

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        self._scratch = x.astype(np.float64) @ self._w.T  # shared between calls
        if self.fault == "racy":  # drops the device lock for a moment, as for slow I/O
            self._lock.release()
            try:
                time.sleep(0.002)
            finally:
                self._lock.acquire()
        seed = None if self.fault == "unseeded" else [self.seed, self._calls]
        noise = np.random.default_rng(seed).normal(size=out.shape)
        out[...] = self._scratch[: len(out)] * (1 + 1e-3 * noise)  # racy: maybe another call's
        self._calls += 1

    def _telemetry(self) -> Telemetry:
        weights_id = None if self.fault == "stale_telemetry" else self.weights_id
        return Telemetry(self._temperature_c, None, weights_id, {"matmul_calls": self._calls})

    def _read_call_index(self) -> int:
        return self._calls

    def _seek_call_index(self, call_index: int) -> None:
        if self.fault != "seek_ignored":
            self._calls = call_index

    def _reset(self) -> None:
        self._w: Any = None
        self._calls = 0

    def _set_temperature(self, temperature_c: float) -> None:
        if not -40.0 <= temperature_c <= 125.0 and self.fault != "no_limits":
            raise SafetyLimitError(f"{temperature_c} °C is outside [-40, 125] °C")
        self._temperature_c = temperature_c


@pytest.fixture(scope="module", autouse=True)
def fakechip() -> Iterator[None]:
    register_driver("fakechip", FakeChip)
    yield
    unregister_driver("fakechip")


def failed(uri: str) -> dict[str, str]:
    report = run_selftest(uri)
    return {c["name"]: c["reason"] for c in report["checks"] if c["status"] == FAIL}


@pytest.mark.parametrize(
    "uri",
    [
        "mock://?rows=8&cols=12&seed=3",
        "mock://?rows=5&cols=40&seed=2&preset=harsh",  # noisy, odd shape, block < array
        "mock://?physics_model=v2&rows=6&cols=9&seed=2&preset=harsh",  # v2, C engine
        "mock://?physics_model=v2&rows=6&cols=9&seed=2&kernel=reference",  # v2, numpy oracle
        "fpga+sim://?rows=8&cols=12&seed=3",
        "fakechip://?rows=6&cols=4",
    ],
)
def test_every_check_passes_on_a_conforming_device(uri):
    report = run_selftest(uri)
    assert [
        (c["name"], c["status"], c["reason"]) for c in report["checks"] if c["status"] != "pass"
    ] == []
    assert report["passed"] == len(CHECKS) and report["exit_status"] == 0


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("wrong_rows", {"lifecycle", "load_weights", "bad_input", "reset", "accuracy",
                        "thread_safety"}),  # every check that compares results with x @ W.T
        ("unseeded", {"determinism", "noise_position", "thread_safety"}),
        ("racy", {"thread_safety"}),
        ("no_limits", {"temperature"}),
        ("stale_telemetry", {"load_weights", "telemetry"}),
        ("both_kinds", {"info"}),
        ("seek_ignored", {"noise_position"}),
    ],
)  # fmt: skip
def test_a_broken_device_fails_exactly_the_checks_that_look_at_the_fault(fault, expected):
    assert set(failed(f"fakechip://?fault={fault}")) == expected


def test_failure_messages_name_the_problem():
    reasons = failed("fakechip://?fault=wrong_rows&rows=8&cols=8")
    assert re.search(r"SNR -?\d+\.\d dB against x @ W.T is below the 20.0 dB", reasons["accuracy"])
    assert failed("fakechip://?fault=no_limits")["temperature"] == (
        "set_temperature(1000): expected SafetyLimitError, nothing was raised"
    )
    assert re.match(
        r"thread \d call \d: RMS error", failed("fakechip://?fault=racy")["thread_safety"]
    )
    unseeded = failed("fakechip://?fault=unseeded")["thread_safety"]
    assert re.match(r"call \d+ of the recorded order .* differs from the same call made", unseeded)
    assert "'simulated', 'hardware'" in failed("fakechip://?fault=both_kinds")["info"]
    assert failed("fakechip://?fault=seek_ignored")["noise_position"] == (
        "call_index after seek_call_index(1) is 4, expected 1"
    )


def test_an_unexpected_exception_fails_the_check_and_names_its_type():
    def link_drops(uri: str) -> None:
        raise LinkError(f"no answer from {uri}")

    result = run_check(Check("link", link_drops), "x://")
    assert (result.status, result.reason) == (FAIL, "LinkError: no answer from x://")


def test_selftest_command_exit_status_and_json(capsys):
    assert main(["selftest", "fakechip://?fault=no_limits", "-k", "temp"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL  temperature") and "expected SafetyLimitError" in lines[0]
    assert lines[1].startswith("0 passed, 1 failed, 0 skipped in ")
    assert main(["selftest", "mock://?rows=4&cols=4", "--json", "-k", "shape"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("matmul_shapes", "pass")]
    assert main(["selftest", "mock://", "-k", "no-such-check"]) == 2
    assert "no conformance check matches" in capsys.readouterr().err


@pytest.fixture(params=["pty", "tcp"])
def emulator_uri(request) -> Iterator[str]:
    """`lumina-hal sim fpga` in its own process, on a pty or TCP; the URI it prints."""
    where = ["--pty"] if request.param == "pty" else ["--tcp", "127.0.0.1:0"]
    params = ["--param", "rows=8", "--param", "cols=12", "--param", "preset=harsh"]
    command = [sys.executable, "-m", "lumina_hal", "sim", "fpga", *where, *params]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = server.stdout.readline() + server.stdout.readline()
        uri = re.search(r"connect with: (\S+)", printed)
        assert uri, f"the emulator printed {printed!r}"
        yield uri.group(1)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_emulator_over_a_real_transport_passes(emulator_uri, capsys):
    assert main(["selftest", emulator_uri, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {c["name"]: (c["status"], c["reason"]) for c in report["checks"]}
    # fpga:// and fpga+tcp:// drive hardware as far as the driver knows: no 'seeded' promise
    assert statuses.pop("determinism") == (
        "skip",
        "device does not declare the 'seeded' capability",
    )
    assert set(statuses.values()) == {("pass", "")}


_UNDER_O = """
import importlib.util, json, sys
assert False, "asserts are on: this must run under python -O"
spec = importlib.util.spec_from_file_location("conformance_fakes", sys.argv[1])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
from lumina_hal.registry import register_driver
from lumina_hal.testing.selftest import run_selftest
register_driver("fakechip", fakes.FakeChip)
out = {}
for fault in sys.argv[2:]:
    report = run_selftest(f"fakechip://?fault={fault}")
    out[fault] = sorted(c["name"] for c in report["checks"] if c["status"] == "fail")
print(json.dumps({"optimize": sys.flags.optimize, "failed": out}))
"""


def test_suite_fails_a_broken_device_under_python_O():
    """No check is a bare assert: under ``python -O`` broken devices fail exactly as before."""
    faults = {"both_kinds": {"info"}, "no_limits": {"temperature"},
              "stale_telemetry": {"load_weights", "telemetry"},
              "wrong_rows": {"lifecycle", "load_weights", "bad_input", "reset", "accuracy",
                             "thread_safety"}}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-O", "-c", _UNDER_O, __file__, *faults],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["optimize"] == 1
    assert {fault: set(names) for fault, names in report["failed"].items()} == faults


def test_no_bare_assert_in_shipped_checks_and_the_bench():
    """Shipped checks, self-tests, the protocol helper and the safety path never use ``assert``."""
    import ast
    from pathlib import Path

    import lumina_hal

    root = Path(lumina_hal.__file__).resolve().parent
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for folder in ("testing", "bench", "drivers/instruments")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "test_conformance.py"  # the pytest wrapper of the suite
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert len(list((root / "testing").rglob("*.py"))) > 5  # the walk found the files
    assert found == []
