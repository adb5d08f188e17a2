"""Deprecated: moved to ``lumina_hal.runs.record_load``. Re-exported for one release (0.2.x)."""

from lumina_hal.runs.record_load import *  # noqa: F403
