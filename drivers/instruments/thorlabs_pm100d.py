"""Thorlabs PM100D / PM100USB optical power meter (USBTMC, LF termination).

The driver always reads watts (``SENS:POW:UNIT W`` at open) and converts to dBm itself, so a
unit left in dBm by someone else cannot corrupt a reading. Over-range readings (9.9E37 on the
PM100D, INF/NAN on newer firmware) raise OverRangeError. A reading blocks for the averaging
time (about 3 ms per sample on the PM100D), so the read timeout grows with the averaging count,
and that count is read from the instrument just before each reading (another client or a raw
write may have changed it). docs/instruments.md §4.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lumina_hal.bench.roles import PowerMeter, SensorInfo
from lumina_hal.bench.safety import coerce
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
from lumina_hal.errors import InputError, InstrumentError, OverRangeError

#: A reading at or above this is the meter's over-range marker (9.9E37), not a power.
OVER_RANGE_W = 1e37
#: Time of one averaged sample on the PM100D (reference notes: "1 sample ~ 3 ms").
SAMPLE_S = 3e-3
#: A reading may take this many times its nominal averaging time before it times out.
AVERAGING_TIME_MARGIN = 2.0
#: Sensor flag bits of ``SYST:SENS:IDN?`` (Thorlabs TLPM/PM100D driver headers).
SENSOR_FLAGS = {
    0x0001: "power sensor",
    0x0002: "energy sensor",
    0x0010: "responsivity settable",
    0x0020: "wavelength settable",
    0x0040: "time constant settable",
    0x0100: "temperature sensor",
}
#: Status bits the simulator and the manual's register model use.
OPERATION_DATA_READY = 512
QUESTIONABLE_OVER_RANGE = 16


def sensor_flag_names(flags: int) -> tuple[str, ...]:
    """The named bits set in a sensor's flags (unknown bits are ignored)."""
    return tuple(name for bit, name in SENSOR_FLAGS.items() if flags & bit)


