"""Deprecated: moved to ``lumina_hal.twin.device``. Re-exported for one release (0.2.x)."""

from lumina_hal.twin.device import *  # noqa: F403
