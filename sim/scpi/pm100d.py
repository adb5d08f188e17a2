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
from typing import NoReturn, TypeVar

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

T = TypeVar("T")
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
DEFAULT_RESPONSE_A_W = 1.0
RESPONSE_A_W = NumberSpec(1e-5, 1e3, default=DEFAULT_RESPONSE_A_W, units={"A": 1.0})  # [sim]
BEAM_MM = NumberSpec(0.1, 100.0, default=9.5, units={"MM": 1.0})
LOSS_DB = NumberSpec(-60.0, 60.0, default=0.0, units={"DB": 1.0})
FREQUENCY_RANGE_HZ = (0.0, 100e3)  # FREQ:RANG:LOW?/UPP? [sim: no modulation is modelled]
#: Measurements a photodiode head cannot make (thermal, pyro and energy sensors only): the
#: commands exist and answer -221 "Settings conflict" with a photodiode sensor [sim].
NOT_FOR_PHOTODIODES = (
    "CONFigure[:SCALar]:{0}", "MEASure[:SCALar]:{0}",
)
OTHER_SENSOR_QUANTITIES = ("VOLTage[:DC]", "ENERgy", "EDENsity", "TEMPerature", "RESistance")
OTHER_SENSOR_SETTINGS = (
    "[SENSe[1]]:VOLTage[:DC]:RANGe:AUTO", "[SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]",
    "[SENSe[1]]:VOLTage[:DC]:REFerence", "[SENSe[1]]:VOLTage[:DC]:REFerence:STATe",
    "[SENSe[1]]:ENERgy:RANGe[:UPPer]", "[SENSe[1]]:ENERgy:REFerence",
    "[SENSe[1]]:ENERgy:REFerence:STATe", "[SENSe[1]]:CORRection:ENERgy[:PYRO][:RESPonse]",
    "[SENSe[1]]:PEAKdetector:THReshold", "INPut[1]:THERmopile:ACCelerator[:STATe]",
    "INPut[1]:THERmopile:ACCelerator:TAU",
)


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
        self._rng = random.Random(seed)
        self.operation = StatusRegister()
        self.questionable = StatusRegister()
        self.measurement = StatusRegister()  # STAT:MEAS and STAT:AUX: no bits modelled [sim]
        self.auxiliary = StatusRegister()
        self.beeper_on = True  # SYST:BEEP:STAT, SYST:LFR, DISP:BRIG/CONT, SYST:DATE/TIME: stored
        self.line_frequency_hz = 50.0
        self.display_brightness = 1.0
        self.display_contrast = 0.5
        self.date = (2026, 1, 1)
        self.time_of_day = (0, 0, 0)
        self.adapter_type = "PHOT"
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
        self.responsivity_a_w = DEFAULT_RESPONSE_A_W  # photodiode response (MEAS:CURR?, A/W)
        self.configuration = "POW"  # what INIT measures and FETC? returns (CONF:...)
        self.power_reference_w = 0.0  # delta mode (POW:REF, POW:REF:STAT) [sim: 0 default]
        self.power_delta = False
        self.current_reference_a = 0.0
        self.current_delta = False
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
        power = (self._raw_w() - self.zero_w) * 10.0 ** (self.attenuation_db / 10.0)
        return power - self.power_reference_w if self.power_delta else power

    def _raw_w(self) -> float:
        """What the sensor sees in one averaged sample (W)."""
        power = self.input_power_w + self.dark_power_w
        sigma = self.noise_w / math.sqrt(self.average_count)
        return power + self._rng.gauss(0.0, sigma) if sigma > 0 else power

    def _reading_text(self, power_w: float) -> str:
        shown_w = power_w + (self.power_reference_w if self.power_delta else 0.0)
        on_sensor_w = shown_w / 10.0 ** (self.attenuation_db / 10.0) + self.zero_w
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

    def _configure(self, params: list[str], quantity: str = "POW") -> None:
        expect_params(params, 0, 0)
        self.configuration = quantity
        self.last_measurement_w = None  # a new configuration invalidates the last result
        self.operation.condition &= ~OPER_DATA_READY

    def _query_configuration(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self.configuration

    def _initiate(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._sensor()
        self.take_time(self.average_count * SAMPLE_S)  # a reading averages its samples
        self.last_measurement_w = self.sample_w()  # in the unit of the configuration
        if self.configuration == "CURR":
            self.last_measurement_w = self.current_a()
        elif self.configuration == "PDEN":
            self.last_measurement_w = self.last_measurement_w / self.beam_area_cm2()
        elif self.configuration == "FREQ":
            self.last_measurement_w = 0.0
        self.operation.condition |= OPER_DATA_READY

    def current_a(self) -> float:
        """The photocurrent (A): power on the sensor × response, minus the delta reference."""
        value = self._raw_w() * self.responsivity_a_w
        return value - self.current_reference_a if self.current_delta else value

    def beam_area_cm2(self) -> float:
        return math.pi * (self.beam_diameter_mm / 20.0) ** 2

    def _abort(self, params: list[str]) -> None:
        expect_params(params, 0, 0)

    def _fetch(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self._sensor()
        if self.last_measurement_w is None:
            raise ScpiError(-230, "FETC? without INIT")
        if self.configuration != "POW":
            return format_e(self.last_measurement_w)
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

    def _preset_status(self, params: list[str]) -> None:
        """``STAT:PRES``: every register's enable mask 0, PTR all ones, NTR 0 (SCPI 99)."""
        expect_params(params, 0, 0)
        for register in (self.operation, self.questionable, self.measurement, self.auxiliary):
            register.enable, register.ptransition, register.ntransition = 0, 32767, 0

    def _register(self, register: StatusRegister, root: str) -> list[Command]:

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

        return [
            Command(f"{root}[:EVENt]?", query=event),
            Command(f"{root}:CONDition?", query=condition),
            mask("enable", "ENABle"),
            mask("ptransition", "PTRansition"),
            mask("ntransition", "NTRansition"),
        ]

    # -- measurement functions, delta mode, system and display (ThorlabsPM100's tree) -----------

    def _measure(self, quantity: str) -> list[Command]:
        """``CONF:<q>``, ``MEAS:<q>`` (configure + INIT) and ``MEAS:<q>?`` (+ FETC?)."""

        def configure(params: list[str]) -> None:
            self._configure(params, quantity)

        def measure(params: list[str]) -> None:
            self._configure(params, quantity)
            self._initiate(params)

        def measure_query(params: list[str]) -> str:
            measure(params)
            return self._fetch(params)

        node = {"POW": "[:POWer]", "CURR": ":CURRent[:DC]", "PDEN": ":PDENsity",
                "FREQ": ":FREQuency"}[quantity]  # fmt: skip
        return [
            Command(f"CONFigure[:SCALar]{node}", set=configure),
            Command(f"MEASure[:SCALar]{node}", set=measure, query=measure_query),
        ]

    def _other_sensor(self, pattern: str) -> Command:
        """A command of thermal, pyroelectric or energy heads: -221 with a photodiode [sim]."""

        def refuse(params: list[str]) -> NoReturn:
            sensor = self._sensor()
            raise ScpiError(-221, f"Settings conflict; {sensor.name} is a photodiode sensor")

        return Command(pattern, set=refuse, query=refuse)

    def _current_range(self) -> Command:
        """``CURR:RANG``: the power range × the response (the ranges are one setting)."""

        def set_range(params: list[str]) -> None:
            expect_params(params, 1, 1)
            keyword = limit_keyword(params[0])
            if keyword is None:
                watts = NumberSpec(0.0, math.inf, units={"A": 1.0}).parse(params[0])
                params = [format_e(watts / self.responsivity_a_w)]
            self._set_range(params)

        def query(params: list[str]) -> str:
            return format_e(float(self._query_range(params)) * self.responsivity_a_w)

        return Command("[SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]", set=set_range, query=query)

    def _stored_text(self, pattern: str, attribute: str, parse: Callable[[list[str]], T],
                     show: Callable[[T], str]) -> Command:
        def set_value(params: list[str]) -> None:
            setattr(self, attribute, parse(params))

        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return show(getattr(self, attribute))

        return Command(pattern, set=set_value, query=query)

    def _system_commands(self) -> list[Command]:
        def triple(params: list[str]) -> tuple[int, int, int]:
            expect_params(params, 3, 3)
            first, second, third = (int(NumberSpec(0, 9999, resolution=1).parse(p)) for p in params)
            return first, second, third

        def line_frequency(params: list[str]) -> float:
            value = NumberSpec(50, 60, units={"HZ": 1.0}).parse_params(params)
            if value not in (50, 60):
                raise ScpiError(-224, params[0])
            return value

        def fraction(params: list[str]) -> float:
            return NumberSpec(0.0, 1.0).parse_params(params)

        def adapter(params: list[str]) -> str:
            expect_params(params, 1, 1)
            return parse_choice(params[0], ("PHOTodiode", "THERmal", "PYRo"))[:4]

        def sensor_text(value: Callable[[SensorHead], str]) -> QueryHandler:
            def query(params: list[str]) -> str:
                expect_params(params, 0, 0)
                return value(self._sensor())

            return query

        return [
            Command("CALibration:STRing?", query=sensor_text(lambda s: f'"{s.calibration}"')),
            Command("SYSTem:VERSion?", query=lambda p: "1999.0"),
            self._flag_command("SYSTem:BEEPer:STATe", "beeper_on"),
            Command("SYSTem:BEEPer[:IMMediate]", set=lambda p: expect_params(p, 0, 0)),
            self._stored_text("SYSTem:LFRequency", "line_frequency_hz", line_frequency,
                              lambda v: f"{v:g}"),
            self._stored_text("SYSTem:DATE", "date", triple, lambda v: "{},{},{}".format(*v)),
            self._stored_text("SYSTem:TIME", "time_of_day", triple,
                              lambda v: "{},{},{}".format(*v)),
            self._stored_text("DISPlay:BRIGhtness", "display_brightness", fraction, format_e),
            self._stored_text("DISPlay:CONTrast", "display_contrast", fraction, format_e),
            self._stored_text("INPut[1]:ADAPter[:TYPE]", "adapter_type", adapter, str),
        ]

    def _commands(self) -> list[Command]:
        sense = "[SENSe[1]]"
        attenuation = self._value("attenuation_db", LOSS_DB)
        beam = self._value("beam_diameter_mm", BEAM_MM)
        response = self._value("responsivity_a_w", RESPONSE_A_W)
        top_w = self._ranges()[-1]
        power_ref = self._value(
            "power_reference_w", NumberSpec(-top_w, top_w, default=0.0, units=_POWER_UNITS_W)
        )
        current_ref = self._value(
            "current_reference_a", NumberSpec(-1.0, 1.0, default=0.0, units={"A": 1.0})
        )
        return [
            Command(f"{sense}:CORRection:POWer[:PDIOde][:RESPonse]", set=response[0],
                    query=response[1]),
            Command(f"{sense}:POWer[:DC]:REFerence", set=power_ref[0], query=power_ref[1]),
            self._flag_command(f"{sense}:POWer[:DC]:REFerence:STATe", "power_delta"),
            Command(f"{sense}:CURRent[:DC]:REFerence", set=current_ref[0], query=current_ref[1]),
            self._flag_command(f"{sense}:CURRent[:DC]:REFerence:STATe", "current_delta"),
            Command(f"{sense}:CURRent[:DC]:RANGe:AUTO", set=self._set_auto_range,
                    query=self._query_auto_range),
            self._current_range(),
            Command(f"{sense}:FREQuency:RANGe[:UPPer]?",
                    query=lambda p: format_e(FREQUENCY_RANGE_HZ[1])),
            Command(f"{sense}:FREQuency:RANGe:LOWer?",
                    query=lambda p: format_e(FREQUENCY_RANGE_HZ[0])),
            Command(f"{sense}:CORRection:COLLect:ZERO:ABORt", set=lambda p: None),
            *self._measure("POW"), *self._measure("CURR"), *self._measure("PDEN"),
            *self._measure("FREQ"),
            *(self._other_sensor(pattern.format(quantity)) for pattern in NOT_FOR_PHOTODIODES
              for quantity in OTHER_SENSOR_QUANTITIES),
            *(self._other_sensor(pattern) for pattern in OTHER_SENSOR_SETTINGS),
            *self._system_commands(),
            Command(f"{sense}:CORRection[:LOSS][:INPut][:MAGNitude]", set=attenuation[0],
                    query=attenuation[1]),
            Command(f"{sense}:CORRection:BEAMdiameter", set=beam[0], query=beam[1]),
            Command(f"{sense}:CORRection:COLLect:ZERO[:INITiate]", set=self._zero),
            Command(f"{sense}:CORRection:COLLect:ZERO:STATe?", query=lambda p: "0"),
            Command(f"{sense}:CORRection:COLLect:ZERO:MAGNitude?",
                    query=self._reading(lambda: self.zero_w)),
            self._flag_command("INPut[1][:PDIOde]:FILTer[:LPASs][:STATe]", "low_bandwidth"),
            *self._register(self.operation, "STATus:OPERation"),
            *self._register(self.questionable, "STATus:QUEStionable"),
            *self._register(self.measurement, "STATus:MEASurement"),
            *self._register(self.auxiliary, "STATus:AUXillary"),
            Command("STATus:PRESet", set=self._preset_status),
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
            Command("CONFigure?", query=self._query_configuration),
            Command("INITiate[:IMMediate]", set=self._initiate),
            Command("ABORt", set=self._abort),
            Command("FETCh?", query=self._fetch),
            Command("READ?", query=self._read),
        ]
