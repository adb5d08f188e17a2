"""Swept transmission: the spectrum of a device between a tunable laser and a power meter.

The measurement a photonics lab runs first. For each wavelength of the grid the laser is
tuned (through the role API, so every value passes the safety gate), the meter's correction
wavelength follows it, the light settles for ``settle_s`` and the meter reads; transmission
is the detected power over a reference power, in dB: point by point over a *reference sweep*
(the same grid measured with the device bypassed, so the laser's real emitted power and the
path's loss cancel), else over the laser's setpoint. This stepped form works with any laser
and any meter (a PM100D has no trigger input); docs/instruments.md §"Swept transmission".
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lumina_hal.bench.roles import Laser, PowerMeter, dbm_to_w
from lumina_hal.errors import ConfigurationError, InputError, OverRangeError
from lumina_hal.grids import inclusive_grid
from lumina_hal.progress import progress_bar
from lumina_hal.tables import Table

log = logging.getLogger(__name__)

MAX_SPECTRUM_POINTS = 100_000
SPECTRUM_TABLE = "spectrum"
#: Where reference_sweep() records its points (the same columns as a spectrum).
REFERENCE_TABLE = "reference_spectrum"
SPECTRUM_UNITS = {
    "wavelength_nm": "nm", "power_w": "W", "transmission_db": "dB", "reference_power_w": "W",
}  # fmt: skip
#: Two grids are the same when every wavelength agrees this closely (nm).
GRID_TOLERANCE_NM = 1e-6


class RowLog(Protocol):
    """Where rows go while the spectrum is measured (a RecordedRun has this method)."""

    def log_row(self, table: str, units: dict[str, str] | None = None, **values: Any) -> None: ...


@dataclass(frozen=True)
class Spectrum:
    """A swept transmission: wavelengths (nm), detected power (W), transmission (dB).

    ``reference_power_w`` is the reference sweep's power at each point when the spectrum was
    normalised by one (``normalisation == "reference"``), else None (divided by the setpoint).
    """

    wavelength_nm: np.ndarray
    power_w: np.ndarray
    transmission_db: np.ndarray
    laser_power_dbm: float
    reference_power_w: np.ndarray | None = None

    @property
    def normalisation(self) -> str:
        """``"reference"`` (point by point over a reference sweep) or ``"setpoint"``."""
        return "setpoint" if self.reference_power_w is None else "reference"

    def peak(self) -> tuple[float, float]:
        """(wavelength nm, transmission dB) of the highest point."""
        i = int(np.nanargmax(self.transmission_db))
        return float(self.wavelength_nm[i]), float(self.transmission_db[i])

    def bandwidth_nm(self, drop_db: float = 3.0) -> float:
        """Width (nm) of the band around the peak within ``drop_db`` of it; the edges are
        interpolated linearly between grid points (a band reaching an end stops there)."""
        t, w = self.transmission_db, self.wavelength_nm
        i = int(np.nanargmax(t))
        level = t[i] - drop_db

        def edge(step: int) -> float:
            k = i
            while 0 <= k + step < len(t) and t[k + step] >= level:
                k += step
            if not 0 <= k + step < len(t) or not np.isfinite(t[k + step]):
                return float(w[k])
            fraction = (t[k] - level) / (t[k] - t[k + step])
            return float(w[k] + fraction * (w[k + step] - w[k]))

        return abs(edge(1) - edge(-1))

    def to_table(self) -> Table:
        """Wavelength, power and transmission with units (``.to_xarray()``, ``.to_pandas()``)."""
        columns = {
            "wavelength_nm": self.wavelength_nm,
            "power_w": self.power_w,
            "transmission_db": self.transmission_db,
        }
        if self.reference_power_w is not None:
            columns["reference_power_w"] = self.reference_power_w
        units = {name: SPECTRUM_UNITS[name] for name in columns}
        title = f"swept transmission, laser {self.laser_power_dbm:g} dBm, {self.normalisation}"
        return Table(columns, units, title)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wavelength_nm": self.wavelength_nm.tolist(),
            "power_w": self.power_w.tolist(),
            "transmission_db": self.transmission_db.tolist(),
            "laser_power_dbm": self.laser_power_dbm,
            "normalisation": self.normalisation,
        }
        if self.reference_power_w is not None:
            out["reference_power_w"] = self.reference_power_w.tolist()
        return out


def wavelength_grid(start_nm: float, stop_nm: float, step_nm: float) -> list[float]:
    """``start_nm`` to ``stop_nm`` inclusive in steps of ``step_nm`` > 0 (either direction)."""
    return inclusive_grid(
        start_nm, stop_nm, step_nm, max_points=MAX_SPECTRUM_POINTS, what="wavelength (nm)"
    )


def check_reference_grid(grid: list[float], reference: Spectrum | None) -> None:
    """InputError unless ``reference`` was measured on ``grid`` (same points, same order)."""
    if reference is None:
        return
    ref = reference.wavelength_nm
    if len(ref) != len(grid) or not np.allclose(ref, grid, rtol=0.0, atol=GRID_TOLERANCE_NM):
        span = f"{ref[0]:g}-{ref[-1]:g} nm, {len(ref)} points" if len(ref) else "empty"
        raise InputError(
            f"the reference spectrum's grid ({span}) is not this sweep's "
            f"({grid[0]:g}-{grid[-1]:g} nm, {len(grid)} points); measure the reference on "
            "the same grid"
        )


def swept_transmission(
    laser: Laser,
    meter: PowerMeter,
    wavelengths_nm: Iterable[float],
    *,
    settle_s: float = 0.0,
    track_meter_wavelength: bool = True,
    reference: Spectrum | None = None,
    run: RowLog | None = None,
    table: str = SPECTRUM_TABLE,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Spectrum:
    """Measure transmission at each wavelength; the laser must already be on.

    With ``reference`` (a :func:`reference_sweep` on the same grid) each point is divided by
    the reference's power at that point; without, by the laser's setpoint. Readings above the
    meter's range are NaN in the spectrum (and logged), not an abort: a spectrum with a
    saturated peak is still a spectrum. Every other error stops the sweep.
    """
    grid = [float(w) for w in wavelengths_nm]
    if not grid:
        raise InputError("a spectrum needs at least one wavelength")
    check_reference_grid(grid, reference)
    if not (math.isfinite(settle_s) and settle_s >= 0):
        raise InputError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
    if not laser.output:
        raise ConfigurationError("switch the laser on before measuring a spectrum")
    laser_dbm = laser.power_dbm
    setpoint_w = dbm_to_w(laser_dbm)
    ref_w = None if reference is None else [float(p) for p in reference.power_w]
    divisors = [setpoint_w] * len(grid) if ref_w is None else ref_w
    powers: list[float] = []
    for i, nm in enumerate(progress_bar(grid, enabled=progress, desc="spectrum", unit="pt")):
        laser.wavelength_nm = nm
        if track_meter_wavelength:
            meter.wavelength_nm = nm
        if settle_s:
            sleep(settle_s)
        try:
            watts = meter.read_power_w()
        except OverRangeError as exc:
            log.warning("%.4f nm: %s", nm, exc)
            watts = math.nan
        powers.append(watts)
        if run is not None:
            row: dict[str, float] = {
                "wavelength_nm": nm,
                "power_w": watts,
                "transmission_db": _transmission_db(watts, divisors[i]),
            }
            if ref_w is not None:
                row["reference_power_w"] = ref_w[i]
            run.log_row(table, units={k: SPECTRUM_UNITS[k] for k in row}, **row)
    return Spectrum(
        wavelength_nm=np.array(grid, dtype=np.float64),
        power_w=np.array(powers, dtype=np.float64),
        transmission_db=np.array(
            [_transmission_db(p, d) for p, d in zip(powers, divisors, strict=True)]
        ),
        laser_power_dbm=laser_dbm,
        reference_power_w=None if ref_w is None else np.array(ref_w, dtype=np.float64),
    )


def _transmission_db(power_w: float, reference_w: float) -> float:
    """10·log10(P / P_ref) dB; NaN when either is NaN (over range) or not positive (dark)."""
    if not (power_w > 0 and reference_w > 0):
        return math.nan
    return 10.0 * math.log10(power_w / reference_w)


def reference_sweep(
    bench: Any, start_nm: float, stop_nm: float, step_nm: float, **options: Any
) -> Spectrum:
    """The reference spectrum of ``bench`` (a :class:`~lumina_hal.bench.bench_file.Bench`):
    the same sweep with the device bypassed (the laser's fibre
    straight to the meter, or through a patch cord in the device's place).

    Putting the bench in that configuration is the caller's step (on the coupled simulated
    bench: ``sim.chip_bypassed = True``). The result's ``power_w`` is what reached the meter at
    each point; pass it as ``reference=`` to a sweep on the same grid. Recorded (with
    ``run=``) in the table ``reference_spectrum``. ``options`` are those of
    ``Bench.swept_transmission`` except ``reference``.
    """
    if "reference" in options:
        raise InputError("a reference sweep is not itself normalised by a reference")
    options.setdefault("table", REFERENCE_TABLE)
    return bench.swept_transmission(start_nm, stop_nm, step_nm, **options)


def plot_spectrum(
    spectrum: Spectrum, png_path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Transmission (dB) against wavelength (nm), written to ``png_path``."""
    peak_nm, peak_db = spectrum.peak()
    title = title or f"swept transmission, peak {peak_db:.2f} dB at {peak_nm:.2f} nm"
    return spectrum.to_table().plot("wavelength_nm", "transmission_db", png_path, title=title)
