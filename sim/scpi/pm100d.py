"""Simulated Thorlabs PM100D optical power meter (USBTMC, LF termination) with a sensor head.

The optical input is the plain attribute ``input_power_w`` that a coupling layer sets; a
reading is that power plus ``dark_power_w`` plus seeded Gaussian noise (``noise_w`` per
sample, divided by sqrt(averaging count)). Readings above the active range are 9.9E37, the
PM100D-era over-range value. See docs/instrument-sim.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from lumina_hal.sim.scpi.engine import (
    Clock,
    Command,
    QueryHandler,
    ScpiEngine,
    SetHandler,
    SimulatedInstrument,
)
from lumina_hal.sim.scpi.params import (
    NumberSpec,
    ScpiError,
    expect_params,
    format_e,
    limit_keyword,
    parse_bool,
    parse_choice,
    watts_to_dbm,
)

OVER_RANGE = 9.9e37
DBM_FLOOR_W = 1e-15  # a non-positive (noisy dark) reading is shown as -120 dBm
DECADE_RANGES_W = tuple(10.0**k for k in range(-8, 0))  # 10 nW ... 100 mW
_POWER_UNITS_W = {"W": 1.0, "MW": 1e-3, "UW": 1e-6, "NW": 1e-9}


@dataclass(frozen=True)
class SensorHead:
    """What the console reads from a sensor's EEPROM, plus the ranges the simulator offers."""

    name: str
    serial: str
    calibration: str
    sensor_type: int
    subtype: int
    flags: int
    wavelength_min_nm: float
    wavelength_max_nm: float
    default_wavelength_nm: float
    power_ranges_w: tuple[float, ...] = DECADE_RANGES_W

    def idn(self, quoted: bool) -> str:
        """``SYST:SENS:IDN?``: PM100D form (unquoted) or the PM100D2/PM101 form (quoted)."""
        if quoted:
            head = f'"{self.name}","{self.serial}","{self.calibration}"'
        else:
            head = f"{self.name},{self.serial},{self.calibration}"
        return f"{head},{self.sensor_type},{self.subtype},{self.flags}"


# The S130C entry is the real capture in the reference notes; the S155C serial and date are
# made up. Flags 33 = power sensor + wavelength settable.
S130C = SensorHead("S130C", "210921324", "21-SEP-2021", 1, 3, 33, 400.0, 1100.0, 635.0)
S155C = SensorHead("S155C", "230605117", "05-JUN-2023", 1, 2, 33, 800.0, 1700.0, 1550.0)


SAMPLE_S = 3e-3  # one sample of the PM100D (reference notes: "1 sample ~ 3 ms")
OPER_DATA_READY = 512  # operation condition bit 9: a reading waits for FETC? [sim]
QUES_OVER_RANGE = 16  # questionable condition bit 4: the last reading was over range [sim]
MASK = NumberSpec(0, 32767, resolution=1)


class StatusRegister:
    """An SCPI status register: condition, transition filters, latched event, enable mask."""

    def __init__(self) -> None:
        self._condition = 0
        self.event = 0
        self.ptransition = 32767
        self.ntransition = 0
        self.enable = 0

    @property
    def condition(self) -> int:
        return self._condition

    @condition.setter
    def condition(self, value: int) -> None:
        rising, falling = value & ~self._condition, self._condition & ~value
        self.event |= (rising & self.ptransition) | (falling & self.ntransition)
        self._condition = value

    def read_event(self) -> int:
        """The event register, cleared by reading it."""
        value, self.event = self.event, 0
        return value


