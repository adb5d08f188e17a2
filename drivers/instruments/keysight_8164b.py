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
from lumina_hal.drivers.instruments.scpi import (
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    m_to_nm,
    measurement,
    parse_bool,
    setting,
)
from lumina_hal.errors import InputError, InstrumentError

#: The factory PIN of the mainframe's LOCK.
DEFAULT_PIN = "1234"


class Keysight8164B(ScpiSwitchedSource, Laser):
    """Keysight/Agilent 8164B, TLS module in slot 0."""

    model_name = "keysight-8164b"
    idn_vendor = "Keysight Technologies"
    idn_models = ("8164B",)
    init_commands = ("SOUR0:POW:UNIT 0",)  # dBm

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
