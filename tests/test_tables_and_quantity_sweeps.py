"""Tables with units (xarray/pandas), and sweeps of any bench quantity through the role API."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import lumina_hal
from lumina_hal.errors import ConfigurationError, InputError, SafetyLimitError
from lumina_hal.runs.quantity_sweep import bench_quantity, sweep_quantity, unit_of
from lumina_hal.tables import Table


def test_a_table_converts_to_xarray_and_pandas_with_its_units():
    pytest.importorskip("xarray")
    table = Table(
        {"wavelength_nm": np.array([1549.0, 1550.0]), "power_w": np.array([1e-3, 2e-3])},
        {"wavelength_nm": "nm", "power_w": "W"},
        title="t",
    )
    ds = table.to_xarray()
    assert list(ds.dims) == ["wavelength_nm"]
    assert ds["power_w"].attrs["units"] == "W"
    assert ds["wavelength_nm"].attrs["units"] == "nm"
    assert float(ds["power_w"].sel(wavelength_nm=1550.0)) == 2e-3
    frame = table.to_pandas()
    assert frame.attrs["units"] == {"wavelength_nm": "nm", "power_w": "W"}
    assert frame["power_w"].tolist() == [1e-3, 2e-3]


def test_tables_refuse_ragged_columns_and_unknown_units():
    with pytest.raises(InputError):
        Table({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(InputError):
        Table({"a": np.zeros(2)}, {"b": "W"})
    with pytest.raises(InputError):
        Table({"a": np.zeros(2)}).column("c")


def test_units_come_from_the_names():
    assert [unit_of(n) for n in ("wavelength_nm", "power_dbm", "read_power_w", "setpoint_c",
                                 "snr_db", "count")] == ["nm", "dBm", "W", "degC", "dB", ""]


def test_sweep_quantity_sets_settles_measures_and_records():
    seen: list[float] = []
    logged: list[tuple[str, dict]] = []

    class Run:
        def log_row(self, table, units=None, **values):
            logged.append((table, values))

    sleeps: list[float] = []
    table = sweep_quantity(
        seen.append, [1.0, 2.0, 3.0], lambda: {"double_w": 2 * seen[-1]},
        name="x_nm", unit="nm", settle_s=0.5, run=Run(), sleep=sleeps.append,
    )  # fmt: skip
    assert seen == [1.0, 2.0, 3.0] and sleeps == [0.5, 0.5, 0.5]
    assert table.column("double_w").tolist() == [2.0, 4.0, 6.0]
    assert table.units == {"x_nm": "nm", "double_w": "W"}
    assert logged[0] == ("sweep:x_nm", {"x_nm": 1.0, "double_w": 2.0})


@pytest.mark.parametrize("values", [[], [float("nan")], [1.0, float("inf")]])
def test_sweep_quantity_refuses_bad_values(values):
    with pytest.raises(InputError):
        sweep_quantity(lambda v: None, values, dict)


@pytest.fixture
def bench(lumina_sim_visa):
    with lumina_hal.open_bench() as opened:  # the shipped simulated bench
        yield opened


def test_a_bench_quantity_sweep_goes_through_the_laser_limits(bench):
    power = bench_quantity(bench, "laser.power_dbm")
    read = bench_quantity(bench, "laser.power_dbm")
    table = sweep_quantity(power.set, [0.0, 1.0], lambda: {read.name: read.read()},
                           name=power.name)  # fmt: skip
    assert table.column("laser.power_dbm").tolist() == [0.0, 1.0]
    limit = bench.config.laser_limits.max_power_dbm
    with pytest.raises(SafetyLimitError):
        sweep_quantity(power.set, [limit + 1.0], dict, name=power.name)


@pytest.mark.parametrize(
    "name", ["laser.__class__", "laser._write", "laser", "nope.x", "laser.no_such_thing", "a.b.c"]
)
def test_only_public_quantities_of_known_parts_resolve(bench, name):
    with pytest.raises(ConfigurationError):
        bench_quantity(bench, name)


def test_the_cli_sweeps_a_bench_quantity_and_plots_it(tmp_path):
    png = tmp_path / "w.png"
    out = subprocess.run(
        [sys.executable, "-m", "lumina_hal", "sweep", "bench", "--set", "laser.wavelength_nm",
         "--start", "1540", "--stop", "1560", "--step", "10", "--read", "laser.wavelength_nm",
         "--png", str(png), "--no-progress", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["columns"]["laser.wavelength_nm"] == [1540.0, 1550.0, 1560.0]
    assert report["units"]["laser.wavelength_nm"] == "nm"
    assert png.read_bytes()[:4] == b"\x89PNG"
