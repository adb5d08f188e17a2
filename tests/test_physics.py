"""The twin's physics against docs/physics.md, each step checked by an independent computation.

Tests that exercise the per-call engine run on both engines: the native C kernel and the
numpy reference (``kernel=`` URI parameter).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lumina_hal
from lumina_hal.errors import ConfigurationError
from lumina_hal.metrics import reference_workload, snr_db
from lumina_hal.twin import physics, reference

ENGINES = ["native", "reference"]
STATIC_OFF = "fab_sigma=0&crosstalk=0&arm_imbalance_um=0"
LOSSLESS = "waveguide_loss_db_cm=0"


def open_twin(query: str, engine: str = "native"):
    return lumina_hal.open_device(f"mock://?kernel={engine}&{query}")


def programmed_of(chip) -> reference.ProgrammedArray:
    return chip.chip.programmed


# ---- static effects (section 2) ---------------------------------------------------------


def test_heater_dac_quantizes_in_the_voltage_domain():
    bits = 6
    w = np.linspace(-1, 1, 40).reshape(4, 10)
    with open_twin(f"rows=4&cols=10&weight_bits={bits}&{STATIC_OFF}&{LOSSLESS}") as chip:
        chip.load_weights(w)
        prog = programmed_of(chip)
        w_eff = prog.effective(chip.physics)
    dac_max = 2**bits - 1
    codes = prog.codes & dac_max
    negative = (prog.codes >> bits) & 1
    # independent decode: phase pi (q/M)^2, transmission cos(phase/2), sign bit
    expected = np.where(negative == 1, -1.0, 1.0) * np.cos(math.pi * (codes / dac_max) ** 2 / 2)
    np.testing.assert_allclose(w_eff, expected, atol=1e-12)
    assert np.all(negative == (w < 0))
    # codes are the nearest voltage step to the target phase 2 arccos|w|
    target_v = np.sqrt(2 * np.arccos(np.abs(w)) / math.pi) * dac_max
    assert np.all(np.abs(codes - target_v) <= 0.5 + 1e-9)
    # phase steps are coarser near pi (small |w|) than near 0 (|w| = 1)
    step = np.diff(math.pi * (np.arange(dac_max + 1) / dac_max) ** 2)
    assert step[-1] > 10 * step[0]


def test_crosstalk_stencil_heats_edge_and_diagonal_neighbours():
    kappa = 0.01
    w = np.ones((5, 5))
    w[2, 2] = 0.0  # the only heated cell: phase pi
    q = f"rows=5&cols=5&weight_bits=24&fab_sigma=0&arm_imbalance_um=0&crosstalk={kappa}&{LOSSLESS}"
    with open_twin(q) as chip:
        chip.load_weights(w)
        w_eff = programmed_of(chip).effective(chip.physics)
    kappa2 = kappa * math.exp(-(math.sqrt(2) - 1))
    expected = np.ones((5, 5))
    expected[2, 2] = math.cos(math.pi / 2)
    for i, j in [(1, 2), (3, 2), (2, 1), (2, 3)]:
        expected[i, j] = math.cos(kappa * math.pi / 2)
    for i, j in [(1, 1), (1, 3), (3, 1), (3, 3)]:
        expected[i, j] = math.cos(kappa2 * math.pi / 2)
    np.testing.assert_allclose(w_eff, expected, atol=1e-6)


def test_temperature_drift_follows_the_thermo_optic_formula():
    w = np.random.default_rng(3).uniform(-1, 1, size=(6, 7))
    q = f"rows=6&cols=7&weight_bits=24&fab_sigma=0&crosstalk=0&arm_imbalance_um=2&{LOSSLESS}"
    with open_twin(q + "&temperature_c=25") as chip:
        chip.load_weights(w)
        prog = programmed_of(chip)
        at_cal = prog.effective(chip.physics)
        chip.set_temperature(65.0)
        hot = prog.effective(chip.physics)
    w_n = w / np.abs(w).max()
    np.testing.assert_allclose(at_cal, w_n, atol=1e-6)  # calibrated at 25 °C: no drift
    n_t = 1.86e-4 * (1 + 1.7e-3 * (65 - 25))
    shift = 2 * math.pi / 1.55 * n_t * (65 - 25) * prog.arm_imbalance_um  # ΔL in µm, λ in µm
    phase = 2 * np.arccos(np.clip(np.abs(w_n), 0, 1))
    np.testing.assert_allclose(hot, np.sign(w) * np.cos((phase + shift) / 2), atol=1e-5)
    assert np.abs(hot - at_cal).max() > 1e-3  # the drift is visible
    key = reference.serial_key(chip.config.serial)
    np.testing.assert_array_equal(prog.arm_imbalance_um, 2.0 * reference.cell_normals(key, 1, 6, 7))


def test_fabrication_scatter_is_fixed_by_the_serial_not_the_seed():
    w = np.full((64, 64), 0.5)
    w[0, 0] = 1.0  # sets the scale: every other cell is at |w_n| = 0.5
    q = f"rows=64&cols=64&weight_bits=24&crosstalk=0&arm_imbalance_um=0&fab_sigma=0.01&{LOSSLESS}"
    phases = {}
    for serial, seed in [("A1", 1), ("A1", 2), ("B2", 1)]:
        with open_twin(f"{q}&serial={serial}&seed={seed}") as chip:
            chip.load_weights(w)
            phases[serial, seed] = programmed_of(chip).phase_static
    np.testing.assert_array_equal(phases["A1", 1], phases["A1", 2])
    assert not np.allclose(phases["A1", 1], phases["B2", 1])
    nominal = 2 * math.acos(0.5)
    scatter = (phases["A1", 1] / nominal - 1.0).ravel()[1:]
    assert abs(scatter.mean()) < 0.01 * 5 / 64 and scatter.std() == pytest.approx(0.01, rel=0.1)
    assert np.abs(scatter).max() <= 0.03 + 1e-6  # clipped at 3 sigma


def test_cell_scatter_does_not_depend_on_the_loaded_block_size():
    key = reference.serial_key("X")
    big = reference.cell_normals(key, 0, 32, 40)
    np.testing.assert_array_equal(reference.cell_normals(key, 0, 5, 7), big[:5, :7])
    assert abs(big.mean()) < 0.1 and big.std() == pytest.approx(1.0, rel=0.1)


def test_loss_is_compensated_and_costs_detector_power():
    w = np.random.default_rng(4).uniform(-1, 1, size=(8, 6))
    query = (
        f"rows=16&cols=12&weight_bits=24&{STATIC_OFF}&waveguide_loss_db_cm=3"
        "&die_size_mm=20&mzi_loss_db=0.3"
    )
    with open_twin(query) as chip:
        chip.load_weights(w)
        prog = programmed_of(chip)
        np.testing.assert_allclose(prog.effective(chip.physics), w / np.abs(w).max(), atol=1e-6)
        k_row, k_col = 3 * 2.0 / 16, 3 * 2.0 / 12  # dB per row / column: α L_die / n
        np.testing.assert_allclose(prog.row_envelope, 10 ** ((7 - np.arange(8)) * k_row / 20))
        np.testing.assert_allclose(prog.col_envelope, 10 ** ((5 - np.arange(6)) * k_col / 20))
        power = chip.telemetry().optical_power_dbm
    expected_loss_db = 0.3 + 7 * k_row + 5 * k_col  # the lossiest loaded cell (7, 5)
    assert power == pytest.approx(chip.physics.laser_power_dbm - expected_loss_db, abs=1e-9)


def test_large_arrays_keep_their_accuracy():
    """The loss spread does not grow with the array size (fixed die), so 1024x1024 works."""
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, size=(1024, 1024))
    x = rng.uniform(-1, 1, size=(16, 1024)).astype(np.float32)
    with open_twin("rows=1024&cols=1024&preset=typical&noise=false") as chip:
        chip.load_weights(w)
        y = chip.matmul(x)
        assert chip.telemetry().counters["clipped_outputs"] == 0
    assert snr_db(y, x.astype(np.float64) @ w.T) > 45.0


# ---- per call (section 3) ---------------------------------------------------------------


def _formula_variance(chip, x_n: np.ndarray) -> np.ndarray:
    """Docs section 3: v_phi + c0 + c1|u| + c2 u^2 for one normalized input vector."""
    p = chip.physics
    prog = programmed_of(chip)
    w_eff = prog.effective(p)
    u = w_eff @ x_n
    sigma = physics.phase_noise_sigma_rad(p)
    v_phi = (
        sigma**2
        / 4
        * (prog.row_envelope**2 * (prog.col_envelope**2 @ x_n**2) - (w_eff**2) @ x_n**2)
    )
    det = physics.detector_noise(p, prog.shape[1], prog.min_amplitude)
    return v_phi + det.c0 + det.c1 * np.abs(u) + det.c2 * u**2


@pytest.mark.parametrize("engine", ENGINES)
def test_output_noise_mean_and_variance_match_the_model(engine):
    rows, cols, n = 4, 16, 25_000  # 1e5 output samples
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, size=(rows, cols))
    x = np.round(rng.uniform(-1, 1, size=cols) * 100) / 100
    q = (
        f"rows={rows}&cols={cols}&seed=9&weight_bits=16&input_bits=16&output_bits=24"
        "&phase_noise_rad=0.02&thermal_fluctuation_mk=0&bandwidth_hz=1e9&tia_noise_pa_rthz=40"
    )
    with open_twin(q, engine) as chip:
        chip.load_weights(w)
        y = chip.matmul(np.tile(x, (n, 1))).astype(np.float64)
        scale = np.abs(x).max() * np.abs(w).max()
        x_n = reference.quantize_inputs(x[None, :], 16)[0][0].astype(np.float64)
        var = _formula_variance(chip, x_n)
        var_without_phase = _formula_variance_without_phase(chip, x_n)
        mean = programmed_of(chip).effective(chip.physics) @ x_n
    samples = y / scale  # normalized units
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(samples.mean(axis=0) - mean) < 5 * se_mean)
    rel_se_var = math.sqrt(2 / (n - 1))
    np.testing.assert_allclose(samples.var(axis=0, ddof=1), var, rtol=5 * rel_se_var)
    # phase noise is a visible share of the variance, so the formula's phase term is tested
    assert (var - var_without_phase).min() > 0.3 * var.min()


def _formula_variance_without_phase(chip, x_n):
    p = chip.physics
    u = programmed_of(chip).effective(p) @ x_n
    det = physics.detector_noise(p, programmed_of(chip).shape[1], programmed_of(chip).min_amplitude)
    return det.c0 + det.c1 * np.abs(u) + det.c2 * u**2


def test_one_normal_per_output_matches_per_cell_phase_noise():
    """The brute-force oracle (a draw per cell, exact cosine) has the same output law."""
    rows, cols, n = 3, 12, 40_000
    rng = np.random.default_rng(6)
    w = rng.uniform(-1, 1, size=(rows, cols))
    x = rng.uniform(-1, 1, size=(1, cols))
    q = (
        f"rows={rows}&cols={cols}&weight_bits=16&input_bits=16&output_bits=24"
        "&phase_noise_rad=0.05&thermal_fluctuation_mk=0&bandwidth_hz=1"
    )  # detector ~ off
    with open_twin(q) as chip:
        chip.load_weights(w)
        prog, p = programmed_of(chip), chip.physics
        fused = chip.matmul(np.repeat(x, n, axis=0)).astype(np.float64)
        fused /= np.abs(x).max() * np.abs(w).max()
    brute = reference.forward_per_cell_phase_noise(np.repeat(x, n, axis=0), prog, p, rng)
    se = math.sqrt(2 / (n - 1))
    np.testing.assert_allclose(fused.var(axis=0), brute.var(axis=0), rtol=6 * se)
    sd = np.sqrt(brute.var(axis=0))
    assert np.all(np.abs(fused.mean(axis=0) - brute.mean(axis=0)) < 6 * sd / math.sqrt(n) + 1e-4)
    # and both are Gaussian-shaped: kurtosis ~ 3
    for sample in (fused, brute):
        z = (sample - sample.mean(axis=0)) / sample.std(axis=0)
        assert np.all(np.abs((z**4).mean(axis=0) - 3.0) < 0.15)


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_repeats_and_different_seeds_differ(engine):
    work = reference_workload(16, 16, 8)
    runs = {}
    for seed in (1, 1, 2):
        with open_twin(f"rows=16&cols=16&seed={seed}", engine) as chip:
            chip.load_weights(work.weights)
            runs.setdefault(seed, []).append([chip.matmul(work.inputs) for _ in range(2)])
    (a1, a2), (b1, b2) = runs[1]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # the call counter moves the noise on
    assert not np.array_equal(runs[2][0][0], a1)


@pytest.mark.parametrize("engine", ENGINES)
def test_reset_restarts_the_noise_sequence(engine):
    work = reference_workload(8, 8, 4)
    with open_twin("rows=8&cols=8&seed=3", engine) as chip:
        chip.load_weights(work.weights)
        first = chip.matmul(work.inputs)
        chip.reset()
        chip.load_weights(work.weights)
        np.testing.assert_array_equal(chip.matmul(work.inputs), first)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("preset", "target_db"), [("ideal", 100.0), ("typical", 51.87), ("harsh", 43.63)]
)
def test_presets_reproduce_the_predecessor_snr_table(engine, preset, target_db):
    work = reference_workload()
    with open_twin(f"preset={preset}&seed=1", engine) as chip:
        chip.load_weights(work.weights)
        measured = [snr_db(chip.matmul(work.inputs), work.ideal) for _ in range(3)]
    assert np.mean(measured) == pytest.approx(target_db, abs=0.5)


def test_heating_the_chip_lowers_the_snr():
    work = reference_workload()
    snrs = []
    with open_twin("preset=typical&seed=1") as chip:
        chip.load_weights(work.weights)
        for t in (25.0, 45.0, 85.0):
            chip.set_temperature(t)
            snrs.append(snr_db(chip.matmul(work.inputs), work.ideal))
    assert snrs[0] > snrs[1] > snrs[2]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("fab_sigma=-0.1", "'fab_sigma'"),
        ("crosstalk=5", "'crosstalk'"),
        ("bandwidth_hz=0", "'bandwidth_hz'"),
        ("weight_bits=30", "'weight_bits'"),
        ("noise=maybe", "'noise'"),
        ("wavelength_nm=nan", "'wavelength_nm'"),
    ],
)
def test_out_of_range_physics_parameters_are_refused(query, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        lumina_hal.open_device(f"mock://?{query}")


def test_the_parameter_table_in_the_docs_matches_the_presets():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "physics.md"
    rows = [
        line for line in docs.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    table = {
        r.split("|")[1].strip().strip("`"): [c.strip() for c in r.split("|")[3:6]] for r in rows
    }
    for name, preset in physics.PRESETS.items():
        column = ["ideal", "typical", "harsh"].index(name)
        for field, value in preset.to_dict().items():
            cell = table[field][column]
            if isinstance(value, bool):
                assert cell == str(value).lower(), field
            else:
                assert float(cell) == pytest.approx(float(value), rel=1e-6), (name, field)
