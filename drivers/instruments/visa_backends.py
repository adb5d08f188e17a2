"""Which VISA library a ``backend=`` value means, and the simulated instruments shipped here.

``@sim`` alone means this project's pyvisa-sim definitions (``lumina_hal/sim/instruments.yaml``,
found with importlib.resources so it works from any install). pyvisa caches one library per
definitions file, so simulated state persists across opens: :func:`reset_simulated_instruments`
rebuilds it (the test fixture calls it between tests).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lumina_hal.package_data import packaged_sim_file

log = logging.getLogger(__name__)

SIM_DEFINITIONS = "instruments.yaml"


def packaged_sim_definitions() -> Path:
    """The shipped pyvisa-sim YAML."""
    return packaged_sim_file(SIM_DEFINITIONS)


def library_spec(backend: str) -> str:
    """The pyvisa ResourceManager argument for ``backend`` ('' = pyvisa's default)."""
    spec = backend.strip()
    if spec == "@sim":
        return f"{packaged_sim_definitions()}@sim"
    return spec


def reset_simulated_instruments() -> int:
    """Rebuild every loaded pyvisa-sim library's devices from their definitions.

    Resources opened before the reset keep the old state; open them again. Returns the
    number of libraries reset.
    """
    try:
        from pyvisa_sim import parser
        from pyvisa_sim.highlevel import SimVisaLibrary
    except ImportError:  # pragma: no cover - pyvisa-sim is a dependency
        return 0
    count = 0
    for (cls, path), library in list(SimVisaLibrary._registry.items()):
        if cls is not SimVisaLibrary:
            continue
        if str(path) == "unset":
            library.devices = parser.get_devices("default.yaml", True)
        else:
            library.devices = parser.get_devices(str(path), False)
        count += 1
    log.debug("reset %d simulated VISA libraries", count)
    return count
