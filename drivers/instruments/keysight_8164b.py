"""Keysight (Agilent) 8164B mainframe with a back-loaded tunable laser in slot 0.

Wavelength is set in nm with a unit suffix and read back in metres; power in dBm. ``SOUR0:POW?``
is the setpoint and ``SOUR0:POW:ACT?`` the power actually emitted. A locked laser (``LOCK?`` 1)
cannot be switched on: ``on()`` says so before sending anything, and ``lock_laser()`` /
``unlock_laser()`` (gated, quantity ``locked``) send ``LOCK 1|0,<pin>`` (docs/instruments.md §4,
from the 8163A/B/8164A/B programming guide).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lumina_hal.bench.roles import InstrumentIdentity, Laser
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
    setting,
)
from lumina_hal.errors import InputError, InstrumentError

#: The factory PIN of the mainframe's LOCK.
DEFAULT_PIN = "1234"
#: Continuous sweep speeds the TLS accepts (nm/s; 81600B-class module).
SWEEP_SPEED_RANGE_NM_S = (0.5, 200.0)


class Keysight8164B(ScpiSwitchedSource, Laser, LaserSweep):
    """Keysight/Agilent 8164B, TLS module in slot 0."""

    model_name = "keysight-8164b"
    idn_vendor = "Keysight Technologies"
    idn_models = ("8164B",)
    init_commands = ("SOUR0:POW:UNIT 0",)  # dBm
    log_data_command = "SOUR0:READ:DATA? LLOG"  # float64 in m (LaserSweep)
    log_datatype, log_to_nm = "d", 1e9

    # Private and gated (docs/safety.md §5): the public surface is the Laser role.
    _wavelength_readback_nm = measurement(
        "SOUR0:WAV?", "Output wavelength (nm; read back in m).", parse=m_to_nm
    )
    _wavelength_setpoint_nm = setting(
        "SOUR0:WAV {:.4f}NM",
        "Output wavelength, written in nm with the NM suffix.",
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
        gate="wavelength_nm",
    )
    _power_dbm = control(
        "SOUR0:POW?",
        "SOUR0:POW {:.3f}DBM",
        "Output power setpoint (dBm).",
        validate=in_range("_power_min_dbm", "_power_max_dbm", "dBm"),
    )
    _actual_power_dbm = measurement("SOUR0:POW:ACT?", "Power actually emitted (dBm).")
    _locked = measurement("LOCK?", "The laser is locked (cannot be switched on).", parse=parse_bool)
    _output = control(
        "SOUR0:POW:STAT?", "SOUR0:POW:STAT {}", "Laser current on/off.", parse=parse_bool,
        format=format_bool,
    )

    # The laser's own sweep (docs/instruments.md §4, "Keysight 8164B sweeps"). The ends are
    # gated against the wavelength window; starting a sweep is interlocked on them.
    _sweep_start_nm = sweep_end("SOUR0:WAV:SWE:STAR", "start")
    _sweep_stop_nm = sweep_end("SOUR0:WAV:SWE:STOP", "stop")
    _sweep_step_nm = control(
        "SOUR0:WAV:SWE:STEP?", "SOUR0:WAV:SWE:STEP {:.8E}",
        "Step of a stepped sweep, or the logging interval of a continuous one (nm; in m).",
        parse=m_to_nm, format=nm_to_m, validate=in_range(1e-4, 180.0, "nm"),
    )
    _sweep_speed_nm_s = control(
        "SOUR0:WAV:SWE:SPE?", "SOUR0:WAV:SWE:SPE {:.6E}", "Sweep speed (nm/s; in m/s).",
        parse=m_to_nm, format=nm_to_m, validate=in_range(*SWEEP_SPEED_RANGE_NM_S, "nm/s"),
    )
    _sweep_stepped = control(
        "SOUR0:WAV:SWE:MODE?", "SOUR0:WAV:SWE:MODE {}", "Stepped (True) or continuous (False).",
        parse=lambda reply: reply.strip().upper() == "STEP",
        format=lambda stepped: "STEP" if stepped else "CONT", kind="bool",
    )
    _sweep_two_way = control(
        "SOUR0:WAV:SWE:REP?", "SOUR0:WAV:SWE:REP {}", "One-way (False) or two-way (True).",
        parse=lambda reply: reply.strip().upper() == "TWOW",
        format=lambda two_way: "TWOW" if two_way else "ONEW", kind="bool",
    )
    _lambda_logging = control(
        "SOUR0:WAV:SWE:LLOG?", "SOUR0:WAV:SWE:LLOG {}", "Log the wavelength at each step.",
        parse=parse_bool, format=format_bool,
    )
    _trigger_step_finished = control(
        "TRIG0:OUTP?", "TRIG0:OUTP {}", "Output trigger on each finished step (else disabled).",
        parse=lambda reply: reply.strip().upper() == "STF",
        format=lambda on: "STF" if on else "DIS", kind="bool",
    )
    _sweep = sweep_run("SOUR0:WAV:SWE")
    _sweep_status = measurement("SOUR0:WAV:SWE?", "Sweep state (0/1/2).", parse=parse_int)
    _logged_points = measurement(
        "SOUR0:READ:POIN? LLOG", "Logged wavelengths.", parse=parse_int
    )

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
        stepped by ``step_nm``; ``trigger_step_nm`` logs the wavelength (and pulses the
        step-finished trigger) every that many nm, which the 8164B does only in a continuous
        sweep (same arguments as the Santec TSL-570 driver)."""
        if step_nm is not None and trigger_step_nm is not None:
            raise InputError(
                f"{self._label}: the 8164B logs wavelengths only in a continuous sweep: give "
                "step_nm (stepped) or trigger_step_nm (continuous, logged), not both; "
                "nothing was sent"
            )

        def configure() -> None:
            self._sweep_start_nm = start_nm
            self._sweep_stop_nm = stop_nm
            self._sweep_speed_nm_s = speed_nm_s
            self._sweep_two_way = two_way
            logged = trigger_step_nm is not None
            self._sweep_stepped = step_nm is not None
            if step_nm is not None or trigger_step_nm is not None:
                self._sweep_step_nm = step_nm if step_nm is not None else trigger_step_nm
            self._trigger_step_finished = logged
            self._lambda_logging = logged

        self._call(configure)

    @classmethod
    def serves(cls, identity: InstrumentIdentity) -> bool:
        # Older units answer "Agilent Technologies".
        vendor = identity.vendor.lower()
        return vendor in ("keysight technologies", "agilent technologies") and (
            identity.model.upper() in cls.idn_models
        )

    def _after_open(self) -> None:
        self._wavelength_min_nm = float(self._query_parsed("SOUR0:WAV? MIN", m_to_nm))
        self._wavelength_max_nm = float(self._query_parsed("SOUR0:WAV? MAX", m_to_nm))
        self._power_min_dbm = float(self._query_parsed("SOUR0:POW? MIN"))
        self._power_max_dbm = float(self._query_parsed("SOUR0:POW? MAX"))

    def _set_output(self, enabled: bool) -> None:
        if enabled and self._locked:
            raise InstrumentError(
                f"{self._label}: the laser is locked (LOCK? = 1) and cannot be switched on; "
                "unlock_laser() it with the mainframe's PIN; nothing was sent",
                command="LOCK?",
            )
        self._output = enabled

    @property
    def locked(self) -> bool:
        return bool(self._call(lambda: self._locked))

    def lock_laser(self, pin: str = DEFAULT_PIN) -> None:
        """Lock the laser (it switches off and refuses to switch on)."""
        self._call(self._gated_write, "locked", "bool", True, self._lock_writer(pin))

    def unlock_laser(self, pin: str = DEFAULT_PIN) -> None:
        self._call(self._gated_write, "locked", "bool", False, self._lock_writer(pin))

    def _lock_writer(self, pin: str) -> Callable[[bool], None]:
        if not (isinstance(pin, str) and pin.isdigit() and len(pin) <= 8):
            raise InputError(f"the LOCK PIN must be up to 8 digits, got {pin!r}; nothing was sent")
        return lambda locked: self._write(f"LOCK {int(locked)},{pin}")

    def _settings(self) -> dict[str, Any]:
        return {
            **super()._settings(),
            "actual_power_dbm": float(self._actual_power_dbm),
            "locked": bool(self._locked),
            "sweep_start_nm": float(self._sweep_start_nm),
            "sweep_stop_nm": float(self._sweep_stop_nm),
            "sweep_step_nm": float(self._sweep_step_nm),
            "sweep_speed_nm_s": float(self._sweep_speed_nm_s),
            "sweep_stepped": bool(self._sweep_stepped),
            "sweep_two_way": bool(self._sweep_two_way),
            "lambda_logging": bool(self._lambda_logging),
        }

    def actual_power_dbm(self) -> float:
        """The power the laser emits now (dBm): not the setpoint (off, or beyond what the laser
        gives at this wavelength)."""
        return float(self._call(lambda: self._actual_power_dbm))

    def _get_wavelength_nm(self) -> float:
        return float(self._wavelength_readback_nm)

    def _set_wavelength_nm(self, nm: float) -> None:
        self._wavelength_setpoint_nm = nm

    def _wavelength_range_nm(self) -> tuple[float, float]:
        return self._wavelength_min_nm, self._wavelength_max_nm
