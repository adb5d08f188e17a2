"""Deprecated: moved to ``lumina_hal.bench.roles``. Re-exported for one release (0.2.x)."""

from lumina_hal.bench.roles import *  # noqa: F403
