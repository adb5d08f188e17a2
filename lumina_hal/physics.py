"""Deprecated: moved to ``lumina_hal.twin.physics``. Re-exported for one release (0.2.x)."""

from lumina_hal.twin.physics import *  # noqa: F403
