"""The pytest plugin of Lumina HAL: the device under test as an option, fixtures and markers.

Installed with the package (entry point ``pytest11``); docs/conformance.md, section 6.

- ``--lumina-device URI`` (default ``$LUMINA_DEVICE``, else a small seeded twin);
- fixtures ``lumina_device_uri`` (session) and ``lumina_device`` (opened per test);
- ``lumina_calibration`` (session: one quick calibration of the device under test, a
  ``CalibrationSnapshot``) and ``lumina_calibrated_device`` (the device opened per test with
  that snapshot applied; docs/calibration.md);
- markers ``requires_capability(...)`` and ``hardware``, which skip with the reason;
- ``--lumina-bench FILE|coupled`` (default ``$LUMINA_BENCH``, else the simulated bench shipped
  in the package; ``coupled`` serves the coupled simulated bench for the session), fixtures
  ``lumina_bench`` and one per role (``lumina_laser``, ``lumina_power_meter``, ``lumina_tec``),
  and ``lumina_sim_visa`` (fresh pyvisa-sim state for one test).

The plugin only acts on tests that use its fixtures or markers. Each kind of resource adds
its options in its own ``_add_*_options`` function and keeps its state in its own stash
entry (the bench will sit next to the device).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumina_hal.calibration import CalibratedDevice, CalibrationSnapshot, calibrate
from lumina_hal.device import Capability, PhotonicDevice
from lumina_hal.errors import ConfigurationError
from lumina_hal.registry import DEFAULT_URI_ENV as DEVICE_ENV
from lumina_hal.registry import open_device

#: The device used when neither --lumina-device nor $LUMINA_DEVICE names one.
DEFAULT_DEVICE_URI = "mock://?rows=16&cols=16&seed=1"

MARKERS = (
    "requires_capability(*capabilities): skip unless the device under test declares each "
    "lumina_hal.Capability given (member or value, e.g. 'set_temperature')",
    "hardware: skip unless the device under test is real (declares the 'hardware' capability)",
)


class DeviceUnderTest:
    """The URI the run tests against and, read once on first need, the device's capabilities."""

    def __init__(self, uri: str, source: str) -> None:
        self.uri = uri
        self.source = source
        self._capabilities: frozenset[str] | None = None
        self._error = ""

    def capabilities(self) -> frozenset[str]:
        """``info.capabilities`` of the device (opened and closed once per session)."""
        if self._capabilities is None and not self._error:
            try:
                with open_device(self.uri) as device:
                    self._capabilities = device.info.capabilities
            except Exception as exc:
                self._error = f"cannot open the device under test {self.uri}: {exc}"
        if self._capabilities is None:
            pytest.fail(self._error, pytrace=False)
        return self._capabilities


_DEVICE_KEY = pytest.StashKey[DeviceUnderTest]()


def _add_device_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        "--lumina-device",
        metavar="URI",
        default=None,
        help=f"device under test (default: ${DEVICE_ENV}, else {DEFAULT_DEVICE_URI})",
    )


def _device_under_test(config: pytest.Config) -> DeviceUnderTest:
    option = config.getoption("lumina_device")
    if option:
        return DeviceUnderTest(option, "--lumina-device")
    env = os.environ.get(DEVICE_ENV, "").strip()
    if env:
        return DeviceUnderTest(env, f"${DEVICE_ENV}")
    return DeviceUnderTest(DEFAULT_DEVICE_URI, "default")


def _add_bench_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        "--lumina-bench",
        metavar="FILE|coupled",
        default=None,
        help="bench file for the bench fixtures (default: $LUMINA_BENCH, else the simulated "
        "bench shipped with lumina_hal); 'coupled' serves the coupled simulated bench",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lumina_hal", "Lumina HAL devices under test")
    _add_device_options(group)
    _add_bench_options(group)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[_DEVICE_KEY] = _device_under_test(config)


def pytest_report_header(config: pytest.Config) -> str:
    dut = config.stash[_DEVICE_KEY]
    return f"lumina-hal device: {dut.uri} (from {dut.source})"


def _capability_value(value: object) -> str:
    """The Capability value of a marker argument; the test errors on an unknown name."""
    try:
        return Capability(value).value
    except ValueError:
        known = ", ".join(c.value for c in Capability)
        pytest.fail(
            f"requires_capability({value!r}): unknown capability; known: {known}", pytrace=False
        )


