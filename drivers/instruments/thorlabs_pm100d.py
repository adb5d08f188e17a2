"""Thorlabs PM100D / PM100USB optical power meter (USBTMC, LF termination).

The driver always reads watts (``SENS:POW:UNIT W`` at open) and converts to dBm itself, so a
unit left in dBm by someone else cannot corrupt a reading. Over-range readings (9.9E37 on the
PM100D, INF/NAN on newer firmware) raise OverRangeError. docs/instruments.md §4.
"""

from __future__ import annotations

import math

from lumina_hal.bench.roles import PowerMeter, SensorInfo
from lumina_hal.drivers.instruments.scpi import (
    ScpiInstrument,
    control,
    format_bool,
    in_range,
    integer_in_range,
    measurement,
    parse_bool,
    parse_int,
)
from lumina_hal.errors import InstrumentError, OverRangeError

#: A reading at or above this is the meter's over-range marker (9.9E37), not a power.
OVER_RANGE_W = 1e37


def parse_power(reply: str) -> float:
    """A ``MEAS:POW?`` reply; ``INF``/``INFINITY``/``NAN`` are kept for the range check."""
    text = reply.strip().upper()
    if text in ("INF", "INFINITY", "+INF", "+INFINITY"):
        return math.inf
    if text in ("-INF", "-INFINITY"):
        return -math.inf
    if text == "NAN":
        return math.nan
    return float(text)


def parse_sensor(reply: str) -> SensorInfo | None:
    """``SYST:SENS:IDN?`` in the PM100D form (unquoted) or the PM100D2/PM101 form (quoted)."""
    if reply.strip().strip('"').lower() == "no sensor":
        return None
    fields = [f.strip().strip('"') for f in reply.split(",")]
    if len(fields) != 6:
        raise ValueError(f"sensor IDN needs 6 fields, got {reply!r}")
    return SensorInfo(
        name=fields[0],
        serial=fields[1],
        calibration_date=fields[2],
        type=int(fields[3]),
        subtype=int(fields[4]),
        flags=int(fields[5]),
    )


class ThorlabsPm100d(ScpiInstrument, PowerMeter):
    """Thorlabs PM100D, PM100USB (and PM100D2/PM101, which share the command set)."""

    model_name = "thorlabs-pm100d"
    idn_vendor = "Thorlabs"
    idn_models = ("PM100D", "PM100USB", "PM100D2", "PM101")
    init_commands = ("SENS:POW:UNIT W",)

    # Private and gated (docs/safety.md §5): the public surface is the PowerMeter role.
    _wavelength_nm = control(
        "SENS:CORR:WAV?",
        "SENS:CORR:WAV {:d}",
        "Responsivity correction wavelength (nm; integer on input).",
        format=round,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
    _power_reading_w = measurement("MEAS:POW?", "One power reading (W).", parse=parse_power)
    _auto_range = control(
        "SENS:POW:RANG:AUTO?", "SENS:POW:RANG:AUTO {}", "Auto ranging.", parse=parse_bool,
        format=format_bool,
    )
    _range_w = control(
        "SENS:POW:RANG?", "SENS:POW:RANG {:.6E}", "Upper limit of the current range (W)."
    )
    _averages = control(
        "SENS:AVER?", "SENS:AVER {:d}", "Samples averaged per reading.", parse=parse_int,
        validate=integer_in_range(1, 10000),
    )
    _sensor_idn = measurement("SYST:SENS:IDN?", "The sensor head.", parse=parse_sensor)

    def _after_open(self) -> None:
        self._sensor_info = self._sensor_idn
        if self._sensor_info is None:
            self._wavelength_min_nm = self._wavelength_max_nm = math.nan
            return
        self._wavelength_min_nm = float(self._query_parsed("SENS:CORR:WAV? MIN"))
        self._wavelength_max_nm = float(self._query_parsed("SENS:CORR:WAV? MAX"))

    def _require_sensor(self, what: str) -> None:
        if self._sensor_info is None:
            raise InstrumentError(f"{self._label}: no sensor attached; cannot {what}")

    def _get_wavelength_nm(self) -> float:
        return float(self._wavelength_nm)

    def _set_wavelength_nm(self, nm: float) -> None:
        self._require_sensor("set the wavelength")
        self._wavelength_nm = nm

    def _read_power_w(self) -> float:
        self._require_sensor("measure power")
        watts = self._power_reading_w
        if math.isnan(watts) or abs(watts) >= OVER_RANGE_W:
            raise OverRangeError(
                f"{self._label}: reading is over range ({watts!r}); enable auto_range or set "
                "a larger range_w",
                command="MEAS:POW?",
            )
        return watts

    def _get_auto_range(self) -> bool:
        return bool(self._auto_range)

    def _set_auto_range(self, enabled: bool) -> None:
        self._auto_range = enabled

    def _get_range_w(self) -> float:
        return float(self._range_w)

    def _set_range_w(self, watts: float) -> None:
        self._range_w = watts

    def _get_averages(self) -> int:
        return int(self._averages)

    def _set_averages(self, count: int) -> None:
        self._averages = count

    def _sensor(self) -> SensorInfo | None:
        return self._sensor_info