def _positive(unit: str) -> Any:
    def validate(instrument: object, name: str, value: float) -> float:
        if not value > 0:
            raise InputError(f"{name} must be > 0 {unit}, got {value!r}; nothing was sent")
        return value

    return validate


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

    # Corrections, filter and status (docs/instruments.md §4); every setter is gated.
    _beam_diameter_mm = control(
        "SENS:CORR:BEAM?", "SENS:CORR:BEAM {:.4f}", "Beam diameter (mm), for power density.",
        validate=_positive("mm"),
    )
    _attenuation_db = control(
        "SENS:CORR:LOSS?", "SENS:CORR:LOSS {:.4f}",
        "Attenuation in front of the sensor that readings compensate (dB).",
    )
    _low_bandwidth = control(
        "INP:FILT?", "INP:FILT {}", "Bandwidth limit: True low (15 Hz), False high.",
        parse=parse_bool, format=format_bool,
    )
    _zero_magnitude_w = measurement("SENS:CORR:COLL:ZERO:MAGN?", "The zero in use (W).")
    _zeroing = measurement("SENS:CORR:COLL:ZERO:STAT?", "1 while zeroing runs.", parse=parse_bool)
    _current_a = measurement("MEAS:CURR?", "Photocurrent (A).", parse=parse_power)
    _operation_condition = measurement("STAT:OPER:COND?", "Operation condition.", parse=parse_int)
    _operation_event = measurement("STAT:OPER?", "Operation event (clears).", parse=parse_int)
    _questionable_condition = measurement(
        "STAT:QUES:COND?", "Questionable condition.", parse=parse_int
    )
    _questionable_event = measurement("STAT:QUES?", "Questionable event (clears).",
                                      parse=parse_int)
    _operation_enable = control(
        "STAT:OPER:ENAB?", "STAT:OPER:ENAB {:d}", "Operation enable mask.", parse=parse_int,
        validate=integer_in_range(0, 32767),
    )
    _questionable_enable = control(
        "STAT:QUES:ENAB?", "STAT:QUES:ENAB {:d}", "Questionable enable mask.", parse=parse_int,
        validate=integer_in_range(0, 32767),
    )

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

    def _average_count(self) -> int:
        """The instrument's averaging count now (``SENS:AVER?``: one short query that does not
        wait for an average). Never cached: another client, a raw write or the front panel may
        have changed it since the driver last wrote it."""
        return int(self._averages)

    @contextmanager
    def _averaging_timeout(self) -> Iterator[None]:
        """For one reading: the timeout plus the averaging time (with a margin) of the count
        the instrument has now, then back."""
        resource = self._resource
        extra_s = AVERAGING_TIME_MARGIN * self._average_count() * SAMPLE_S
        if resource is None or extra_s <= 0:
            yield
            return
        base = resource.timeout
        base_s = self.timeout_s if base is None else base / 1000.0
        resource.timeout = (base_s + extra_s) * 1000.0
        try:
            yield
        finally:
            resource.timeout = base

    def reading_timeout_s(self) -> float:
        """The timeout a reading started now gets: ``timeout_s`` + 2 × averages × 3 ms, with
        the instrument's current count (one ``SENS:AVER?``)."""
        count = int(self._call(self._average_count))
        return self.timeout_s + AVERAGING_TIME_MARGIN * count * SAMPLE_S

    def _read_power_w(self) -> float:
        self._require_sensor("measure power")
        with self._averaging_timeout():
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
        return self._average_count()

    def _set_averages(self, count: int) -> None:
        self._averages = count

    # --- further settings (public; each write goes through the gate) -------------------------
    def zero(self) -> None:
        """Zero the meter (``SENS:CORR:COLL:ZERO``): cover the sensor first; the dark reading
        becomes the offset subtracted from later readings."""
        self._call(self._require_sensor, "zero")
        self._call(
            self._gated_write, "zero", "bool", True,
            lambda _: self._write("SENS:CORR:COLL:ZERO"),
        )

    @property
    def zero_w(self) -> float:
        """The zero offset in use (W)."""
        return float(self._call(lambda: self._zero_magnitude_w))

    @property
    def zeroing(self) -> bool:
        """True while a zeroing runs."""
        return bool(self._call(lambda: self._zeroing))

    @property
    def low_bandwidth(self) -> bool:
        """The input filter: True limits the bandwidth (15 Hz), False is the full bandwidth."""
        return bool(self._call(lambda: self._low_bandwidth))

    @low_bandwidth.setter
    def low_bandwidth(self, enabled: bool) -> None:
        self._call(setattr, self, "_low_bandwidth", enabled)

    @property
    def beam_diameter_mm(self) -> float:
        return float(self._call(lambda: self._beam_diameter_mm))

    @beam_diameter_mm.setter
    def beam_diameter_mm(self, value: float) -> None:
        self._call(setattr, self, "_beam_diameter_mm", value)

    @property
    def attenuation_db(self) -> float:
        """Loss in front of the sensor that the readings compensate (dB; readings are
        multiplied by 10^(dB/10))."""
        return float(self._call(lambda: self._attenuation_db))

    @attenuation_db.setter
    def attenuation_db(self, value: float) -> None:
        self._call(setattr, self, "_attenuation_db", value)

    def read_current_a(self) -> float:
        """One photocurrent reading (A)."""
        self._call(self._require_sensor, "measure current")
        with self._lock, self._averaging_timeout():
            return float(self._call(lambda: self._current_a))

    def status(self) -> dict[str, int]:
        """The operation and questionable registers: conditions, and the events (reading
        them clears them, as on the instrument)."""

        def read() -> dict[str, int]:
            return {
                "operation_condition": int(self._operation_condition),
                "operation_event": int(self._operation_event),
                "questionable_condition": int(self._questionable_condition),
                "questionable_event": int(self._questionable_event),
            }

        return dict(self._call(read))

    def set_status_enable(self, *, operation: int | None = None,
                          questionable: int | None = None) -> None:
        """Enable masks of the operation and questionable registers (0-32767)."""

        def write() -> None:
            if operation is not None:
                self._operation_enable = coerce("operation_enable", "int", operation)
            if questionable is not None:
                self._questionable_enable = coerce("questionable_enable", "int", questionable)

        self._call(write)

    @property
    def sensor_flags(self) -> tuple[str, ...]:
        """The sensor's capabilities from its flags (``wavelength settable``, ...)."""
        info = self.sensor
        return () if info is None else sensor_flag_names(info.flags)

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(
            beam_diameter_mm=float(self._beam_diameter_mm),
            attenuation_db=float(self._attenuation_db),
            low_bandwidth=bool(self._low_bandwidth),
            zero_w=float(self._zero_magnitude_w),
            sensor_flags=list(self.sensor_flags),
            reading_timeout_s=self.reading_timeout_s(),
        )
        return settings

    def _sensor(self) -> SensorInfo | None:
        return self._sensor_info
