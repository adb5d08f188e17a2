"""Swept transmission: the spectrum of a device between a tunable laser and a power meter.

The measurement a photonics lab runs first. For each wavelength of the grid the laser is
tuned (through the role API, so every value passes the safety gate), the meter's correction
wavelength follows it, the light settles for ``settle_s`` and the meter reads; transmission
is the detected power over the laser's power, in dB. This stepped form works with any laser
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

from lumina_hal.bench.roles import Laser, PowerMeter
from lumina_hal.errors import ConfigurationError, InputError, OverRangeError
from lumina_hal.grids import inclusive_grid
from lumina_hal.progress import progress_bar
from lumina_hal.tables import Table

log = logging.getLogger(__name__)

MAX_SPECTRUM_POINTS = 100_000
SPECTRUM_TABLE = "spectrum"
SPECTRUM_UNITS = {"wavelength_nm": "nm", "power_w": "W", "transmission_db": "dB"}


class RowLog(Protocol):
    """Where rows go while the spectrum is measured (a RecordedRun has this method)."""

    def log_row(self, table: str, units: dict[str, str] | None = None, **values: Any) -> None: ...


@dataclass(frozen=True)
class Spectrum:
    """A swept transmission: wavelengths (nm), detected power (W), transmission (dB)."""

    wavelength_nm: np.ndarray
    power_w: np.ndarray
    transmission_db: np.ndarray
    laser_power_dbm: float

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
        title = f"swept transmission, laser {self.laser_power_dbm:g} dBm"
        return Table(columns, SPECTRUM_UNITS, title)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wavelength_nm": self.wavelength_nm.tolist(),
            "power_w": self.power_w.tolist(),
            "transmission_db": self.transmission_db.tolist(),
            "laser_power_dbm": self.laser_power_dbm,
        }


def wavelength_grid(start_nm: float, stop_nm: float, step_nm: float) -> list[float]:
    """``start_nm`` to ``stop_nm`` inclusive in steps of ``step_nm`` > 0 (either direction)."""
    return inclusive_grid(
        start_nm, stop_nm, step_nm, max_points=MAX_SPECTRUM_POINTS, what="wavelength (nm)"
    )


def swept_transmission(
    laser: Laser,
    meter: PowerMeter,
    wavelengths_nm: Iterable[float],
    *,
    settle_s: float = 0.0,
    track_meter_wavelength: bool = True,
    run: RowLog | None = None,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Spectrum:
    """Measure transmission at each wavelength; the laser must already be on.

    Readings above the meter's range are NaN in the spectrum (and logged), not an abort: a
    spectrum with a saturated peak is still a spectrum. Every other error stops the sweep.
    """
    grid = [float(w) for w in wavelengths_nm]
    if not grid:
        raise InputError("a spectrum needs at least one wavelength")
    if not (math.isfinite(settle_s) and settle_s >= 0):
        raise InputError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
    if not laser.output:
        raise ConfigurationError("switch the laser on before measuring a spectrum")
    laser_dbm = laser.power_dbm
    powers: list[float] = []
    for nm in progress_bar(grid, enabled=progress, desc="spectrum", unit="pt"):
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
            run.log_row(
                SPECTRUM_TABLE,
                units=SPECTRUM_UNITS,
                wavelength_nm=nm,
                power_w=watts,
                transmission_db=_transmission_db(watts, laser_dbm),
            )
    power_w = np.array(powers, dtype=np.float64)
    return Spectrum(
        wavelength_nm=np.array(grid, dtype=np.float64),
        power_w=power_w,
        transmission_db=np.array([_transmission_db(p, laser_dbm) for p in powers]),
        laser_power_dbm=laser_dbm,
    )


def _transmission_db(power_w: float, laser_dbm: float) -> float:
    if not power_w > 0:  # NaN (over range) or a dark, non-positive reading
        return math.nan
    return 10.0 * math.log10(power_w / 1e-3) - laser_dbm


def plot_spectrum(
    spectrum: Spectrum, png_path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Transmission (dB) against wavelength (nm), written to ``png_path``."""
    peak_nm, peak_db = spectrum.peak()
    title = title or f"swept transmission, peak {peak_db:.2f} dB at {peak_nm:.2f} nm"
    return spectrum.to_table().plot("wavelength_nm", "transmission_db", png_path, title=title)
