"""The pytest plugin, run in pytester sessions: option, fixtures, markers, conformance tests."""

from __future__ import annotations

import pytest

from lumina_hal.testing.pytest_plugin import DEFAULT_DEVICE_URI

pytest_plugins = ["pytester"]

# Drivers for the inner sessions: a "real" chip (declares hardware, nothing else) and a chip
# whose results are negated. Registered at import, so they exist before any test is set up.
CONFTEST = """
from dataclasses import replace

import numpy as np

from lumina_hal.twin.device import MockDevice
from lumina_hal.registry import register_driver, unregister_driver


class RealChip(MockDevice):
    def _info(self):
        return replace(super()._info(), capabilities=frozenset({"hardware"}))


class NegatingChip(MockDevice):
    def _matmul(self, x, out):
        super()._matmul(x, out)
        np.negative(out, out=out)


register_driver("realchip", RealChip)
register_driver("negchip", NegatingChip)


def pytest_unconfigure(config):
    unregister_driver("realchip")
    unregister_driver("negchip")
"""

MARKED = """
import pytest
from lumina_hal import Capability


@pytest.mark.requires_capability(Capability.SET_TEMPERATURE)
def test_sets_temperature(lumina_device):
    lumina_device.set_temperature(30.0)


@pytest.mark.requires_capability("hardware")
def test_needs_the_hardware_capability():
    pass


@pytest.mark.hardware
def test_on_a_real_chip(lumina_device):
    assert "hardware" in lumina_device.info.capabilities
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("LUMINA_DEVICE", raising=False)
    pytester.makeconftest(CONFTEST)
    # hypothesis' plugin costs 0.7 s per in-process session and is not used in them
    pytester.makeini("[pytest]\naddopts = -p no:hypothesispytest\n")
    return pytester


def test_markers_skip_with_a_reason_on_the_default_twin(inner):
    inner.makepyfile(MARKED)
    result = inner.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            f"lumina-hal device: {DEFAULT_DEVICE_URI} (from default)",
            f"SKIPPED *device {DEFAULT_DEVICE_URI} lacks capability 'hardware'",
            f"SKIPPED *needs real hardware: {DEFAULT_DEVICE_URI} is simulated*",
        ]
    )


def test_markers_run_hardware_tests_on_a_real_device(inner):
    inner.makepyfile(MARKED)
    result = inner.runpytest("-rs", "--lumina-device", "realchip://?rows=4&cols=4")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *lacks capability 'set_temperature'"])


def test_the_device_option_the_environment_and_the_fixture_lifetime(inner, monkeypatch):
    inner.makepyfile(
        """
        opened = []

        def test_device_is_the_option(lumina_device, lumina_device_uri):
            assert lumina_device_uri == "mock://?rows=5&cols=3"
            assert lumina_device.is_open and lumina_device.info.rows == 5
            opened.append(lumina_device)

        def test_closed_after_its_test(lumina_device):
            assert not opened[0].is_open and lumina_device is not opened[0]
        """
    )
    inner.runpytest("--lumina-device", "mock://?rows=5&cols=3").assert_outcomes(passed=2)
    monkeypatch.setenv("LUMINA_DEVICE", "mock://?rows=5&cols=3")
    result = inner.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["lumina-hal device: mock://?rows=5&cols=3 (from $LUMINA_DEVICE)"])


def test_unknown_capability_and_unopenable_device_are_errors(inner):
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.requires_capability("telepathy")
        def test_typo():
            pass

        @pytest.mark.hardware
        def test_hw():
            pass
        """
    )
    result = inner.runpytest("-k", "typo")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*requires_capability('telepathy'): unknown capability; known:*"])
    result = inner.runpytest("-k", "hw", "--lumina-device", "mock://?rowz=4")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot open the device under test mock://?rowz=4*'rowz'*"])


def test_conformance_tests_pass_skip_and_fail_through_the_plugin(inner):
    passed = inner.runpytest("--pyargs", "lumina_hal.testing.conformance", "--lumina-device", "mock://")
    passed.assert_outcomes(passed=14)
    coarse = inner.runpytest(
        "--pyargs", "lumina_hal.testing.conformance", "-k", "accuracy", "-rs",
        "--lumina-device", "mock://?rows=4&cols=4&output_bits=3",
    )  # fmt: skip
    coarse.assert_outcomes(skipped=1, deselected=13)
    coarse.stdout.fnmatch_lines(["SKIPPED *converters of 3 bits are too coarse*"])
    broken = inner.runpytest(
        "--pyargs", "lumina_hal.testing.conformance", "-k", "accuracy or telemetry",
        "--lumina-device", "negchip://?rows=4&cols=4",
    )  # fmt: skip
    broken.assert_outcomes(passed=1, failed=1, deselected=12)
    assert broken.ret == pytest.ExitCode.TESTS_FAILED
    broken.stdout.fnmatch_lines(
        ["E * SNR -*dB against x @ W.T is below the 20.0 dB threshold*", "FAILED *[[]accuracy]*"]
    )


def test_bench_fixtures_on_the_coupled_bench(pytester):
    pytester.makepyfile(
        """
        import lumina_hal

        def test_roles(lumina_bench, lumina_laser, lumina_power_meter, lumina_tec):
            assert isinstance(lumina_laser, lumina_hal.Laser)
            assert isinstance(lumina_tec, lumina_hal.TemperatureController)
            lumina_laser.power_dbm = 10.0
            lumina_laser.on()
            assert lumina_power_meter.read_power_w() > 1e-5
            assert lumina_bench.chip.info.rows == 16
        """
    )
    result = pytester.runpytest("-p", "no:hypothesispytest", "--lumina-bench", "coupled")
    result.assert_outcomes(passed=1)


def test_bench_fixtures_skip_a_role_the_bench_lacks(pytester, tmp_path):
    bench = tmp_path / "chip_only.toml"
    bench.write_text('[chip]\nuri = "mock://?rows=4&cols=4"\n')
    pytester.makepyfile(
        """
        def test_needs_a_laser(lumina_laser):
            raise AssertionError("must not run")

        def test_chip(lumina_bench):
            assert lumina_bench.chip.info.rows == 4
        """
    )
    result = pytester.runpytest("-p", "no:hypothesispytest", "--lumina-bench", str(bench), "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*has no [[]laser[]] section*"])


def test_calibrated_device_fixture(inner):
    inner.makepyfile(
        """
        import numpy as np

        def test_calibrated(lumina_calibrated_device, lumina_calibration, lumina_device):
            assert "calibrated" in lumina_calibrated_device.info.capabilities
            assert lumina_calibration.serial == lumina_calibrated_device.info.serial
            assert lumina_calibration.crosstalk_edge > 0.005
            counters = lumina_calibrated_device.telemetry().counters
            assert counters["calibration_temperature_mk"] == 45000
            w = np.random.default_rng(0).uniform(-1, 1, (16, 16))
            x = np.random.default_rng(1).uniform(-1, 1, (64, 16))
            errors = []
            for dev in (lumina_device, lumina_calibrated_device):
                dev.load_weights(w)
                errors.append(np.linalg.norm(dev.matmul(x) - x @ w.T))
            assert errors[1] < errors[0] / 5

        def test_same_snapshot_for_the_session(lumina_calibration):
            assert lumina_calibration.mode == "quick"
        """
    )
    uri = "mock://?rows=16&cols=16&seed=1&fab_sigma=0.01&crosstalk=0.01"
    inner.runpytest("--lumina-device", uri).assert_outcomes(passed=2)
