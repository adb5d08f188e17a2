"""FpgaDevice against the in-process emulator (fpga+sim://): the real driver, unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import lumina_hal
from lumina_hal.errors import ConfigurationError, DeviceError, LinkError, SafetyLimitError
from lumina_hal.sim.fpga import firmware as fpga_firmware

PARAMS = "rows=32&cols=24&seed=5&preset=typical"


def workload(batch: int = 300):
    rng = np.random.default_rng(11)
    return rng.uniform(-1, 1, size=(20, 24)), rng.uniform(-1, 1, size=(batch, 24))


def emulator_of(device) -> fpga_firmware.FirmwareEmulator:
    return device._link.port.emulator


def test_fpga_sim_equals_the_twin_bit_for_bit_over_many_frames():
    w, x = workload()
    with lumina_hal.open_device(f"mock://?{PARAMS}") as twin:
        twin_id = twin.load_weights(w)
        expected = [twin.matmul(x), twin.matmul(x[:3]), twin.matmul(x[5])]
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        assert chip.load_weights(w) == twin_id  # same codes on the wire as in the twin
        got = [chip.matmul(x), chip.matmul(x[:3]), chip.matmul(x[5])]
        assert chip.telemetry().counters["runs"] > 3  # the 300-vector batch took several frames
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_schemes_are_registered_and_bad_locations_are_refused():
    schemes = lumina_hal.available_schemes()
    assert {"fpga", "fpga+tcp", "fpga+sim"} <= set(schemes)
    with pytest.raises(ConfigurationError, match="needs a device path"):
        lumina_hal.open_device("fpga://?baudrate=9600")
    with pytest.raises(ConfigurationError, match="needs host:port"):
        lumina_hal.open_device("fpga+tcp://localhost")
    with pytest.raises(ConfigurationError, match="'baudrate'"):
        lumina_hal.open_device("fpga:///dev/null?baudrate=-5")
    with pytest.raises(LinkError, match="cannot open /nonexistent/tty"):
        lumina_hal.open_device("fpga:///nonexistent/tty")


def test_incompatible_firmware_is_refused_at_open(monkeypatch):
    monkeypatch.setattr(fpga_firmware, "FIRMWARE_VERSION", (2, 0, 0))
    with pytest.raises(ConfigurationError, match=r"incompatible firmware 2\.0\.0"):
        lumina_hal.open_device(f"fpga+sim://?{PARAMS}")


def test_a_reboot_is_detected_and_weights_are_never_silently_lost():
    w, x = workload(4)
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        chip.load_weights(w)
        before = chip.matmul(x)
        emulator_of(chip).reboot()
        for _ in range(2):  # and it keeps saying so until weights are loaded again
            with pytest.raises(LinkError, match=r"rebooted.*load_weights again"):
                chip.matmul(x)
        chip.load_weights(w)
        assert chip.matmul(x).shape == before.shape


def test_temperature_limits_are_checked_before_sending():
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        emulator = emulator_of(chip)
        chip.set_temperature(60.0)
        assert emulator.physics.temperature_c == 60.0
        with pytest.raises(SafetyLimitError, match="nothing was sent"):
            chip.set_temperature(500.0)
        assert emulator.physics.temperature_c == 60.0
        assert chip.telemetry().temperature_c == pytest.approx(60.0)


def test_close_puts_the_fpga_in_its_safe_state():
    w, _ = workload()
    chip = lumina_hal.open_device(f"fpga+sim://?{PARAMS}")
    chip.load_weights(w)
    emulator = emulator_of(chip)
    assert emulator.weight_id == 1
    chip.close()
    assert emulator.weight_id == 0 and emulator.chip.codes is None


def test_lost_replies_are_retransmitted_and_never_applied_twice():
    w, x = workload(8)
    with lumina_hal.open_device(f"mock://?{PARAMS}") as twin:
        twin.load_weights(w)
        expected = twin.matmul(x)
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}&timeout=0.01") as chip:
        chip.load_weights(w)
        port = chip._link.port
        real_write, dropped = port.write, []

        def lossy_write(data):
            n = real_write(data)
            if len(dropped) < 2:  # lose the FPGA's first two replies
                dropped.append(port.in_waiting)
                port.reset_input_buffer()
            return n

        port.write = lossy_write
        np.testing.assert_array_equal(chip.matmul(x), expected)
        assert chip._link.retransmissions == 2
        assert emulator_of(chip).counters["runs"] == 1  # executed once, answered three times


def test_device_errors_carry_the_fpga_code():
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        with pytest.raises(DeviceError, match="OUT_OF_RANGE") as info:
            chip._link.request(0x10, b"\x01\x00\x00\x00" + b"\xff\xff\x01\x00" + bytes(8))
        assert info.value.code == 6
