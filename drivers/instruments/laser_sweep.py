"""The sweep API shared by the tunable-laser drivers that run their own wavelength sweep.

A driver declares its SCPI attributes ``_sweep_start_nm`` / ``_sweep_stop_nm`` (gated against
the laser's wavelength window), ``_sweep`` (run/stop, gated as ``sweep``: the gate interlocks
it on the stored ends and the power, docs/safety.md) and ``_sweep_status`` (0 = stopped), plus
where its lambda log is read; this mixin gives start/stop/wait and the logged wavelengths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lumina_hal.drivers.instruments.scpi import (
    ScpiProperty,
    control,
    format_bool,
    in_range,
    m_to_nm,
    nm_to_m,
    parse_int,
)
from lumina_hal.errors import LinkError, UnsupportedOperationError

SWEEP_STOPPED = 0


def sweep_end(node: str, what: str) -> ScpiProperty:
    """A sweep end ``node`` (``:WAV:SWE:STAR``), in metres on the wire, gated in nm against the
    laser's wavelength window (quantity ``sweep_start_nm`` / ``sweep_stop_nm``)."""
    return control(
        f"{node}?", f"{node} {{:.8E}}", f"Sweep {what} (nm; sent and read in m).",
        parse=m_to_nm, format=nm_to_m,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )


def sweep_run(command: str) -> ScpiProperty:
    """Run (True) or stop (False) one sweep; gated as ``sweep`` (interlocked on the ends)."""
    return control(
        f"{command}?", f"{command} {{}}", "Run (True) or stop (False) one sweep.",
        parse=lambda reply: parse_int(reply) != SWEEP_STOPPED, format=format_bool, kind="bool",
    )


class LaserSweep:
    """``start_sweep`` / ``stop_sweep`` / ``sweep_status`` / ``wait_for_sweep`` /
    ``logged_wavelengths_nm`` over a driver's sweep attributes."""

    _sweep_start_nm: Any
    _sweep_stop_nm: Any
    _sweep: Any
    _sweep_status: Any
    _logged_points: Any
    #: The query that returns the lambda log as a binary block, its element type (pyvisa
    #: ``datatype``) and the factor from its unit to nm.
    log_data_command: str
    log_datatype: str = "f"
    log_to_nm: float = 1.0

    # provided by the instrument (lumina_hal.bench.roles, drivers/instruments/scpi.py)
    if TYPE_CHECKING:

        @property
        def _label(self) -> str: ...

    _call: Callable[..., Any]
    _io: Callable[[Callable[[Any], Any], str], Any]

    def start_sweep(self) -> None:
        """Start one sweep (refused if the stored ends or the power are outside the limits)."""
        self._call(lambda: setattr(self, "_sweep", True))

    def stop_sweep(self) -> None:
        self._call(lambda: setattr(self, "_sweep", False))

    def sweep_status(self) -> int:
        """0 stopped; other values as the instrument's manual numbers them."""
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
        """The wavelengths (nm) the last sweep logged."""
        command = self.log_data_command

        def read() -> np.ndarray:
            count = int(self._logged_points)

            def block(resource: Any) -> Any:  # a binary block: pyvisa reads it by its length
                if not hasattr(resource, "query_binary_values"):
                    raise UnsupportedOperationError(f"{self._label}: no binary block reads")
                return resource.query_binary_values(
                    command, datatype=self.log_datatype, is_big_endian=False, container=np.array
                )

            data = np.asarray(self._io(block, command), dtype=np.float64) * self.log_to_nm
            if data.shape != (count,):
                raise LinkError(
                    f"{self._label}: {command} gave {data.size} values for {count} points"
                )
            return data

        return np.asarray(self._call(read))
