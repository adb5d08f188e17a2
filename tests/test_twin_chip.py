"""One chip model (lumina_hal.twin.chip.TwinChip) behind the twin, the emulator and the bench."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal.sim.coupled_bench import CoupledBench
from lumina_hal.sim.fpga.config import EmulatorConfig
from lumina_hal.sim.fpga.firmware import FirmwareEmulator
from lumina_hal.twin import physics
from lumina_hal.twin.chip import TwinChip
from lumina_hal.twin.config import TwinConfig


def test_every_backend_holds_a_twin_chip():
    with lumina_hal.open_device("mock://?rows=8&cols=8") as twin:
        assert isinstance(twin.chip, TwinChip)
    assert isinstance(FirmwareEmulator(rows=8, cols=8).chip, TwinChip)
    assert isinstance(CoupledBench().emulator.chip, TwinChip)


def test_optical_power_is_one_formula_for_twin_emulator_and_bench():
    """A 5x3 block on a 16x12 array: telemetry, firmware and the bench's meter agree."""
    params = {"rows": 16, "cols": 12, "preset": "typical", "seed": 3}
    w = np.random.default_rng(0).uniform(-1, 1, size=(5, 3))
    with lumina_hal.open_device("mock://", **params) as twin:
        twin.load_weights(w)
        twin_dbm = twin.telemetry().optical_power_dbm
        p = twin.physics
    # independent: laser power minus the loss of the lossiest loaded cell (4, 2), in dB
    k_row = p.waveguide_loss_db_cm * p.die_size_mm / 10 / 16
    k_col = p.waveguide_loss_db_cm * p.die_size_mm / 10 / 12
    expected = p.laser_power_dbm - (p.mzi_loss_db + 4 * k_row + 2 * k_col)
    assert twin_dbm == pytest.approx(expected, abs=1e-9)

    bench = CoupledBench(chip=params)
    bench.emulator.chip.program(np.zeros((5, 3), dtype=np.int32))
    laser_dbm = bench.coupling.detector_dbm(10.0, 1550.0)
    assert bench.emulator.chip.optical_output_dbm(laser_dbm) == pytest.approx(
        expected - p.laser_power_dbm + laser_dbm, abs=1e-9
    )
    assert physics.optical_output_dbm(p, 5, 3, 16, 12) == pytest.approx(expected, abs=1e-12)


def test_the_emulator_takes_a_typed_config_and_keeps_a_large_fault_seed_exact():
    seed = 2**60 + 1  # not a float: 2**60 + 1 rounds to 2**60 in float64
    assert float(seed) != seed
    config = EmulatorConfig.from_params({"rows": 4, "cols": 4, "fault_seed": seed})
    assert config.faults.seed == seed and isinstance(config.chip, TwinConfig)
    chip = lumina_hal.open_device(f"fpga+sim://?rows=4&cols=4&fault_seed={seed}&fault_drop=0")
    try:
        assert chip._link.port.faults.seed == seed
        assert chip._link.port.emulator.config.kernel == "native"
    finally:
        chip.close()
    with pytest.raises(lumina_hal.ConfigurationError):
        EmulatorConfig.from_params({"rows": 4, "fault_sed": 1})


def test_a_config_object_and_parameters_build_the_same_emulator():
    params = {"rows": 6, "cols": 5, "seed": 9, "preset": "harsh", "serial": "E-1"}
    a = FirmwareEmulator(EmulatorConfig.from_params(params))
    b = FirmwareEmulator(**params)
    assert a.config == b.config
    assert a.chip.snapshot()["physics"] == b.chip.snapshot()["physics"]


def test_environment_changes_follow_and_reset_restores_the_configured_chip():
    chip = TwinChip(TwinConfig.resolve(rows=4, cols=4, preset="typical", kernel="native"))
    chip.load_weights(np.eye(4))
    before = chip.engine
    chip.set_environment(temperature_c=60.0, laser_power_dbm=-3.0)
    assert chip.physics.temperature_c == 60.0 and chip.physics.laser_power_dbm == -3.0
    assert chip.engine is not before  # rebuilt for the new temperature
    chip.reset()
    assert chip.codes is None and chip.call_index == 0
    assert chip.physics == chip.config.physics
    assert math.isfinite(chip.optical_output_dbm())


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["1", "0.5", "typical", "nan", "inf", "-1", "2**64"]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["rows", "cols", "seed", "preset", "serial", "kernel", "threads", "fault_seed",
             "fault_drop", "fault_delay_s", "crosstalk", "noise", "weight_bits", "bogus"]
        ),
        _values,
        max_size=4,
    )
)  # fmt: skip
def test_fuzzed_emulator_parameters_build_a_config_or_raise_a_lumina_error(params):
    try:
        config = EmulatorConfig.from_params(params)
    except lumina_hal.LuminaError:
        return
    assert config.chip.kernel == "native"
    assert isinstance(config.faults.seed, int) and 0 <= config.faults.seed < 2**63
    if "fault_seed" in params and isinstance(params["fault_seed"], int):
        assert config.faults.seed == params["fault_seed"]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 12),
    bits=st.integers(2, 24),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0, 1e-310, -1e300]),
    seed=st.integers(0, 2**32 - 1),
)
def test_heater_codes_in_c_equal_the_numpy_formula_or_refuse_non_finite(
    rows, cols, bits, special, seed
):
    from lumina_hal.codes import heater_codes, heater_codes_numpy

    w = np.random.default_rng(seed).uniform(-1, 1, size=(rows, cols))
    if special is not None:
        w[(seed % rows), cols // 2] = special  # any row: several 16-row blocks
    steps = (0.01 * (seed % 7), 0.02 * (seed % 5))
    if not np.isfinite(w).all():
        with pytest.raises(lumina_hal.InputError):
            heater_codes(w, bits, steps)
        return
    codes, scale = heater_codes(w, bits, steps, threads=2)
    expected, expected_scale = heater_codes_numpy(w, bits, steps)
    np.testing.assert_array_equal(codes, expected)
    assert scale == expected_scale
