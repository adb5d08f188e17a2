"""Simulated Santec TSL-570 tunable laser (LAN socket, CR termination), SCPI and Legacy sets.

``:SYST:COMM:COD 1`` (SCPI) speaks metres, hertz and NR3 (``+1.55000000E-006``), integers
signed (``+1``); ``:SYST:COMM:COD 0`` (Legacy) speaks nanometres, terahertz and plain decimals.
Settings live in plain attributes (``wavelength_nm``, ``power_dbm``, ``output_on``...) and
``emitted_power_dbm`` is what a coupling layer feeds downstream. See docs/instrument-sim.md.
"""

from __future__ import annotations

import math
import random
import struct

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
    format_nr3,
    parse_bool,
    parse_int_choice,
)
from lumina_hal.sim.scpi.tsl570_sweep import SPEEDS_NM_S, Sweep, SweepSettings

C_M_PER_S = 299_792_458.0
WAVELENGTH_STEP_NM = 1e-4  # 0.1 pm
FREQUENCY_STEP_HZ = 10e6
POWER_STEP_DB = 0.01
MONITOR_FLOOR_DBM = -60.0  # what :POW:ACT? reads with no light out (a simulator choice)
ATTENUATION_DB = NumberSpec(0.0, 30.0, units={"DB": 1.0}, resolution=POWER_STEP_DB)
FINE_TUNING = NumberSpec(-100.0, 100.0, resolution=0.01)  # arbitrary units (the manual's)
FINE_TUNING_NM_PER_UNIT = 1e-4  # +-100 moves the light +-10 pm [sim]
SECONDS_0_999 = NumberSpec(0.0, 999.9, units={"S": 1.0, "MS": 1e-3})
SWEEP_STEP_MIN_NM = 1e-4
TUNE_SETTLE_S = 0.05  # a :WAV step: settle time plus travel at the top sweep speed [sim]
TUNE_SPEED_NM_S = 200.0
Handlers = tuple[SetHandler, QueryHandler]

_WAVELENGTH_UNITS_M = {"PM": 1e-12, "NM": 1e-9, "UM": 1e-6, "MM": 1e-3, "M": 1.0}
_FREQUENCY_UNITS_HZ = {"HZ": 1.0, "KHZ": 1e3, "MHZ": 1e6, "GHZ": 1e9, "THZ": 1e12}


def _mw(power_dbm: float) -> float:
    return 10.0 ** (power_dbm / 10.0)


def _in_base(units_si: dict[str, float], base_si: float) -> dict[str, float]:
    return {suffix: factor / base_si for suffix, factor in units_si.items()}


