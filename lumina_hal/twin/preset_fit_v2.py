"""Physics v2 presets: the SNR budget per effect and the fitted knob (docs/physics.md §7.7).

Every v2 preset parameter is fixed from sources or a stated choice except one knob, solved
by bisection so that the reference workload reproduces the SNR table of the system this
project succeeds: the symbol rate of the ``ideal`` lab read-out (log bisection), and the
phase accuracy σ_θ,res (``calibration_phase_residual_rad``) of ``typical`` and ``harsh``
(their ρ is fixed at the accuracy ``calibrate()`` reaches). ``python -m
lumina_hal.twin.preset_fit_v2 [--write lumina_hal/twin/physics_v2.py]`` prints the fit and
the budget table, and with ``--write`` stores the knobs in ``FITTED_KNOBS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lumina_hal.metrics import reference_workload, snr_db
from lumina_hal.twin.device_v2 import TwinV2Device
from lumina_hal.twin.physics_v2 import PRESETS_V2, V2Params

TARGET_SNR_DB = {"ideal": 100.0, "typical": 51.87, "harsh": 43.63}
_SHOT_ONLY = {"tia_noise_pa_rthz": 0.0, "dark_current_na": 0.0, "rin_db_hz": -250.0}
_OFF: dict[str, dict[str, object]] = {
    "heater DAC": {"weight_bits": 24},
    "input DAC": {"input_bits": 24},
    "ADC": {"output_bits": 24},
    "calibration residual": {"calibration_residual": 0.0, "calibration_phase_residual_rad": 0.0},
    "phase noise": {"phase_noise_rad": 0.0, "thermal_fluctuation_mk": 0.0},
    "detector noise": {**_SHOT_ONLY, "laser_power_dbm": 30.0},
}
_V2_FIELDS = {"symbol_rate_hz", "shifter_bandwidth_hz", "calibration_residual",
              "calibration_phase_residual_rad"}  # fmt: skip


def with_changes(v: V2Params, changes: dict[str, object]) -> V2Params:
    v2 = {k: val for k, val in changes.items() if k in _V2_FIELDS}
    base = {k: val for k, val in changes.items() if k not in _V2_FIELDS}
    return replace(v, base=replace(v.base, **base), **v2)  # type: ignore[arg-type]


def measure_snr_db(v: V2Params, seed: int = 1, kernel: str = "reference") -> float:
    """SNR of v2 on the reference workload (64x64, batch 256), on the numpy oracle unless
    ``kernel`` says otherwise (the C engine gives the same ADC codes, §7.6)."""
    work = reference_workload()
    overrides = {f: getattr(v.base, f) for f in v.base.__dataclass_fields__}
    overrides.update({f: getattr(v, f) for f in _V2_FIELDS})
    with TwinV2Device(seed=seed, kernel=kernel, **overrides) as dev:
        dev.load_weights(work.weights)
        return snr_db(dev.matmul(work.inputs), work.ideal)


def budget(v: V2Params) -> dict[str, float]:
    """SNR with each effect alone (all others off), and with all together."""
    out = {}
    for effect in _OFF:
        changes: dict[str, object] = {}
        for name, off in _OFF.items():
            if name != effect:
                changes.update(off)
        out[effect] = measure_snr_db(with_changes(v, changes))
    for name, extra in (("detector: shot only", _SHOT_ONLY), ("detector: all", {})):
        changes = {}
        for off_name, off in _OFF.items():
            if off_name != "detector noise":
                changes.update(off)
        changes.update(extra)
        out[name] = measure_snr_db(with_changes(v, changes))
    out["all together"] = measure_snr_db(v)
    return out


def _bisect(f: Callable[[float], float], lo: float, hi: float, target: float) -> float:
    """x in [lo, hi] with f(x) = target for a decreasing f (40 steps).

    Raises ValueError when the target lies outside [f(hi), f(lo)]: the knob would sit at a
    bound, so the preset's fixed parameters, not the knob, decide its SNR.
    """
    if not f(hi) <= target <= f(lo):
        raise ValueError(f"target {target} dB outside [{f(hi):.2f}, {f(lo):.2f}] dB")
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


#: knob per preset: (field, lower bound, upper bound, log scale)
KNOBS: dict[str, tuple[str, float, float, bool]] = {
    "ideal": ("symbol_rate_hz", 2.0, 9.0, True),
    "typical": ("calibration_phase_residual_rad", 0.0, 0.05, False),
    "harsh": ("calibration_phase_residual_rad", 0.0, 0.05, False),
}


def fit(name: str) -> V2Params:
    """The preset with its free knob solved (3 significant digits)."""
    v, target = PRESETS_V2[name], TARGET_SNR_DB[name]
    knob, lo, hi, log_scale = KNOBS[name]

    def at(x: float) -> V2Params:
        return replace(v, **{knob: 10.0**x if log_scale else x})  # type: ignore[arg-type]

    x = _bisect(lambda x: measure_snr_db(at(x)), lo, hi, target)
    value = 10.0**x if log_scale else x
    return replace(v, **{knob: float(f"{value:.3g}")})  # type: ignore[arg-type]


def write_knobs(path: Path, knobs: dict[str, float]) -> None:
    """Rewrite the ``FITTED_KNOBS`` lines (``"name": value,  # fitted``) of physics_v2.py."""
    text = path.read_text(encoding="utf-8")
    for name, value in knobs.items():
        pattern = re.compile(rf'^(\s*"{name}": )[^,]+(,  # fitted)$', re.MULTILINE)
        text, count = pattern.subn(rf"\g<1>{value!r}\g<2>", text)
        if count != 1:
            raise ValueError(f"{path}: no single fitted line for {name!r}")
    path.write_text(text, encoding="utf-8")


def budget_table(presets: dict[str, V2Params]) -> str:
    """The SNR budget per effect (docs/physics.md §7.7) as a markdown table."""
    rows = {name: budget(v) for name, v in presets.items()}
    lines = ["| effect | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for effect in next(iter(rows.values())):
        cells = " | ".join(
            "off" if math.isinf(r[effect]) else f"{r[effect]:.1f}" for r in rows.values()
        )
        lines.append(f"| {effect} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - a report for humans
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="PHYSICS_V2_PY",
                        help="rewrite the FITTED_KNOBS lines of this physics_v2.py")  # fmt: skip
    args = parser.parse_args(argv)
    fitted = {name: fit(name) for name in TARGET_SNR_DB}
    knobs = {}
    for name, v in fitted.items():
        knob = KNOBS[name][0]
        knobs[name] = getattr(v, knob)
        snr = measure_snr_db(v)
        sys.stdout.write(f"{name}: {knob} = {knobs[name]!r} -> {snr:.2f} dB\n")
    sys.stdout.write(budget_table(fitted))
    if args.write is not None:
        write_knobs(args.write, knobs)
        sys.stdout.write(f"wrote {args.write}\n")


if __name__ == "__main__":  # pragma: no cover
    main()
