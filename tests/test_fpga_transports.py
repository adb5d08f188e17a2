"""The real driver against the emulator in a separate process, over a pty and over TCP."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import lumina_hal

PARAMS = {"rows": 16, "cols": 12, "seed": 4, "preset": "harsh"}


@contextlib.contextmanager
def serve(kind: str, params: dict[str, object]) -> Iterator[str]:
    """Start `lumina-hal sim fpga` as its own process; yield the URI it prints."""
    where = ["--pty"] if kind == "pty" else ["--tcp", "127.0.0.1:0"]
    args = [sys.executable, "-m", "lumina_hal", "sim", "fpga", *where]
    for name, value in params.items():
        args += ["--param", f"{name}={value}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        match = re.search(r"connect with: (\S+)", "".join(lines))
        assert match, f"no URI printed: {lines!r} {proc.stderr.read() if proc.poll() else ''}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["pty", "tcp"])
def served_uri(request):
    with serve(request.param, PARAMS) as uri:
        yield uri


def test_driver_over_a_real_transport_equals_the_twin(served_uri):
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, size=(16, 12))
    x = rng.uniform(-1, 1, size=(700, 12))  # several RUN frames
    with lumina_hal.open_device("mock://", **PARAMS) as twin:
        twin_id = twin.load_weights(w)
        expected = [twin.matmul(x), twin.matmul(x[:5])]
    with lumina_hal.open_device(served_uri) as chip:
        assert chip.info.rows == 16 and "emulator" in chip.info.model
        assert chip.load_weights(w) == twin_id
        got = [chip.matmul(x), chip.matmul(x[:5])]
        chip.set_temperature(70.0)
        assert chip.telemetry().temperature_c == pytest.approx(70.0)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    with lumina_hal.open_device(served_uri) as again:  # the server outlives a client
        assert again.info.serial == "TWIN-0000000000000004"


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_corrupted_frames_over_a_real_transport_are_nakked_and_results_stay_exact(kind):
    """5 % of frames each way get a flipped bit: requests are NAKed and resent, replies time
    out and are resent, and every result still equals the twin's."""
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, size=(16, 12))
    xs = rng.uniform(-1, 1, size=(150, 2, 12))
    with lumina_hal.open_device("mock://", **PARAMS) as twin:
        twin.load_weights(w)
        expected = [twin.matmul(x) for x in xs]
    faults = {**PARAMS, "fault_corrupt": 0.05, "fault_seed": 2}
    with serve(kind, faults) as uri, lumina_hal.open_device(f"{uri}?timeout=0.01") as chip:
        chip.load_weights(w)
        for x, want in zip(xs, expected, strict=True):
            np.testing.assert_array_equal(chip.matmul(x), want)
        assert chip.telemetry().counters["crc_errors"] > 0  # the NAK path was taken
