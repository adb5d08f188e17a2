"""``fpga+sim://``: the real FPGA driver talking PHL1 to the firmware emulator in-process.

The driver is unchanged; only its byte stream goes to the emulator (through the pyserial URL
handler ``fpgasim://``) instead of a serial port. Lives in sim/ so that drivers/ never imports
the simulators.
"""

from __future__ import annotations

from typing import Any

import serial

from lumina_hal.device import Capability
from lumina_hal.drivers.fpga.device import LINK_PARAMS, FpgaDevice
from lumina_hal.drivers.fpga.link import LinkTiming
from lumina_hal.errors import ConfigurationError
from lumina_hal.sim.fpga.config import EMULATOR_PARAMS, EmulatorConfig
from lumina_hal.sim.fpga.timing import TIMING_NAMES, TIMING_PARAMS, BoardTiming, TimedEndpoint
from lumina_hal.uri import DeviceURI


class FpgaSimDevice(FpgaDevice):
    """``fpga+sim://?seed=1&preset=typical``: the firmware emulator, in-process."""

    uri_params = EMULATOR_PARAMS + LINK_PARAMS + TIMING_PARAMS
    summary = "FPGA firmware emulator in-process (PHL1 through a pyserial handler)"

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> FpgaDevice:
        if uri.location:
            raise ConfigurationError(f"fpga+sim:// takes no host or path, got {uri.uri!r}")
        link = {k: params.pop(k) for k in ("timeout", "retries") if k in params}
        board = BoardTiming.from_params({k: params.pop(k) for k in TIMING_NAMES if k in params})
        timing = LinkTiming(
            board.baudrate or None, 0.005, link.get("timeout", 0.05), link.get("retries", 4)
        )
        config = EmulatorConfig.from_params({k: v for k, v in params.items() if v is not None})

        def factory() -> Any:
            if "lumina_hal.sim.fpga" not in serial.protocol_handler_packages:
                serial.protocol_handler_packages.append("lumina_hal.sim.fpga")
            port = serial.serial_for_url("fpgasim://", timeout=0.05, config=config)
            if board.active:  # a real board's pace (sim/fpga/timing.py)
                port.endpoint = TimedEndpoint(port.endpoint, board)
            return port

        return cls(factory, timing, "FPGA emulator (in-process)")

    def _capabilities(self) -> frozenset[str]:
        return frozenset(
            {
                Capability.SET_TEMPERATURE.value,
                Capability.SIMULATED.value,
                Capability.SEEDED.value,
                Capability.OPTICAL_POWER.value,
                Capability.HEATER_CODES.value,
                Capability.CALIBRATE.value,
                Capability.NOISE_POSITION.value,
            }
        )

    def _snapshot(self) -> dict[str, Any]:
        """The emulated chip's snapshot too: a twin rebuilt from it repeats these calls."""
        data = super()._snapshot()
        port = self._link.port if self._link is not None else None
        emulator = getattr(port, "emulator", None)
        if emulator is not None:
            chip = emulator.chip.snapshot()
            chip["call_index"] = self._call_index  # the host names the index of every RUN
            data["chip"] = chip
        return data
