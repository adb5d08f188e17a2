"""Data files shipped inside the installed package (simulated instruments' YAML, bench files).

Found with importlib.resources by package name, so a lookup works from any install (a wheel, a
zip) and imports none of the simulators' code.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

_files = contextlib.ExitStack()
atexit.register(_files.close)
_paths: dict[str, Path] = {}


def packaged_sim_file(name: str) -> Path:
    """A filesystem path to a data file shipped in ``lumina_hal.sim`` (extracted if zipped)."""
    if name not in _paths:
        ref = resources.files("lumina_hal.sim").joinpath(name)
        _paths[name] = _files.enter_context(resources.as_file(ref))
    return _paths[name]