class ThorlabsPm100d(SimulatedInstrument):
    """The PM100D power-measurement subset: sensor, wavelength, unit, range, averaging."""

    model = "thorlabs-pm100d"
    read_termination = "\n"
    write_termination = "\n"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        serial: str = "P0009368",
        firmware: str = "2.4.0",
        sensor: SensorHead | None = S155C,
        quoted_sensor_idn: bool = False,
        plus_zero_no_error: bool = True,
        dark_power_w: float = 1e-10,
        noise_w: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(clock)
        self.serial = serial
        self.firmware = firmware
        self.sensor = sensor  # None: "no sensor"
        self.quoted_sensor_idn = quoted_sensor_idn
        self.input_power_w = 0.0  # optical power on the sensor, set by a coupling layer
        self.dark_power_w = dark_power_w
        self.noise_w = noise_w  # standard deviation of one sample
        self.responsivity_a_w = 1.0  # photocurrent per watt on the sensor (MEAS:CURR?)
        self._rng = random.Random(seed)
        self.operation = StatusRegister()
        self.questionable = StatusRegister()
        self.reset()
        no_error = '+0,"No error"' if plus_zero_no_error else '0,"No error"'
        self.engine = ScpiEngine(
            self._commands(), idn=self.idn, reset=self.reset, no_error=no_error
        )

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """``*RST``: the sensor's default wavelength, W, auto range, averaging 1."""
        self.wavelength_nm = self.sensor.default_wavelength_nm if self.sensor else 0.0
        self.unit_dbm = False
        self.auto_range = True
        self.range_w = self._ranges()[-1]  # the manual range (used when auto_range is off)
        self.average_count = 1
        self.last_measurement_w: float | None = None  # taken by INIT, read by FETC?
        self.attenuation_db = 0.0  # [SENS]:CORR:LOSS: readings are multiplied by 10^(dB/10)
        self.beam_diameter_mm = 9.5
        self.zero_w = 0.0
        self.low_bandwidth = False  # INP:FILT
        self.operation.condition &= ~OPER_DATA_READY  # status masks survive *RST

    def idn(self) -> str:
        return f"Thorlabs,PM100D,{self.serial},{self.firmware}"

    def _ranges(self) -> tuple[float, ...]:
        return self.sensor.power_ranges_w if self.sensor else DECADE_RANGES_W

    def _sensor(self) -> SensorHead:
        if self.sensor is None:
            raise ScpiError(-241, "no sensor")
        return self.sensor

    def best_range_w(self, power_w: float) -> float:
        """The smallest range that holds ``power_w`` (the top range if none does)."""
        return next((r for r in self._ranges() if power_w <= r), self._ranges()[-1])

    @property
    def active_range_w(self) -> float:
        if self.auto_range:
            return self.best_range_w(self.input_power_w + self.dark_power_w)
        return self.range_w

    def sample_w(self) -> float:
        """One averaged reading in watts: zero subtracted, attenuation compensated (before the
        over-range check, which applies to the power on the sensor)."""
        return (self._raw_w() - self.zero_w) * 10.0 ** (self.attenuation_db / 10.0)

    def _raw_w(self) -> float:
        """What the sensor sees in one averaged sample (W)."""
        power = self.input_power_w + self.dark_power_w
        sigma = self.noise_w / math.sqrt(self.average_count)
        return power + self._rng.gauss(0.0, sigma) if sigma > 0 else power

    def _reading_text(self, power_w: float) -> str:
        on_sensor_w = power_w / 10.0 ** (self.attenuation_db / 10.0) + self.zero_w
        over = on_sensor_w > self.active_range_w * (1 + 1e-12)
        self.questionable.condition = QUES_OVER_RANGE if over else 0
        if over:
            return format_e(OVER_RANGE)
        if self.unit_dbm:
            return format_e(watts_to_dbm(max(power_w, DBM_FLOOR_W)))
        return format_e(power_w)

    # -- handlers ------------------------------------------------------------------------------

    def _query_sensor_idn(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return "no sensor" if self.sensor is None else self.sensor.idn(self.quoted_sensor_idn)

    def _wavelength_spec(self) -> NumberSpec:
        sensor = self._sensor()
        return NumberSpec(sensor.wavelength_min_nm, sensor.wavelength_max_nm, units={"NM": 1.0})

    def _set_wavelength(self, params: list[str]) -> None:
        self.wavelength_nm = self._wavelength_spec().parse_params(params)

    def _query_wavelength(self, params: list[str]) -> str:
        return format_e(self._wavelength_spec().query_value(params, self.wavelength_nm))

    def _set_unit(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.unit_dbm = parse_choice(params[0], ("W", "DBM")) == "DBM"

    def _query_unit(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return "DBM" if self.unit_dbm else "W"

    def _set_auto_range(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        auto = parse_bool(params[0])
        if self.auto_range and not auto:
            self.range_w = self.active_range_w  # switching auto off keeps the range in use
        self.auto_range = auto

    def _query_auto_range(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return str(int(self.auto_range))

    def _range_spec(self) -> NumberSpec:
        return NumberSpec(0.0, self._ranges()[-1], units=_POWER_UNITS_W)

    def _set_range(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        keyword = limit_keyword(params[0])
        if keyword == "MIN":
            self.range_w = self._ranges()[0]
        elif keyword is not None:
            self.range_w = self._ranges()[-1]
        else:
            value = self._range_spec().parse(params[0])
            if value <= 0:
                raise ScpiError(-222, params[0])
            self.range_w = self.best_range_w(value)
        self.auto_range = False

    def _query_range(self, params: list[str]) -> str:
        keyword = self._range_spec().query_limit(params)
        if keyword is None:
            return format_e(self.active_range_w)
        return format_e(self._ranges()[0] if keyword == "MIN" else self._ranges()[-1])

    def _set_average(self, params: list[str]) -> None:
        spec = NumberSpec(1, 10000, default=1, resolution=1)
        self.average_count = int(spec.parse_params(params))

    def _query_average(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return str(self.average_count)

    def _configure(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self.last_measurement_w = None  # a new configuration invalidates the last result
        self.operation.condition &= ~OPER_DATA_READY

    def _query_configuration(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return "POW"

    def _initiate(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._sensor()
        self.take_time(self.average_count * SAMPLE_S)  # a reading averages its samples
        self.last_measurement_w = self.sample_w()
        self.operation.condition |= OPER_DATA_READY

    def _abort(self, params: list[str]) -> None:
        expect_params(params, 0, 0)

    def _fetch(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self._sensor()
        if self.last_measurement_w is None:
            raise ScpiError(-230, "FETC? without INIT")
        return self._reading_text(self.last_measurement_w)

    def _read(self, params: list[str]) -> str:
        self._initiate(params)
        return self._fetch(params)

    # -- corrections, other readings, status (docs/instrument-sim.md) ----------------------------

    def _value(self, attribute: str, spec: NumberSpec) -> tuple[SetHandler, QueryHandler]:
        def set_value(params: list[str]) -> None:
            setattr(self, attribute, spec.parse_params(params))

        def query_value(params: list[str]) -> str:
            return format_e(spec.query_value(params, getattr(self, attribute)))

        return set_value, query_value

    def _flag_command(self, pattern: str, attribute: str) -> Command:
        def set_flag(params: list[str]) -> None:
            expect_params(params, 1, 1)
            setattr(self, attribute, parse_bool(params[0]))

        def query_flag(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return str(int(getattr(self, attribute)))

        return Command(pattern, set=set_flag, query=query_flag)

    def _zero(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._sensor()
        self.zero_w = self._raw_w() - self.input_power_w  # the dark reading, noise included

    def _reading(self, value: Callable[[], float]) -> QueryHandler:
        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            self._sensor()
            return format_e(value())

        return query

    def _register(self, register: StatusRegister, *, filters: bool) -> list[Command]:
        root = "STATus:OPERation" if register is self.operation else "STATus:QUEStionable"

        def mask(name: str, header: str) -> Command:
            def set_mask(params: list[str]) -> None:
                setattr(register, name, int(MASK.parse_params(params)))

            def query_mask(params: list[str]) -> str:
                expect_params(params, 0, 0)
                return str(getattr(register, name))

            return Command(f"{root}:{header}", set=set_mask, query=query_mask)

        def event(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return str(register.read_event())

        def condition(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return str(register.condition)

        commands = [
            Command(f"{root}[:EVENt]?", query=event),
            Command(f"{root}:CONDition?", query=condition),
            mask("enable", "ENABle"),
        ]
        if filters:
            commands += [mask("ptransition", "PTRansition"), mask("ntransition", "NTRansition")]
        return commands

    def _commands(self) -> list[Command]:
        sense = "[SENSe[1]]"
        attenuation = self._value("attenuation_db", NumberSpec(-60.0, 60.0, units={"DB": 1.0}))
        beam = self._value("beam_diameter_mm", NumberSpec(0.1, 100.0, units={"MM": 1.0}))
        return [
            Command(f"{sense}:CORRection[:LOSS][:INPut][:MAGNitude]", set=attenuation[0],
                    query=attenuation[1]),
            Command(f"{sense}:CORRection:BEAMdiameter", set=beam[0], query=beam[1]),
            Command(f"{sense}:CORRection:COLLect:ZERO[:INITiate]", set=self._zero),
            Command(f"{sense}:CORRection:COLLect:ZERO:STATe?", query=lambda p: "0"),
            Command(f"{sense}:CORRection:COLLect:ZERO:MAGNitude?",
                    query=self._reading(lambda: self.zero_w)),
            self._flag_command("INPut[1]:FILTer[:LPASs][:STATe]", "low_bandwidth"),
            Command("MEASure[:SCALar]:CURRent[:DC]?",
                    query=self._reading(lambda: self._raw_w() * self.responsivity_a_w)),
            Command(f"{sense}:CURRent[:DC]:RANGe[:UPPer]?",
                    query=self._reading(lambda: self.active_range_w * self.responsivity_a_w)),
            Command("MEASure[:SCALar]:FREQuency?", query=self._reading(lambda: 0.0)),
            *self._register(self.operation, filters=True),
            *self._register(self.questionable, filters=False),
            Command("SYSTem:SENSor:IDN?", query=self._query_sensor_idn),
            Command(
                f"{sense}:CORRection:WAVelength",
                set=self._set_wavelength,
                query=self._query_wavelength,
            ),
            Command(f"{sense}:POWer[:DC]:UNIT", set=self._set_unit, query=self._query_unit),
            Command(
                f"{sense}:POWer[:DC]:RANGe:AUTO",
                set=self._set_auto_range,
                query=self._query_auto_range,
            ),
            Command(
                f"{sense}:POWer[:DC]:RANGe[:UPPer]", set=self._set_range, query=self._query_range
            ),
            Command(f"{sense}:AVERage[:COUNt]", set=self._set_average, query=self._query_average),
            Command("CONFigure[:SCALar][:POWer]", set=self._configure),
            Command("CONFigure?", query=self._query_configuration),
            Command("INITiate[:IMMediate]", set=self._initiate),
            Command("ABORt", set=self._abort),
            Command("FETCh?", query=self._fetch),
            Command("READ?", query=self._read),
            Command("MEASure[:SCALar][:POWer]", set=self._initiate, query=self._read),
        ]
