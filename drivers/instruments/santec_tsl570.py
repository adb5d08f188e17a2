"""Santec TSL-570 tunable laser in SCPI mode (metres, dBm, NR3 replies).

Commands: docs/instruments.md §4 (from the TSL-570 manual's command table, checked against the
QCoDeS-contrib and PyMeasure drivers). The socket interface ends lines with CR both ways.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lumina_hal.bench.roles import Laser
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
from lumina_hal.errors import InputError, LinkError, UnsupportedOperationError

SWEEP_SPEEDS_NM_S = (1, 2, 5, 10, 20, 50, 100, 200)
SWEEP_STOPPED, SWEEP_RUNNING, SWEEP_WAITING_FOR_TRIGGER, SWEEP_PREPARING = 0, 1, 3, 4
TRIGGER_OUTPUT = {"none": 0, "stop": 1, "start": 2, "step": 3}


def _one_of(allowed: tuple[int, ...], unit: str) -> Callable[..., float]:
    def validate(instrument: object, name: str, value: float) -> float:
        if value not in allowed:
            raise InputError(f"{name} must be one of {allowed} {unit}, got {value!r}")
        return value

    return validate


class SantecTsl570(ScpiSwitchedSource, Laser):
    """Santec TSL-570 (also TSL-550/TSL-710 with the same SCPI set)."""

    model_name = "santec-tsl570"
    idn_vendor = "SANTEC"
    idn_models = ("TSL-570", "TSL-550", "TSL-710")
    write_termination = "\r"
    read_termination = "\r"
    error_query = ":SYST:ERR?"
    # SCPI command set (metres, NR3), power unit dBm.
    init_commands = (":SYST:COMM:COD 1", ":POW:UNIT 0")

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
        validate=in_range("_power_min_dbm", "_power_max_dbm", "dBm"),
    )
    _power_monitor_dbm = measurement(":POW:ACT?", "Monitored output power (dBm).")
    _output = control(
        ":POW:STAT?", ":POW:STAT {}", "Optical output on/off.", parse=parse_bool,
        format=format_bool,
    )

    # Sweeps (docs/instruments.md §4; simulated per docs/instrument-sim.md). The ends are gated
    # against the laser's wavelength window; starting a sweep is interlocked on them.
    _sweep_start_nm = control(
        ":WAV:SWE:STAR?", ":WAV:SWE:STAR {:.8E}", "Sweep start (nm; sent and read in m).",
        parse=m_to_nm, format=nm_to_m,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
    _sweep_stop_nm = control(
        ":WAV:SWE:STOP?", ":WAV:SWE:STOP {:.8E}", "Sweep stop (nm; sent and read in m).",
        parse=m_to_nm, format=nm_to_m,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
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
    _sweep = control(
        ":WAV:SWE?", ":WAV:SWE {}", "Run (True) or stop (False) one sweep.",
        parse=lambda reply: parse_int(reply) != SWEEP_STOPPED, format=format_bool, kind="bool",
    )
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

    def start_sweep(self) -> None:
        """Start one sweep (refused if the stored ends or the power are outside the limits)."""
        self._call(lambda: setattr(self, "_sweep", True))

    def stop_sweep(self) -> None:
        self._call(lambda: setattr(self, "_sweep", False))

    def sweep_status(self) -> int:
        """0 stopped, 1 running, 3 waiting for a trigger, 4 preparing."""
        return int(self._call(lambda: self._sweep_status))

    def _get_sweep_start_nm(self) -> float:
        return float(self._sweep_start_nm)

    def _get_sweep_stop_nm(self) -> float:
        return float(self._sweep_stop_nm)

    def wait_for_sweep(
        self, timeout_s: float, *, poll_s: float = 0.05, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Return when the sweep has stopped; LinkError after ``timeout_s`` (sweep stopped)."""
        deadline = time.monotonic() + timeout_s
        while self.sweep_status() != SWEEP_STOPPED:
            if time.monotonic() >= deadline:
                self.stop_sweep()
                raise LinkError(f"{self._label}: the sweep did not end within {timeout_s:g} s")
            sleep(poll_s)

    def logged_wavelengths_nm(self) -> np.ndarray:
        """The wavelengths (nm) the last sweep logged at its trigger points."""

        def read() -> np.ndarray:
            count = int(self._logged_points)
            def block(resource: Any) -> Any:  # a binary block: pyvisa reads it by its length
                if not hasattr(resource, "query_binary_values"):
                    raise UnsupportedOperationError(f"{self._label}: no binary block reads")
                return resource.query_binary_values(
                    ":READ:DAT?", datatype="f", is_big_endian=False, container=np.array
                )

            values = self._io(block, ":READ:DAT?")
            data = np.asarray(values, dtype=np.float64)
            if data.shape != (count,):
                raise LinkError(
                    f"{self._label}: :READ:DAT? gave {data.size} values for {count} points"
                )
            return data

        return np.asarray(self._call(read))

    def _after_open(self) -> None:
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
        return float(self._call(lambda: self._power_monitor_dbm))
