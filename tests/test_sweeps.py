"""Temperature sweep: SNR falls with temperature on the typical twin; record and PNG."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

import lumina_hal
from lumina_hal.device import Capability, DeviceInfo
from lumina_hal.errors import ConfigurationError, UnsupportedOperationError
from lumina_hal.runs.sweeps import plot_snr_vs_temperature, temperature_steps, temperature_sweep
from lumina_hal.twin.device import MockDevice

TEMPS = (20.0, 45.0, 65.0, 85.0)
TYPICAL = "mock://?rows=16&cols=16&preset=typical&seed=2"


def independent_snr_db(inputs: np.ndarray, weights: np.ndarray, outputs: np.ndarray) -> float:
    ideal = inputs.astype(np.float64) @ weights.T
    noise = outputs.astype(np.float64) - ideal
    return 10 * np.log10(np.sum(ideal**2) / np.sum(noise**2))


class TempBench:
    """A fake bench with a TEC: the sweep sets it and snapshots it."""

    def __init__(self, device: lumina_hal.PhotonicDevice) -> None:
        self.device = device
        self.setpoints: list[float] = []

    def set_tec(self, temperature_c: float) -> None:
        self.setpoints.append(temperature_c)
        self.device.set_temperature(temperature_c)

    def snapshot(self) -> dict[str, Any]:
        return {"tec_setpoint_c": self.setpoints[-1] if self.setpoints else None}


def test_steps_are_inclusive_in_either_direction():
    assert temperature_steps(20, 85, 5) == [20.0 + 5 * i for i in range(14)]
    assert temperature_steps(85, 20, -32.5) == [85.0, 52.5, 20.0]
    np.testing.assert_allclose(temperature_steps(0, 1, 0.1), np.linspace(0, 1, 11))
    assert temperature_steps(30, 30, 5) == [30.0]


@pytest.mark.parametrize(
    ("start", "stop", "step", "message"),
    [(20, 85, 0, "must not be 0"), (20, 85, -5, "goes away"), (0, 1e9, 1, "at most")],
)
def test_bad_steps_name_the_problem(start, stop, step, message):
    with pytest.raises(ConfigurationError, match=message):
        temperature_steps(start, stop, step)


def test_recorded_sweep_snr_falls_with_temperature(tmp_path):
    path = tmp_path / "sweep.h5"
    with lumina_hal.open_device(TYPICAL) as chip:
        bench = TempBench(chip)
        with lumina_hal.record_run(path, chip, bench=bench) as run:
            result = temperature_sweep(
                chip, TEMPS, batch=64, seed=1, set_temperature=bench.set_tec, run=run
            )
    # Detector noise and drift grow with T (docs/physics.md): here 53.0 -> 50.3 dB.
    assert np.all(np.diff(result.snr_db) < 0), result.snr_db
    assert result.snr_db[0] - result.snr_db[-1] > 1.5
    assert 45 < result.snr_db[-1] < result.snr_db[0] < 60
    assert bench.setpoints == list(TEMPS)
    np.testing.assert_array_equal(result.temperatures_c, TEMPS)

    rec = lumina_hal.load_run(path)
    table = rec.results["temperature_sweep"]
    for name in ("snr_db", "max_abs_error", "rms_error", "rms_signal"):
        np.testing.assert_array_equal(table[name], getattr(result, name))
    np.testing.assert_array_equal(table["setpoint_c"], TEMPS)
    assert rec.result_units["temperature_sweep"]["snr_db"] == "dB"
    assert rec.sweep["workload"] == {"rows": 16, "cols": 16, "batch": 64, "seed": 1}
    assert [c.label for c in rec.calls] == ["T=20C", "T=45C", "T=65C", "T=85C"]
    weights = rec.weights[0].matrix
    recomputed = [independent_snr_db(c.inputs, weights, c.outputs) for c in rec.calls]
    np.testing.assert_allclose(recomputed, table["snr_db"], rtol=1e-12)
    np.testing.assert_array_equal(rec.telemetry_series("temperature_c"), TEMPS)
    tec = [s.data["tec_setpoint_c"] for s in rec.bench_snapshots if s.label.startswith("T=")]
    assert tec == list(TEMPS)


class FixedTemperatureTwin(MockDevice):
    """A twin without the set_temperature capability, as some hardware is."""

    def _info(self) -> DeviceInfo:
        info = super()._info()
        caps = info.capabilities - {Capability.SET_TEMPERATURE.value}
        return DeviceInfo(**{**info.__dict__, "capabilities": caps})


def test_device_without_temperature_control_needs_a_setter():
    chip = FixedTemperatureTwin(rows=8, cols=8).open()
    try:
        with pytest.raises(UnsupportedOperationError, match="pass set_temperature="):
            temperature_sweep(chip, [30.0], batch=4)
        seen: list[float] = []
        result = temperature_sweep(chip, [30.0, 40.0], batch=4, set_temperature=seen.append)
        assert seen == [30.0, 40.0]
        assert result.temperatures_c.tolist() == [45.0, 45.0]  # the preset's, unchanged
    finally:
        chip.close()


def test_plot_is_a_valid_png(tmp_path):
    with lumina_hal.open_device("mock://?rows=8&cols=8") as chip:
        result = temperature_sweep(chip, [25.0, 85.0], batch=8)
    png = plot_snr_vs_temperature(result, tmp_path / "snr.png", title="test")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (640, 400)  # 6.4 x 4.0 in at 100 dpi
    assert data[-8:-4] == b"IEND"
    with pytest.raises(ConfigurationError, match="does not exist"):
        plot_snr_vs_temperature(result, tmp_path / "missing" / "snr.png")


def test_sweep_progress_bar_goes_to_stderr(capsys):
    with lumina_hal.open_device("mock://?rows=4&cols=4") as chip:
        temperature_sweep(chip, [30.0, 40.0, 50.0], batch=2, progress=True)
    captured = capsys.readouterr()
    assert "temperature" in captured.err and "3/3" in captured.err
    assert captured.out == ""


def test_workload_rows_is_the_one_loop_of_demo_sweep_and_plan():
    from lumina_hal.metrics import reference_workload
    from lumina_hal.runs.sweeps import workload_rows

    with lumina_hal.open_device("mock://?rows=8&cols=8&seed=1") as chip:
        work = reference_workload(8, 8, 6, 0)
        chip.load_weights(work.weights)
        rows = list(workload_rows(chip, work, [30.0, None], batches=3))
        assert [(r["setpoint_c"], r["batch_index"]) for r in rows] == [
            (30.0, 0), (30.0, 1), (30.0, 2), (None, 0), (None, 1), (None, 2),
        ]  # fmt: skip
        assert all(r["temperature_c"] == 30.0 for r in rows)  # None: stays where it is
        assert all(r["seconds"] > 0 and r["snr_db"] > 20 for r in rows)
        assert chip.telemetry().counters["vectors"] == 6 * 2
