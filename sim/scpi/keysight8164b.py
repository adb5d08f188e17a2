"""Simulated Keysight (Agilent) 8164B mainframe: a tunable laser in slot 0, a power sensor in
slot 2 (GPIB/LAN, LF termination).

Commands carry the mainframe slot as a numeric suffix (``SOUR0:WAV``, ``SENS2:CHAN1:POW:WAV``;
no suffix addresses the module too, the lowest populated slot of its kind); a slot without that
module is -113. ``SOUR0:POW?`` answers the setpoint, ``SOUR0:POW:ACT?`` the power actually
emitted (0 with the output off, and capped by what the laser can give at its wavelength).
``LOCK 1,<pin>`` locks the laser: it goes off and refuses to switch on until ``LOCK 0,<pin>``.
Floats are NR3 with 3-digit exponents, integers signed. docs/instrument-sim.md, "Keysight 8164B".
"""

from __future__ import annotations

import struct

from lumina_hal.sim.scpi.engine import Clock, Command, ScpiEngine, SimulatedInstrument
from lumina_hal.sim.scpi.keysight8164b_sweep import (
    CHECK_TEXT,
    RUNNING,
    Sweep816x,
    SweepSettings816x,
)
from lumina_hal.sim.scpi.params import (
    NumberSpec,
    ScpiError,
    dbm_to_watts,
    expect_params,
    format_nr3,
    parse_bool,
    parse_choice,
    split_number,
    watts_to_dbm,
)

WAVELENGTH_STEP_M = 1e-13  # 0.1 pm
LOCK_PIN = "1234"  # the factory PIN
FLOOR_DBM = -100.0  # what an actual-power or sensor reading shows for no light [sim]
PEAK_NM, ROLL_OFF_DB_PER_NM2 = 1550.0, 0.002  # the laser's available power vs λ [sim]
_WAVELENGTH_M = {"PM": 1e-12, "NM": 1e-9, "UM": 1e-6, "MM": 1e-3, "M": 1.0}
_WATTS = {"PW": 1e-12, "NW": 1e-9, "UW": 1e-6, "MW": 1e-3, "W": 1.0, "WATT": 1.0}
_DBM = {"DBM": 1.0, "MDBM": 1e-3}
_SECONDS = {"S": 1.0, "MS": 1e-3, "US": 1e-6}
SPEED_M_S = NumberSpec(0.5e-9, 200e-9, default=40e-9, units=_WAVELENGTH_M)  # [sim] range
ATIME_S = NumberSpec(100e-6, 10.0, default=100e-6, units=_SECONDS)

TLS = "SOURce{0}[:CHANnel{1}]"
SENSOR = "SENSe{2}[:CHANnel{1}]"