@pytest.hookimpl(tryfirst=True)  # skip before any fixture opens the device
def pytest_runtest_setup(item: pytest.Item) -> None:
    markers = list(item.iter_markers("requires_capability"))
    hardware = item.get_closest_marker("hardware") is not None
    if not markers and not hardware:
        return
    dut = item.config.stash[_DEVICE_KEY]
    for marker in markers:
        if not marker.args:
            pytest.fail("requires_capability needs at least one capability", pytrace=False)
        for wanted in map(_capability_value, marker.args):
            if wanted not in dut.capabilities():
                pytest.skip(f"device {dut.uri} lacks capability {wanted!r}")
    if hardware and Capability.HARDWARE.value not in dut.capabilities():
        pytest.skip(
            f"needs real hardware: {dut.uri} is simulated (it does not declare the 'hardware' "
            "capability); give a real device with --lumina-device URI"
        )


@pytest.fixture(scope="session")
def lumina_device_uri(pytestconfig: pytest.Config) -> str:
    """The URI of the device under test (--lumina-device, $LUMINA_DEVICE or the default twin)."""
    return pytestconfig.stash[_DEVICE_KEY].uri


@pytest.fixture
def lumina_device(lumina_device_uri: str) -> Iterator[PhotonicDevice]:
    """The device under test, opened for this test and closed after it."""
    with open_device(lumina_device_uri) as device:
        yield device


@pytest.fixture(scope="session")
def lumina_calibration(lumina_device_uri: str) -> CalibrationSnapshot:
    """One quick calibration of the device under test, taken once per session."""
    with open_device(lumina_device_uri) as device:
        return calibrate(device, mode="quick")


@pytest.fixture
def lumina_calibrated_device(
    lumina_device_uri: str, lumina_calibration: CalibrationSnapshot
) -> Iterator[PhotonicDevice]:
    """The device under test with the session's calibration applied, opened for this test."""
    with CalibratedDevice(open_device(lumina_device_uri), lumina_calibration) as device:
        yield device


# --- the bench ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lumina_bench_file(pytestconfig: pytest.Config) -> Iterator[Path]:
    """The bench file the bench fixtures open (see --lumina-bench)."""
    from lumina_hal.bench import BENCH_ENV, load_bench_config

    choice = pytestconfig.getoption("lumina_bench") or os.environ.get(BENCH_ENV, "").strip()
    if choice == "coupled":
        from lumina_hal.sim.coupled_bench import CoupledBench

        with CoupledBench() as sim, tempfile.TemporaryDirectory() as folder:
            yield sim.write_bench(Path(folder) / "coupled_bench.toml")
        return
    path = load_bench_config(choice or None).path
    if path is None:  # a loaded file always has one; never a bare assert in shipped code
        raise ConfigurationError("the bench configuration names no file")
    yield path


@pytest.fixture
def lumina_sim_visa() -> Iterator[str]:
    """Fresh pyvisa-sim instruments for one test (their state is shared per process)."""
    from lumina_hal.drivers.instruments.visa_backends import reset_simulated_instruments

    reset_simulated_instruments()
    yield "@sim"
    reset_simulated_instruments()


@pytest.fixture
def lumina_bench(lumina_bench_file: Path, lumina_sim_visa: str) -> Iterator[Any]:
    """The bench, opened for this test; leaving the test applies every safe state."""
    from lumina_hal.bench import open_bench

    with open_bench(lumina_bench_file) as bench:
        yield bench


def _role(bench: Any, name: str) -> Any:
    part = getattr(bench, name)
    if part is None:
        pytest.skip(f"the bench {bench.config.path} has no [{name}] section")
    return part


@pytest.fixture
def lumina_laser(lumina_bench: Any) -> Any:
    """The bench's Laser (skips when the bench has none)."""
    return _role(lumina_bench, "laser")


@pytest.fixture
def lumina_power_meter(lumina_bench: Any) -> Any:
    """The bench's PowerMeter (skips when the bench has none)."""
    return _role(lumina_bench, "power_meter")


@pytest.fixture
def lumina_tec(lumina_bench: Any) -> Any:
    """The bench's TemperatureController (skips when the bench has none)."""
    return _role(lumina_bench, "tec")
