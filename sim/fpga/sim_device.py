"""``fpga+sim://``: the real FPGA driver talking PHL1 to the firmware emulator in-process.

The driver is unchanged; only its byte stream goes to the emulator (through the pyserial URL
handler ``fpgasim://``) instead of a serial port. Lives in sim/ so that drivers/ never imports
the simulators.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import serial

from lumina_hal.device import Capability
from lumina_hal.drivers.fpga.device import LINK_PARAMS, FpgaDevice
from lumina_hal.drivers.fpga.link import LinkTiming
from lumina_hal.errors import ConfigurationError
from lumina_hal.sim.fpga.faults import FAULT_PARAMS
from lumina_hal.twin.config import TWIN_PARAMS
from lumina_hal.uri import DeviceURI


class FpgaSimDevice(FpgaDevice):
    """``fpga+sim://?seed=1&preset=typical``: the firmware emulator, in-process."""

    # the firmware draws its own chip: a twin's engine choice and snapshot do not apply
    uri_params = (
        tuple(p for p in TWIN_PARAMS if p.name not in ("kernel", "snapshot"))
        + LINK_PARAMS
        + FAULT_PARAMS
    )
    summary = "FPGA firmware emulator in-process (PHL1 through a pyserial handler)"

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> FpgaDevice:
        if uri.location:
            raise ConfigurationError(f"fpga+sim:// takes no host or path, got {uri.uri!r}")
        link = {k: params.pop(k) for k in ("timeout", "retries") if k in params}
        timing = LinkTiming(None, 0.005, link.get("timeout", 0.05), link.get("retries", 4))
        query = urlencode({k: v for k, v in params.items() if v is not None})
        target = f"fpgasim://?{query}"

        def factory() -> Any:
            if "lumina_hal.sim.fpga" not in serial.protocol_handler_packages:
                serial.protocol_handler_packages.append("lumina_hal.sim.fpga")
            return serial.serial_for_url(target, timeout=0.05)

        return cls(factory, timing, "FPGA emulator (in-process)")

    def _capabilities(self) -> frozenset[str]:
        return frozenset(
            {
                Capability.SET_TEMPERATURE.value,
                Capability.SIMULATED.value,
                Capability.SEEDED.value,
                Capability.OPTICAL_POWER.value,
            }
        )
