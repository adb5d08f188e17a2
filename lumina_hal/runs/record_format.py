"""Names and small helpers shared by the run-record writer and reader (docs/records.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lumina_hal.errors import ConfigurationError

FORMAT_NAME = "lumina-hal-run"
FORMAT_VERSION = 1

STATUS_RUNNING = "running"
STATUS_COMPLETE = "complete"
STATUS_INCOMPLETE = "incomplete"

INDEX_WIDTH = 6  # calls/000003: names sort in call order in every HDF5 tool


def index_name(index: int) -> str:
    return f"{index:0{INDEX_WIDTH}d}"


def to_json(value: Any, what: str) -> str:
    """JSON text of ``value``; ConfigurationError naming ``what`` if it cannot be encoded."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} must be JSON-serializable: {exc}") from None


def from_json(text: Any) -> Any:
    return json.loads(str(text))


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool, what: str) -> Path:
    """Refuse a path whose directory is missing, that is a directory, or that exists.

    Called before any device is opened so that a typo costs nothing. ``overwrite`` allows
    an existing regular file.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigurationError(f"{what} {str(target)!r} is a directory, not a file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigurationError(
            f"{what} {str(target)!r}: directory {str(parent)!r} does not exist"
        )
    if target.exists() and not overwrite:
        raise ConfigurationError(
            f"{what} {str(target)!r} already exists; choose another name or allow overwriting "
            "(overwrite=True, CLI --overwrite)"
        )
    return target
