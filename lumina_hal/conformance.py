"""Deprecated: moved to ``lumina_hal.testing.conformance``. Re-exported for one release (0.2.x)."""

from lumina_hal.testing.conformance import *  # noqa: F403
