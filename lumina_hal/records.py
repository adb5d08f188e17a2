"""Deprecated: moved to ``lumina_hal.runs.records``. Re-exported for one release (0.2.x)."""

from lumina_hal.runs.records import *  # noqa: F403