class SantecTsl570(SimulatedInstrument):
    """The TSL-570 command subset a HAL needs: wavelength, frequency, power, output, errors."""

    model = "santec-tsl570"
    read_termination = "\r"
    write_termination = "\r"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        serial: str = "00001",
        firmware: str = "0026.0026.0011",
        wavelength_min_nm: float = 1480.0,
        wavelength_max_nm: float = 1640.0,
        power_min_dbm: float = -15.0,
        power_max_dbm: float = 13.0,
        scpi_mode: bool = True,
        monitor_noise_db: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(clock)
        self.serial = serial
        self.firmware = firmware
        self.wavelength_min_nm = wavelength_min_nm
        self.wavelength_max_nm = wavelength_max_nm
        self.power_min_dbm = power_min_dbm
        self.power_max_dbm = power_max_dbm
        self.scpi_mode = scpi_mode  # :SYST:COMM:COD (not changed by *RST)
        self.interlock_locked = False  # True: external interlock open, no light (:SYST:LOCK? 1)
        self.monitor_noise_db = monitor_noise_db  # std of the :POW:ACT? reading
        self._rng = random.Random(seed)
        self.sweep = Sweep(self.clock)
        self.reset()
        self.engine = ScpiEngine(
            self._commands(), idn=self.idn, reset=self.reset, format_int=self._format_int,
            options="0",
        )

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """``*RST`` defaults (simulator choices, see the docs): 1550 nm, 0 dBm, output off."""
        self.wavelength_nm = 1550.0
        self.power_dbm = 0.0  # setpoint
        self.power_unit_mw = False  # :POW:UNIT 1
        self.output_on = False  # :POW:STAT
        self.shutter_closed = False  # :POW:SHUT 1
        self.attenuation_db = 0.0
        self.auto_power_control = True  # :POW:ATT:AUT 1
        self.wavelength_display_thz = False  # :WAV:UNIT 1
        self.fine_tuning = 0.0  # :WAV:FIN, arbitrary units; 0 when fine tuning is off
        self.sweep.stop()
        self.sweep.settings = SweepSettings()

    def idn(self) -> str:
        return f"SANTEC,TSL-570,{self.serial},{self.firmware}"

    @property
    def emitted_power_dbm(self) -> float | None:
        """Power leaving the fibre, or None when no light is out (off, shutter, interlock).
        Automatic power control holds the setpoint; manual mode is full power minus attenuation.
        """
        if not self.output_on or self.shutter_closed or self.interlock_locked:
            return None
        if self.auto_power_control:
            return self.power_dbm
        return self.power_max_dbm - self.attenuation_db

    @property
    def emitted_wavelength_nm(self) -> float:
        """The light's wavelength: the sweep's position while one runs, else the setpoint."""
        swept = self.sweep.emitted_nm()
        if swept is not None:
            return swept
        if self.sweep.rest_nm is not None:  # a sweep ended: the laser rests at its end
            self.wavelength_nm, self.sweep.rest_nm = self.sweep.rest_nm, None
        return self.wavelength_nm + self.fine_tuning * FINE_TUNING_NM_PER_UNIT

    @property
    def frequency_hz(self) -> float:
        return C_M_PER_S / (self.wavelength_nm * 1e-9)

    # -- formats -----------------------------------------------------------------------------

    def _format_int(self, value: int) -> str:
        return f"{value:+d}" if self.scpi_mode else str(value)

    def _format_float(self, value: float, legacy_decimals: int) -> str:
        return format_nr3(value) if self.scpi_mode else f"{value:.{legacy_decimals}f}"

    # -- wavelength and frequency ----------------------------------------------------------------

    def _wavelength_scale_nm(self) -> float:
        """nm per unit of a bare number: metres in SCPI mode, nanometres in Legacy mode."""
        return 1e9 if self.scpi_mode else 1.0

    def _wavelength_spec(self) -> NumberSpec:
        scale = self._wavelength_scale_nm()
        base_si = 1e-9 * scale
        return NumberSpec(
            self.wavelength_min_nm / scale,
            self.wavelength_max_nm / scale,
            units=_in_base(_WAVELENGTH_UNITS_M, base_si),
        )

    def _set_wavelength(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        value = self._wavelength_spec().parse_params(params) * self._wavelength_scale_nm()
        target = round(value / WAVELENGTH_STEP_NM) * WAVELENGTH_STEP_NM
        self.take_time(TUNE_SETTLE_S + abs(target - self.wavelength_nm) / TUNE_SPEED_NM_S)
        self.wavelength_nm = target
        self.fine_tuning = 0.0  # a new wavelength ends fine tuning

    def _query_wavelength(self, params: list[str]) -> str:
        self.emitted_wavelength_nm  # noqa: B018 - a finished sweep leaves the setpoint at its end
        current = self.wavelength_nm / self._wavelength_scale_nm()
        return self._format_float(self._wavelength_spec().query_value(params, current), 4)

    def _frequency_scale_hz(self) -> float:
        return 1.0 if self.scpi_mode else 1e12

    def _frequency_spec(self) -> NumberSpec:
        scale = self._frequency_scale_hz()
        return NumberSpec(
            C_M_PER_S / (self.wavelength_max_nm * 1e-9) / scale,
            C_M_PER_S / (self.wavelength_min_nm * 1e-9) / scale,
            units=_in_base(_FREQUENCY_UNITS_HZ, scale),
        )

    def _set_frequency(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        hz = self._frequency_spec().parse_params(params) * self._frequency_scale_hz()
        hz = round(hz / FREQUENCY_STEP_HZ) * FREQUENCY_STEP_HZ
        nm = C_M_PER_S / hz * 1e9
        self.wavelength_nm = min(max(nm, self.wavelength_min_nm), self.wavelength_max_nm)
        self.fine_tuning = 0.0

    def _query_frequency(self, params: list[str]) -> str:
        current = self.frequency_hz / self._frequency_scale_hz()
        return self._format_float(self._frequency_spec().query_value(params, current), 5)

    # -- power -------------------------------------------------------------------------------

    def _power_spec(self) -> NumberSpec:
        if self.power_unit_mw:
            return NumberSpec(_mw(self.power_min_dbm), _mw(self.power_max_dbm), units={"MW": 1.0})
        return NumberSpec(self.power_min_dbm, self.power_max_dbm, units={"DBM": 1.0})

    def _power_text(self, power_dbm: float) -> str:
        if self.power_unit_mw:
            return self._format_float(_mw(power_dbm), 4)
        return self._format_float(power_dbm, 2)

    def _set_power(self, params: list[str]) -> None:
        value = self._power_spec().parse_params(params)
        dbm = 10.0 * math.log10(value) if self.power_unit_mw else value
        dbm = round(dbm / POWER_STEP_DB) * POWER_STEP_DB
        self.power_dbm = min(max(dbm, self.power_min_dbm), self.power_max_dbm)

    def _query_power(self, params: list[str]) -> str:
        spec = self._power_spec()
        keyword = spec.query_limit(params)
        if keyword is None:
            return self._power_text(self.power_dbm)
        return self._format_float(spec.limit(keyword), 4 if self.power_unit_mw else 2)

    def _query_actual_power(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        emitted = self.emitted_power_dbm
        if emitted is None:
            return self._power_text(MONITOR_FLOOR_DBM)
        if self.monitor_noise_db > 0:
            emitted += self._rng.gauss(0.0, self.monitor_noise_db)
        return self._power_text(emitted)

    def _set_attenuation(self, params: list[str]) -> None:
        self.attenuation_db = ATTENUATION_DB.parse_params(params)

    # -- fine tuning, output, interlock -------------------------------------------------------

    def _set_fine_tuning(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        self.fine_tuning = FINE_TUNING.parse_params(params)

    def _query_fine_tuning(self, params: list[str]) -> str:
        return self._format_float(FINE_TUNING.query_value(params, self.fine_tuning), 2)

    def _disable_fine_tuning(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self.fine_tuning = 0.0

    def _set_output(self, params: list[str]) -> None:
        """``:POW:STAT``: switching on with the interlock open is refused (-221) [sim]."""
        expect_params(params, 1, 1)
        on = parse_bool(params[0])
        if on and self.interlock_locked:
            raise ScpiError(-221, "interlock open")
        self.output_on = on

    def _query_attenuation(self, params: list[str]) -> str:
        return self._format_float(ATTENUATION_DB.query_value(params, self.attenuation_db), 2)

    # -- sweeps (docs/instrument-sim.md, "Sweeps, triggers and logged readout") ---------------

    def _refuse_while_sweeping(self) -> None:
        if self.sweep.running:
            raise ScpiError(-221, "a sweep is running")

    def _nm_setting(self, attribute: str, minimum_nm: float, maximum_nm: float) -> Handlers:
        """A sweep wavelength (start, stop, step, trigger step) in the command set's unit."""

        def spec() -> NumberSpec:
            scale = self._wavelength_scale_nm()
            return NumberSpec(
                minimum_nm / scale, maximum_nm / scale,
                units=_in_base(_WAVELENGTH_UNITS_M, 1e-9 * scale),
            )

        def set_value(params: list[str]) -> None:
            self._refuse_while_sweeping()
            nm = spec().parse_params(params) * self._wavelength_scale_nm()
            nm = round(nm / WAVELENGTH_STEP_NM) * WAVELENGTH_STEP_NM
            setattr(self.sweep.settings, attribute, nm)

        def query_value(params: list[str]) -> str:
            current = getattr(self.sweep.settings, attribute) / self._wavelength_scale_nm()
            return self._format_float(spec().query_value(params, current), 4)

        return set_value, query_value

    def _hz_setting(self, attribute: str) -> Handlers:
        """``:FREQ:SWE:STAR|STOP``: the sweep's start or stop wavelength, given as c/λ."""

        def set_value(params: list[str]) -> None:
            self._refuse_while_sweeping()
            hz = self._frequency_spec().parse_params(params) * self._frequency_scale_hz()
            setattr(self.sweep.settings, attribute, C_M_PER_S / hz * 1e9)

        def query_value(params: list[str]) -> str:
            expect_params(params, 0, 0)
            hz = C_M_PER_S / (getattr(self.sweep.settings, attribute) * 1e-9)
            return self._format_float(hz / self._frequency_scale_hz(), 5)

        return set_value, query_value

    def _set_frequency_step(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        s = self.sweep.settings
        span_hz = C_M_PER_S / (self.wavelength_min_nm * 1e-9) - C_M_PER_S / (
            self.wavelength_max_nm * 1e-9
        )
        scale = self._frequency_scale_hz()
        spec = NumberSpec(FREQUENCY_STEP_HZ / scale, span_hz / scale,
                          units=_in_base(_FREQUENCY_UNITS_HZ, scale))
        hz = spec.parse_params(params) * scale
        centre_nm = (s.start_nm + s.stop_nm) / 2.0
        s.step_nm = max(centre_nm**2 * hz / (C_M_PER_S * 1e9), SWEEP_STEP_MIN_NM)

    def _query_frequency_step(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        s = self.sweep.settings
        centre_nm = (s.start_nm + s.stop_nm) / 2.0
        hz = s.step_nm * C_M_PER_S * 1e9 / centre_nm**2
        return self._format_float(hz / self._frequency_scale_hz(), 5)

    def _number_setting(
        self, attribute: str, spec: NumberSpec, *, integer: bool = False
    ) -> Handlers:
        def set_value(params: list[str]) -> None:
            self._refuse_while_sweeping()
            value = spec.parse_params(params)
            setattr(self.sweep.settings, attribute, round(value) if integer else value)

        def query_value(params: list[str]) -> str:
            value = getattr(self.sweep.settings, attribute)
            if integer:
                expect_params(params, 0, 0)
                return self._format_int(int(value))
            return self._format_float(spec.query_value(params, value), 1)

        return set_value, query_value

    def _set_speed(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        expect_params(params, 1, 1)
        self.sweep.settings.speed_nm_s = float(parse_int_choice(params[0], SPEEDS_NM_S))

    def _query_speed(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self._format_float(self.sweep.settings.speed_nm_s, 1)

    def _start_sweep(self, cycles: int) -> None:
        self._refuse_while_sweeping()
        reason = self.sweep.settings.conflict()
        if reason is not None:
            raise ScpiError(-221, reason)
        self.sweep.start(cycles)

    def _set_sweep_state(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        if parse_int_choice(params[0], (0, 1)):
            self._start_sweep(1)
        else:
            stopped_at = self.sweep.stop()
            if stopped_at is not None:
                self.wavelength_nm = stopped_at

    def _query_sweep_state(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self.emitted_wavelength_nm  # noqa: B018 - moves a finished sweep's laser to its end
        return self._format_int(self.sweep.status())

    def _repeat(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._start_sweep(self.sweep.settings.cycles)

    def _query_count(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self.sweep.status()
        return self._format_int(self.sweep.completed)

    def _soft_trigger(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self.sweep.trigger()

    def _set_trigger_output(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        expect_params(params, 1, 1)
        self.sweep.settings.trigger_output = parse_int_choice(params[0], (0, 1, 2, 3))

    def _query_trigger_output(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self._format_int(self.sweep.settings.trigger_output)

    def _query_points(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self.sweep.status()
        return self._format_int(len(self.sweep.log_nm))

    def _query_data(self, params: list[str]) -> str:
        """IEEE 488.2 definite block of little-endian float32 wavelengths in nm (latin-1)."""
        expect_params(params, 0, 0)
        self.sweep.status()
        payload = struct.pack(f"<{len(self.sweep.log_nm)}f", *self.sweep.log_nm)
        length = str(len(payload))
        return f"#{len(length)}{length}" + payload.decode("latin-1")

    def _sweep_commands(self) -> list[Command]:
        lo, hi = self.wavelength_min_nm, self.wavelength_max_nm
        span = hi - lo

        def named(pattern: str, handlers: Handlers) -> Command:
            return Command(pattern, set=handlers[0], query=handlers[1])

        return [
            named(":WAVelength:SWEep:STARt", self._nm_setting("start_nm", lo, hi)),
            named(":WAVelength:SWEep:STOP", self._nm_setting("stop_nm", lo, hi)),
            named(":WAVelength:SWEep:STEP", self._nm_setting("step_nm", SWEEP_STEP_MIN_NM, span)),
            named("[:WAVelength]:FREQuency:SWEep:STARt", self._hz_setting("start_nm")),
            named("[:WAVelength]:FREQuency:SWEep:STOP", self._hz_setting("stop_nm")),
            Command(
                "[:WAVelength]:FREQuency:SWEep:STEP",
                set=self._set_frequency_step, query=self._query_frequency_step,
            ),
            Command(":WAVelength:SWEep:SPEed", set=self._set_speed, query=self._query_speed),
            named(":WAVelength:SWEep:MODe",
                  self._number_setting("mode", NumberSpec(0, 3), integer=True)),
            named(":WAVelength:SWEep:DWELl", self._number_setting("dwell_s", SECONDS_0_999)),
            named(":WAVelength:SWEep:DELay", self._number_setting("delay_s", SECONDS_0_999)),
            named(":WAVelength:SWEep:CYCLes",
                  self._number_setting("cycles", NumberSpec(0, 999), integer=True)),
            Command(
                ":WAVelength:SWEep[:STATe]", set=self._set_sweep_state,
                query=self._query_sweep_state,
            ),
            Command(":WAVelength:SWEep:REPeat", set=self._repeat),
            Command(":WAVelength:SWEep:COUNt?", query=self._query_count),
            self._sweep_flag(":TRIGger:INPut:EXTernal", "trigger_input_external"),
            Command(":TRIGger:INPut:SOFTtrigger", set=self._soft_trigger),
            Command(
                ":TRIGger:OUTPut", set=self._set_trigger_output, query=self._query_trigger_output
            ),
            named(":TRIGger:OUTPut:STEP",
                  self._nm_setting("trigger_step_nm", SWEEP_STEP_MIN_NM, span)),
            Command(":WAVelength:SWEep:RANGe:MINimum?", query=self._range_query(lo, "nm")),
            Command(":WAVelength:SWEep:RANGe:MAXimum?", query=self._range_query(hi, "nm")),
            Command("[:WAVelength]:FREQuency:SWEep:RANGe:MINimum?",
                    query=self._range_query(hi, "hz")),
            Command("[:WAVelength]:FREQuency:SWEep:RANGe:MAXimum?",
                    query=self._range_query(lo, "hz")),
            Command(":READout:POINts?", query=self._query_points),
            Command(":READout:DATa?", query=self._query_data),
        ]

    def _range_query(self, wavelength_nm: float, as_unit: str) -> QueryHandler:
        """The sweepable range's ends: a wavelength, or its frequency c/λ."""

        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            if as_unit == "hz":
                hz = C_M_PER_S / (wavelength_nm * 1e-9)
                return self._format_float(hz / self._frequency_scale_hz(), 5)
            return self._format_float(wavelength_nm / self._wavelength_scale_nm(), 4)

        return query

    def _sweep_flag(self, pattern: str, attribute: str) -> Command:
        def set_flag(params: list[str]) -> None:
            self._refuse_while_sweeping()
            expect_params(params, 1, 1)
            setattr(self.sweep.settings, attribute, parse_bool(params[0]))

        def query_flag(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return self._format_int(int(getattr(self.sweep.settings, attribute)))

        return Command(pattern, set=set_flag, query=query_flag)

    # -- the table -----------------------------------------------------------------------------

    def _flag(self, pattern: str, attribute: str, *, enumerated: bool = False) -> Command:
        """A two-state setting stored as a bool in ``attribute``; queries answer 0/1 (+0/+1
        in SCPI mode). ``enumerated`` settings (units, command set) take only 0 or 1.
        """

        def set_flag(params: list[str]) -> None:
            expect_params(params, 1, 1)
            if enumerated:
                setattr(self, attribute, bool(parse_int_choice(params[0], (0, 1))))
            else:
                setattr(self, attribute, parse_bool(params[0]))

        return Command(pattern, set=set_flag, query=self._flag_query(attribute))

    def _flag_query(self, attribute: str) -> QueryHandler:
        def query_flag(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return self._format_int(int(getattr(self, attribute)))

        return query_flag

    def _query_lock(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self._format_int(int(self.interlock_locked))

    def _query_version(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self.firmware

    def _commands(self) -> list[Command]:
        return [
            Command(":WAVelength", set=self._set_wavelength, query=self._query_wavelength),
            self._flag(":WAVelength:UNIT", "wavelength_display_thz", enumerated=True),
            Command(
                "[:WAVelength]:FREQuency", set=self._set_frequency, query=self._query_frequency
            ),
            Command(":POWer[:LEVel]", set=self._set_power, query=self._query_power),
            Command(":POWer:ACTual[:LEVel]?", query=self._query_actual_power),
            Command(":POWer:STATe", set=self._set_output, query=self._flag_query("output_on")),
            Command(
                ":WAVelength:FINetuning", set=self._set_fine_tuning,
                query=self._query_fine_tuning,
            ),
            Command(":WAVelength:FINetuning:DISable", set=self._disable_fine_tuning),
            self._flag(":POWer:SHUTter", "shutter_closed"),
            self._flag(":POWer:UNIT", "power_unit_mw", enumerated=True),
            Command(":POWer:ATTenuation", set=self._set_attenuation, query=self._query_attenuation),
            self._flag(":POWer:ATTenuation:AUTo", "auto_power_control"),
            self._flag(":SYSTem:COMMunicate:CODe", "scpi_mode", enumerated=True),
            Command(":SYSTem:LOCK?", query=self._query_lock),
            Command(":SYSTem:VERSion?", query=self._query_version),
            *self._sweep_commands(),
        ]
