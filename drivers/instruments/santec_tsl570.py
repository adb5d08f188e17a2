"""Santec TSL-570 tunable laser in SCPI mode (metres, hertz, NR3 replies).

Commands: docs/instruments.md §4 (from the TSL-570 manual's command table, checked against the
QCoDeS-contrib and PyMeasure drivers). The socket interface ends lines with CR both ways.
Only the TSL-570 is served. The TSL-550 and TSL-710 cannot select the SCPI command set
(``:SYST:COMM:COD``, which this driver sends at open): they take nm and THz, not m and Hz, and
sweep at 0.5-100 nm/s in 0.1 nm/s steps rather than the TSL-570's eight speeds (PyMeasure's
``TSL550`` driver, docs/instruments.md §4), so they need a driver of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lumina_hal.bench.roles import Laser
from lumina_hal.bench.safety import coerce
from lumina_hal.drivers.instruments.laser_sweep import LaserSweep, sweep_end, sweep_run
from lumina_hal.drivers.instruments.scpi import (
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    m_to_nm,
    measurement,
    nm_to_m,
    parse_bool,
    parse_int,
)
from lumina_hal.errors import (
    InputError,
    SafetyLimitError,
)

SWEEP_SPEEDS_NM_S = (1, 2, 5, 10, 20, 50, 100, 200)
C_M_PER_S = 299_792_458.0
#: The manual's attenuator range (dB) and fine-tuning range (arbitrary units).
ATTENUATION_RANGE_DB = (0.0, 30.0)
FINE_TUNING_RANGE = (-100.0, 100.0)
#: How far one fine-tuning unit moves the light (nm): ±100 units ≈ ±10 pm. The manual gives no
#: scale; this is the simulator's, and the gate bounds the wavelength it implies.
FINE_TUNING_NM_PER_UNIT = 1e-4
SWEEP_RUNNING, SWEEP_WAITING_FOR_TRIGGER, SWEEP_PREPARING = 1, 3, 4
TRIGGER_OUTPUT = {"none": 0, "stop": 1, "start": 2, "step": 3}


def _fine_tuning_nm(units: float | str) -> float:
    """The wavelength offset (nm) of a fine-tuning value (the manual's units)."""
    return float(units) * FINE_TUNING_NM_PER_UNIT


def hz_to_nm(reply: str) -> float:
    """A frequency reply in Hz, as the wavelength c/f in nm."""
    return C_M_PER_S / float(reply) * 1e9


def nm_to_hz(nm: float) -> float:
    return C_M_PER_S / (nm * 1e-9)


def mw_to_dbm(reply: str) -> float:
    """A power reply in mW (``:POW:UNIT 1``), as dBm."""
    return 10.0 * math.log10(float(reply))


def dbm_to_mw(dbm: float) -> float:
    return 10.0 ** (dbm / 10.0)


def _inverted(reply: str) -> bool:
    return not parse_bool(reply)


def _format_inverted(value: bool) -> str:
    return format_bool(not value)


def _power_in(unit_mw: bool) -> Callable[..., float]:
    """The power range, and only while the laser's power unit is the one this attribute sends
    (a dBm number sent in mW mode, or the reverse, would set another power)."""
    check_range = in_range("_power_min_dbm", "_power_max_dbm", "dBm")

    def validate(instrument: Any, name: str, value: float) -> float:
        if instrument._unit_is_mw != unit_mw:
            raise InputError(
                f"{name}: the laser's power unit is {'mW' if instrument._unit_is_mw else 'dBm'}; "
                "set power_dbm instead; nothing was sent"
            )
        return float(check_range(instrument, name, value))

    return validate


def _one_of(allowed: tuple[int, ...], unit: str) -> Callable[..., float]:
    def validate(instrument: object, name: str, value: float) -> float:
        if value not in allowed:
            raise InputError(f"{name} must be one of {allowed} {unit}, got {value!r}")
        return value

    return validate


class SantecTsl570(ScpiSwitchedSource, Laser, LaserSweep):
    """Santec TSL-570 in its SCPI command set (not the TSL-550/710: see the module docstring)."""

    model_name = "santec-tsl570"
    idn_vendor = "SANTEC"
    idn_models = ("TSL-570",)
    write_termination = "\r"
    read_termination = "\r"
    error_query = ":SYST:ERR?"
    # SCPI command set (metres, NR3), power unit dBm.
    init_commands = (":SYST:COMM:COD 1", ":POW:UNIT 0")
    log_data_command = ":READ:DAT?"  # float32 in nm (LaserSweep)

    # Private and gated (docs/safety.md §5): the public surface is the Laser role.
    _wavelength_nm = control(
        ":WAV?",
        ":WAV {:.8E}",
        "Output wavelength (nm; sent and read in m).",
        parse=m_to_nm,
        format=nm_to_m,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
    _power_dbm = control(
        ":POW?",
        ":POW {:.2f}",
        "Output power setpoint (dBm).",
        validate=_power_in(unit_mw=False),
    )
    _power_mw = control(
        ":POW?",
        ":POW {:.4E}",
        "Output power setpoint while the unit is mW (gated in dBm; sent and read in mW).",
        parse=mw_to_dbm,
        format=dbm_to_mw,
        validate=_power_in(unit_mw=True),
        gate="power_dbm",
    )
    _power_monitor = measurement(":POW:ACT?", "Monitored output power (in the power unit).",
                                 parse=str)
    _output = control(
        ":POW:STAT?", ":POW:STAT {}", "Optical output on/off.", parse=parse_bool,
        format=format_bool,
    )

    # Settings of docs/instruments.md §4 "Further settings"; each is gated, the hazardous
    # direction of a switch (shutter open, manual attenuation) interlocked on the power limit.
    _frequency_nm = control(
        ":FREQ?", ":FREQ {:.8E}", "Optical frequency (gated as the wavelength c/f in nm; Hz).",
        parse=hz_to_nm, format=nm_to_hz, gate="wavelength_nm",
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
    _display_thz = control(
        ":WAV:UNIT?", ":WAV:UNIT {}", "Front-panel wavelength unit: False nm, True THz.",
        parse=parse_bool, format=format_bool,
    )
    # Written only by the fine_tuning setter, gated as the wavelength it gives.
    _fine_tuning = measurement(":WAV:FIN?", "Fine tuning, -100.00..+100.00 (arbitrary units).")
    # Written only by the attenuation_db setter, gated as the power it would emit.
    _attenuation_db = measurement(":POW:ATT?", "Attenuation of the manual (non-APC) mode (dB).")
    _manual_attenuation = control(
        ":POW:ATT:AUT?", ":POW:ATT:AUT {}",
        "True: manual attenuation (:POW:ATT:AUT 0); False: automatic power control.",
        parse=_inverted, format=_format_inverted, kind="bool",
    )
    _shutter_open = control(
        ":POW:SHUT?", ":POW:SHUT {}", "Internal shutter (the manual's 1 = closed, inverted).",
        parse=_inverted, format=_format_inverted, kind="bool",
    )
    _power_unit_mw = control(
        ":POW:UNIT?", ":POW:UNIT {}", "Power unit of :POW and :POW:ACT: False dBm, True mW.",
        parse=parse_bool, format=format_bool,
    )
    _interlock = measurement(":SYST:LOCK?", "1: the interlock is open (no light).",
                             parse=parse_bool)

    # Sweeps (docs/instruments.md §4; simulated per docs/instrument-sim.md). The ends are gated
    # against the laser's wavelength window; starting a sweep is interlocked on them.
    _sweep_start_nm = sweep_end(":WAV:SWE:STAR", "start")
    _sweep_stop_nm = sweep_end(":WAV:SWE:STOP", "stop")
    _sweep_step_nm = control(
        ":WAV:SWE:STEP?", ":WAV:SWE:STEP {:.8E}", "Step of a stepped sweep (nm; in m).",
        parse=m_to_nm, format=nm_to_m, validate=in_range(1e-4, 160.0, "nm"),
    )
    _sweep_speed_nm_s = control(
        ":WAV:SWE:SPE?", ":WAV:SWE:SPE {:.0f}", "Sweep speed (nm/s).",
        validate=_one_of(SWEEP_SPEEDS_NM_S, "nm/s"),
    )
    _sweep_mode = control(
        ":WAV:SWE:MOD?", ":WAV:SWE:MOD {:d}", "0 stepped one-way ... 3 continuous two-way.",
        parse=parse_int, validate=in_range(0, 3, ""),
    )
    _trigger_output = control(
        ":TRIG:OUTP?", ":TRIG:OUTP {:d}", "Trigger pulses: 0 none, 1 stop, 2 start, 3 step.",
        parse=parse_int, validate=in_range(0, 3, ""),
    )
    _trigger_step_nm = control(
        ":TRIG:OUTP:STEP?", ":TRIG:OUTP:STEP {:.8E}", "Interval of step pulses (nm; in m).",
        parse=m_to_nm, format=nm_to_m, validate=in_range(1e-4, 160.0, "nm"),
    )
    _sweep = sweep_run(":WAV:SWE")
    _sweep_status = measurement(":WAV:SWE?", "Sweep status (0/1/3/4).", parse=parse_int)
    _logged_points = measurement(":READ:POIN?", "Logged wavelengths.", parse=parse_int)

    def configure_sweep(
        self,
        start_nm: float,
        stop_nm: float,
        *,
        speed_nm_s: float = 10,
        step_nm: float | None = None,
        trigger_step_nm: float | None = None,
        two_way: bool = False,
    ) -> None:
        """Set up a sweep from ``start_nm`` to ``stop_nm``: continuous at ``speed_nm_s``, or
        stepped by ``step_nm``; ``trigger_step_nm`` logs (and pulses) every that many nm."""

        def configure() -> None:
            self._sweep_start_nm = start_nm
            self._sweep_stop_nm = stop_nm
            self._sweep_speed_nm_s = speed_nm_s
            if step_nm is not None:
                self._sweep_step_nm = step_nm
            self._sweep_mode = (0 if step_nm is not None else 1) + (2 if two_way else 0)
            if trigger_step_nm is not None:
                self._trigger_step_nm = trigger_step_nm
                self._trigger_output = TRIGGER_OUTPUT["step"]
            else:
                self._trigger_output = TRIGGER_OUTPUT["none"]

        self._call(configure)

    # --- further settings (public; each write goes through the gate) -------------------------
    @property
    def frequency_thz(self) -> float:
        """Optical frequency (THz); setting it sets the wavelength c/f, gated by its window."""
        return nm_to_hz(float(self._call(lambda: self._frequency_nm))) * 1e-12  # :FREQ?

    @frequency_thz.setter
    def frequency_thz(self, thz: float) -> None:
        value = coerce("frequency_thz", "number", thz)
        if value <= 0:
            raise InputError(f"frequency_thz must be > 0 THz, got {thz!r}; nothing was sent")
        self._call(setattr, self, "_frequency_nm", C_M_PER_S / (value * 1e12) * 1e9)

    @property
    def display_unit(self) -> str:
        """The front panel's wavelength unit, ``"nm"`` or ``"THz"`` (the bus units stay SI)."""
        return "THz" if self._call(lambda: self._display_thz) else "nm"

    @display_unit.setter
    def display_unit(self, unit: str) -> None:
        if unit not in ("nm", "THz"):
            raise InputError(f"display_unit must be 'nm' or 'THz', got {unit!r}")
        self._call(setattr, self, "_display_thz", unit == "THz")

    @property
    def fine_tuning(self) -> float:
        """Fine tuning of the wavelength, -100..+100 (the manual's arbitrary units)."""
        return float(self._call(lambda: self._fine_tuning))

    @fine_tuning.setter
    def fine_tuning(self, value: float) -> None:
        """Gated as ``tuned_wavelength_nm`` = the wavelength setpoint (read from the laser) +
        ``value`` × 0.1 pm: the light it gives must stay inside the wavelength window."""
        self._call(self._set_fine_tuning, coerce("fine_tuning", "number", value))

    def _set_fine_tuning(self, units: float) -> None:
        setpoint_nm = self._get_wavelength_nm()

        def send(_: float) -> None:
            wire = self._hundredths_in_range("fine_tuning", units, FINE_TUNING_RANGE, "")
            self._gate.check_sent("tuned_wavelength_nm", setpoint_nm + _fine_tuning_nm(wire))
            self._write(f":WAV:FIN {wire}")

        tuned_nm = setpoint_nm + _fine_tuning_nm(units)
        self._gated_write("tuned_wavelength_nm", "number", tuned_nm, send)

    def disable_fine_tuning(self) -> None:
        """End fine tuning (``:WAV:FIN:DIS``): the light returns to the setpoint (gated as
        ``tuned_wavelength_nm`` = the setpoint)."""

        def write() -> None:
            self._gated_write(
                "tuned_wavelength_nm", "number", self._get_wavelength_nm(),
                lambda _: self._write(":WAV:FIN:DIS"),
            )

        self._call(write)

    def _hundredths_in_range(
        self, name: str, value: float, bounds: tuple[float, float], unit: str
    ) -> str:
        """Step 3 for a setting the manual takes in 0.01 steps: InputError outside its range,
        else the wire text (which the caller re-checks as sent: rounding moves it)."""
        low, high = bounds
        if not low <= value <= high:
            raise InputError(
                f"{name} = {value:g}{unit} is outside the range of this {self.model_name} "
                f"[{low:g}, {high:g}]{unit}; nothing was sent"
            )
        return f"{value:.2f}"

    def _get_tuned_wavelength_nm(self) -> float:
        """The light's wavelength: the setpoint plus the fine-tuning offset (nm)."""
        return self._get_wavelength_nm() + _fine_tuning_nm(self._fine_tuning)

    @property
    def attenuation_db(self) -> float:
        """Attenuation of the manual mode (dB): there the laser emits its maximum power minus
        this, so a value that would emit more than ``max_power_dbm`` is refused."""
        return float(self._call(lambda: self._attenuation_db))

    @attenuation_db.setter
    def attenuation_db(self, value: float) -> None:
        def send(checked_dbm: float) -> None:
            wire = self._hundredths_in_range(
                "attenuation_db", attenuation, ATTENUATION_RANGE_DB, " dB"
            )
            self._gate.check_sent("attenuated_power_dbm", self._power_max_dbm - float(wire))
            self._write(f":POW:ATT {wire}")

        attenuation = coerce("attenuation_db", "number", value)
        self._call(
            self._gated_write, "attenuated_power_dbm", "number",
            self._power_max_dbm - attenuation, send,
        )

    @property
    def auto_power_control(self) -> bool:
        """True: automatic power control holds ``power_dbm``; False: manual attenuation
        (switching to it is interlocked on the attenuated power's limit)."""
        return not self._call(lambda: self._manual_attenuation)

    @auto_power_control.setter
    def auto_power_control(self, enabled: bool) -> None:
        self._call(setattr, self, "_manual_attenuation", not coerce("auto_power_control", "bool",
                                                                     enabled))

    @property
    def shutter_open(self) -> bool:
        """The internal shutter; opening it is interlocked like switching the output on."""
        return bool(self._call(lambda: self._shutter_open))

    @shutter_open.setter
    def shutter_open(self, value: bool) -> None:
        self._call(setattr, self, "_shutter_open", value)

    @property
    def interlock_open(self) -> bool:
        """True when the external interlock is open: the laser refuses to emit."""
        return bool(self._call(lambda: self._interlock))

    @property
    def power_unit(self) -> str:
        """``"dBm"`` or ``"mW"``: the unit on the bus; the role API stays in dBm either way."""
        return "mW" if self._call(lambda: self._unit_is_mw) else "dBm"

    @power_unit.setter
    def power_unit(self, unit: str) -> None:
        if unit not in ("dBm", "mW"):
            raise InputError(f"power_unit must be 'dBm' or 'mW', got {unit!r}")

        def switch() -> None:
            self._power_unit_mw = unit == "mW"
            self._unit_is_mw = unit == "mW"

        self._call(switch)

    def _get_power_dbm(self) -> float:
        return float(self._power_mw if self._unit_is_mw else self._power_dbm)

    def _set_power_dbm(self, dbm: float) -> None:
        if self._unit_is_mw:
            self._power_mw = dbm
        else:
            self._power_dbm = dbm

    def _set_output(self, enabled: bool) -> None:
        """Admitted by the gate first (limits, interlocks), then refused if the laser's own
        interlock is open (``:SYST:LOCK? 1``), else sent."""

        def send(on: bool) -> None:
            if on and self._interlock:
                raise SafetyLimitError(
                    f"{self._label}: the interlock is open (:SYST:LOCK? 1), the laser cannot "
                    "emit; nothing was sent"
                )
            self._output = on

        self._gated_write("output", "bool", enabled, send)

    def _get_shutter_open(self) -> bool:
        return bool(self._shutter_open)

    def _get_emitted_power_dbm(self) -> float:
        """What the laser emits when on: the setpoint (APC) or maximum minus attenuation."""
        if self._manual_attenuation:
            return self._get_attenuated_power_dbm()
        return self._get_power_dbm()

    def _get_attenuated_power_dbm(self) -> float:
        return self._power_max_dbm - float(self._attenuation_db)

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(
            frequency_thz=nm_to_hz(settings["wavelength_nm"]) * 1e-12,
            fine_tuning=float(self._fine_tuning),
            attenuation_db=float(self._attenuation_db),
            auto_power_control=not self._manual_attenuation,
            shutter_open=bool(self._shutter_open),
            interlock_open=bool(self._interlock),
            power_unit="mW" if self._unit_is_mw else "dBm",
            display_unit="THz" if self._display_thz else "nm",
        )
        return settings

    def _after_open(self) -> None:
        self._unit_is_mw = False  # init_commands set :POW:UNIT 0
        self._wavelength_min_nm = float(self._query_parsed(":WAV? MIN", m_to_nm))
        self._wavelength_max_nm = float(self._query_parsed(":WAV? MAX", m_to_nm))
        self._power_min_dbm = float(self._query_parsed(":POW? MIN"))
        self._power_max_dbm = float(self._query_parsed(":POW? MAX"))

    def _get_wavelength_nm(self) -> float:
        return float(self._wavelength_nm)

    def _set_wavelength_nm(self, nm: float) -> None:
        self._wavelength_nm = nm

    def _wavelength_range_nm(self) -> tuple[float, float]:
        return self._wavelength_min_nm, self._wavelength_max_nm

    def monitor_power_dbm(self) -> float:
        """The power the laser's own monitor measures (dBm), not the setpoint."""
        reply = self._call(lambda: self._power_monitor)
        return mw_to_dbm(reply) if self._unit_is_mw else float(reply)