class Keysight8164B(SimulatedInstrument):
    """8164B with an 81600B-class TLS (slot 0) and an 81634B-class sensor (slot 2)."""

    model = "keysight-8164b"
    read_termination = "\n"
    write_termination = "\n"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        serial: str = "MY48100000",
        firmware: str = "V5.25(72637)",
        vendor: str = "Keysight Technologies",
        wavelength_min_nm: float = 1460.0,
        wavelength_max_nm: float = 1640.0,
        power_min_dbm: float = -10.0,
        power_max_dbm: float = 10.0,
    ) -> None:
        super().__init__(clock)
        self.serial, self.firmware, self.vendor = serial, firmware, vendor
        self.wavelength_min_nm, self.wavelength_max_nm = wavelength_min_nm, wavelength_max_nm
        self.power_min_dbm, self.power_max_dbm = power_min_dbm, power_max_dbm
        self.locked = False  # LOCK is a mainframe setting: *RST does not change it
        self.input_power_w = 0.0  # light on the slot-2 sensor (a coupling layer sets it)
        self.sweep = Sweep816x(self.clock)
        self.reset()
        self.engine = ScpiEngine(
            self._commands(), idn=self.idn, reset=self.reset, format_int=lambda v: f"{v:+d}",
            no_error='+0,"No error"',
        )  # fmt: skip

    def idn(self) -> str:
        return f"{self.vendor},8164B,{self.serial},{self.firmware}"

    def reset(self) -> None:
        """``*RST`` [sim values]: 1550 nm, 0 dBm, dBm unit, output off; sensor at 1550 nm, W."""
        self.wavelength_nm = 1550.0
        self.power_dbm = 0.0  # setpoint
        self.power_unit_w = False
        self.output_on = False
        self.sensor_wavelength_nm = 1550.0
        self.sensor_unit_w = True
        self.averaging_time_s = ATIME_S.minimum
        self.trigger_output = "DIS"  # TRIG0:OUTP
        self.trigger_input = "IGN"  # TRIG0:INP
        self.sweep.stop()
        self.sweep.settings = SweepSettings816x()

    # -- physics -----------------------------------------------------------------------------

    def available_power_dbm(self, wavelength_nm: float) -> float:
        """The most the laser gives at ``wavelength_nm`` (a parabolic gain curve) [sim]."""
        return self.power_max_dbm - ROLL_OFF_DB_PER_NM2 * (wavelength_nm - PEAK_NM) ** 2

    @property
    def emitted_wavelength_nm(self) -> float:
        """The light's wavelength: the sweep's position while one runs, else the setpoint."""
        swept = self.sweep.emitted_nm()
        return self.wavelength_nm if swept is None else swept

    @property
    def emitted_power_dbm(self) -> float | None:
        """What leaves the fibre: None with the output off, else the setpoint, capped."""
        if not self.output_on:
            return None
        return min(self.power_dbm, self.available_power_dbm(self.emitted_wavelength_nm))

    # -- formats and units -----------------------------------------------------------------------

    def _power_text(self, dbm: float, in_watts: bool) -> str:
        return format_nr3(dbm_to_watts(dbm) if in_watts else dbm)

    def _wavelength_spec(self) -> NumberSpec:
        lo, hi = self.wavelength_min_nm * 1e-9, self.wavelength_max_nm * 1e-9
        return NumberSpec(lo, hi, default=(lo + hi) / 2, units=_WAVELENGTH_M)

    def _power_spec(self) -> NumberSpec:
        """Setpoint: a bare number is in the unit of ``POW:UNIT``; suffixes either unit."""
        lo, hi = self.power_min_dbm, self.power_max_dbm
        return NumberSpec(lo, hi, default=(lo + hi) / 2)

    def _parse_power_dbm(self, text: str) -> float:
        spec = self._power_spec()
        if _is_keyword(text):
            return spec.parse(text)
        value, suffix = split_number(text)
        if suffix in _DBM:
            dbm = value * _DBM[suffix]
        elif suffix in _WATTS:
            dbm = _to_dbm(value * _WATTS[suffix], text)
        elif suffix:
            raise ScpiError(-131, text)
        else:
            dbm = _to_dbm(value, text) if self.power_unit_w else value
        return spec.parse(repr(dbm))

    # -- handlers: laser (slot 0) ------------------------------------------------------------

    def _set_wavelength(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        metres = self._wavelength_spec().parse_params(params)
        self.wavelength_nm = round(metres / WAVELENGTH_STEP_M) * WAVELENGTH_STEP_M * 1e9

    def _query_wavelength(self, params: list[str]) -> str:
        return format_nr3(self._wavelength_spec().query_value(params, self.wavelength_nm * 1e-9))

    def _set_power(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.power_dbm = round(self._parse_power_dbm(params[0]), 3)

    def _query_power(self, params: list[str]) -> str:
        spec = self._power_spec()
        keyword = spec.query_limit(params)
        dbm = self.power_dbm if keyword is None else spec.limit(keyword)
        return self._power_text(dbm, self.power_unit_w)

    def _query_actual_power(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        emitted = self.emitted_power_dbm
        return self._power_text(FLOOR_DBM if emitted is None else emitted, self.power_unit_w)

    def _set_power_unit(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.power_unit_w = _parse_unit(params[0])

    def _query_power_unit(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{int(self.power_unit_w):+d}"

    def _set_output(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        on = parse_bool(params[0])
        if on and self.locked:
            raise ScpiError(-221, "the laser is locked (LOCK 0,<pin> unlocks it)")
        self.output_on = on

    def _query_output(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{int(self.output_on):+d}"

    def _set_lock(self, params: list[str]) -> None:
        expect_params(params, 2, 2)
        lock = parse_bool(params[0])
        if params[1].strip().strip('"') != LOCK_PIN:
            raise ScpiError(-224, "wrong PIN")
        self.locked = lock
        if lock:
            self.output_on = False  # a locked laser is off

    def _query_lock(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{int(self.locked):+d}"

    # -- handlers: sensor (slot 2) -------------------------------------------------------------

    def _set_sensor_wavelength(self, params: list[str]) -> None:
        metres = NumberSpec(800e-9, 1700e-9, default=1550e-9, units=_WAVELENGTH_M).parse_params(
            params
        )
        self.sensor_wavelength_nm = metres * 1e9

    def _query_sensor_wavelength(self, params: list[str]) -> str:
        spec = NumberSpec(800e-9, 1700e-9, default=1550e-9)
        return format_nr3(spec.query_value(params, self.sensor_wavelength_nm * 1e-9))

    def _set_sensor_unit(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.sensor_unit_w = _parse_unit(params[0])

    def _query_sensor_unit(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{int(self.sensor_unit_w):+d}"

    def _set_atime(self, params: list[str]) -> None:
        self.averaging_time_s = ATIME_S.parse_params(params)

    def _query_atime(self, params: list[str]) -> str:
        return format_nr3(ATIME_S.query_value(params, self.averaging_time_s))

    def _fetch(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        dbm = watts_to_dbm(self.input_power_w) if self.input_power_w > 0 else FLOOR_DBM
        return self._power_text(max(dbm, FLOOR_DBM), self.sensor_unit_w)

    def _read(self, params: list[str]) -> str:
        self.take_time(self.averaging_time_s)
        return self._fetch(params)

    # -- handlers: the laser's sweep ------------------------------------------------------------

    def _refuse_while_sweeping(self) -> None:
        if self.sweep.state() != 0:
            raise ScpiError(-221, "a sweep is running")

    def _sweep_nm(self, attribute: str, low_nm: float, high_nm: float) -> Command:
        """A sweep wavelength (start, stop, step): set with units (m default), read in m."""

        def spec() -> NumberSpec:
            return NumberSpec(low_nm * 1e-9, high_nm * 1e-9, units=_WAVELENGTH_M)

        def set_value(params: list[str]) -> None:
            self._refuse_while_sweeping()
            setattr(self.sweep.settings, attribute, spec().parse_params(params) * 1e9)

        def query(params: list[str]) -> str:
            current = getattr(self.sweep.settings, attribute) * 1e-9
            return format_nr3(spec().query_value(params, current))

        node = {"start_nm": "STARt", "stop_nm": "STOP", "step_nm": "STEP[:WIDTh]"}[attribute]
        return Command(f"{TLS}:WAVelength:SWEep:{node}", set=set_value, query=query)

    def _set_speed(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        expect_params(params, 1, 1)
        text = params[0].strip().upper()
        text = text[:-2] if text.endswith("/S") else text  # "40nm/s": a speed's suffix
        self.sweep.settings.speed_nm_s = SPEED_M_S.parse(text) * 1e9

    def _query_speed(self, params: list[str]) -> str:
        return format_nr3(SPEED_M_S.query_value(params, self.sweep.settings.speed_nm_s * 1e-9))

    def _sweep_choice(self, attribute: str, choices: tuple[str, ...]) -> Command:
        def set_value(params: list[str]) -> None:
            self._refuse_while_sweeping()
            expect_params(params, 1, 1)
            value = _short_choice(params[0], choices)
            if attribute == "two_way":
                self.sweep.settings.two_way = value == "TWOW"
            else:
                self.sweep.settings.mode = value

        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            if attribute == "two_way":
                return "TWOW" if self.sweep.settings.two_way else "ONEW"
            return self.sweep.settings.mode

        node = "REPeat" if attribute == "two_way" else "MODE"
        return Command(f"{TLS}:WAVelength:SWEep:{node}", set=set_value, query=query)

    def _set_llog(self, params: list[str]) -> None:
        self._refuse_while_sweeping()
        expect_params(params, 1, 1)
        self.sweep.settings.lambda_logging = parse_bool(params[0])

    def _query_llog(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{int(self.sweep.settings.lambda_logging):+d}"

    def _query_check(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        code = self.sweep.settings.check(self.trigger_output)
        return f"{code},{CHECK_TEXT[code]}"

    def _set_sweep_state(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        value, suffix = split_number(params[0])
        if suffix or value not in (0, 1, 2):
            raise ScpiError(-224, params[0])
        if value == 0:
            self.sweep.stop()
        elif value == 2:
            self.sweep.pause()
        else:
            if self.sweep.state() == 0:
                code = self.sweep.settings.check(self.trigger_output)
                if code:
                    raise ScpiError(-221, CHECK_TEXT[code])
            self.sweep.start()

    def _query_sweep_state(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{self.sweep.state():+d}"

    def _manual_step(self, direction: int) -> Command:
        def step(params: list[str]) -> None:
            expect_params(params, 0, 0)
            if self.sweep.state() == RUNNING and self.sweep.settings.mode == "CONT":
                raise ScpiError(-221, "a continuous sweep is running")
            self.sweep.step(direction)

        node = "NEXT" if direction > 0 else "PREVious"
        return Command(f"{TLS}:WAVelength:SWEep:STEP:{node}", set=step)

    def _query_expected(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return f"{self.sweep.settings.points():+d}"

    def _llog_param(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        parse_choice(params[0], ("LLOG",))

    def _query_points(self, params: list[str]) -> str:
        self._llog_param(params)
        self.sweep.state()
        return f"{len(self.sweep.log_nm):+d}"

    def _query_data(self, params: list[str]) -> str:
        """IEEE 488.2 definite block of little-endian float64 wavelengths in m (latin-1)."""
        self._llog_param(params)
        self.sweep.state()
        metres = [nm * 1e-9 for nm in self.sweep.log_nm]
        payload = struct.pack(f"<{len(metres)}d", *metres)
        length = str(len(payload))
        return f"#{len(length)}{length}" + payload.decode("latin-1")

    def _sweep_commands(self) -> list[Command]:
        lo, hi = self.wavelength_min_nm, self.wavelength_max_nm
        return [
            self._sweep_nm("start_nm", lo, hi),
            self._sweep_nm("stop_nm", lo, hi),
            self._sweep_nm("step_nm", 1e-4, hi - lo),
            Command(f"{TLS}:WAVelength:SWEep:SPEed", set=self._set_speed,
                    query=self._query_speed),
            self._sweep_choice("mode", ("STEPped", "MANual", "CONTinuous")),
            self._sweep_choice("two_way", ("ONEWay", "TWOWay")),
            Command(f"{TLS}:WAVelength:SWEep:LLOGging", set=self._set_llog,
                    query=self._query_llog),
            Command(f"{TLS}:WAVelength:SWEep:CHECkparams?", query=self._query_check),
            Command(f"{TLS}:WAVelength:SWEep:EXPectedtriggers?", query=self._query_expected),
            Command(f"{TLS}:WAVelength:SWEep[:STATe]", set=self._set_sweep_state,
                    query=self._query_sweep_state),
            self._manual_step(+1),
            self._manual_step(-1),
            Command(f"{TLS}:READout:POINts?", query=self._query_points),
            Command(f"{TLS}:READout:DATA?", query=self._query_data),
        ]  # fmt: skip

    def _trigger(self, attribute: str, choices: tuple[str, ...]) -> Command:
        """``TRIG0:OUTP DIS|STF|SWF|SWST`` / ``TRIG0:INP IGN|NEXT|SWS``: stored, answered as set
        (short form) [sim: no trigger lines are modelled]."""

        def set_value(params: list[str]) -> None:
            expect_params(params, 1, 1)
            setattr(self, attribute, _short_choice(params[0], choices))

        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return str(getattr(self, attribute))

        node = "OUTPut" if attribute == "trigger_output" else "INPut"
        return Command(f"TRIGger{{0}}[:CHANnel{{1}}]:{node}", set=set_value, query=query)

    def _slot_idn(self, module: str) -> Command:
        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return f"{self.vendor},{module},{self.serial[:2]}0000000{module[-2]},V1.0"

        return Command(f"SLOT{{{0 if module == '81600B' else 2}}}:IDN?", query=query)

    def _commands(self) -> list[Command]:
        return [
            Command(f"{TLS}:WAVelength[:CW]", set=self._set_wavelength,
                    query=self._query_wavelength),
            Command(f"{TLS}:POWer[:LEVel][:IMMediate][:AMPLitude]", set=self._set_power,
                    query=self._query_power),
            Command(f"{TLS}:POWer[:LEVel]:ACTual?", query=self._query_actual_power),
            Command(f"{TLS}:POWer:UNIT", set=self._set_power_unit, query=self._query_power_unit),
            Command(f"{TLS}:POWer:STATe", set=self._set_output, query=self._query_output),
            Command("LOCK", set=self._set_lock, query=self._query_lock),
            self._trigger("trigger_output", ("DISabled", "STFinished", "SWFinished", "SWSTarted")),
            self._trigger("trigger_input", ("IGNore", "NEXTstep", "SWStart")),
            self._slot_idn("81600B"),
            self._slot_idn("81634B"),
            Command(f"{SENSOR}:POWer:WAVelength", set=self._set_sensor_wavelength,
                    query=self._query_sensor_wavelength),
            Command(f"{SENSOR}:POWer:UNIT", set=self._set_sensor_unit,
                    query=self._query_sensor_unit),
            Command(f"{SENSOR}:POWer:ATIMe", set=self._set_atime, query=self._query_atime),
            Command("FETCh{2}[:CHANnel{1}][:SCALar]:POWer[:DC]?", query=self._fetch),
            Command("READ{2}[:CHANnel{1}][:SCALar]:POWer[:DC]?", query=self._read),
            *self._sweep_commands(),
        ]  # fmt: skip


def _short_choice(text: str, choices: tuple[str, ...]) -> str:
    """A mnemonic (short or long form) as its short form, e.g. ``STFinished`` → ``STF``."""
    long = parse_choice(text, choices)
    return next("".join(ch for ch in c if ch.isupper()) for c in choices if c.upper() == long)


def _is_keyword(text: str) -> bool:
    return text.strip().upper() in ("MIN", "MINIMUM", "MAX", "MAXIMUM", "DEF", "DEFAULT")


def _to_dbm(watts: float, text: str) -> float:
    if watts <= 0:
        raise ScpiError(-222, text)
    return watts_to_dbm(watts)


def _parse_unit(text: str) -> bool:
    """``0``/``DBM`` → False (dBm), ``1``/``W``/``Watt`` → True."""
    word = text.strip().upper()
    if word in ("0", "1"):
        return word == "1"
    return parse_choice(word, ("DBM", "Watt")) == "WATT"


__all__ = ["LOCK_PIN", "Keysight8164B"]
