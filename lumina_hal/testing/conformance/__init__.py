"""The conformance suite every PhotonicDevice backend must pass (docs/conformance.md).

Each check is called with a device URI, opens and closes its own devices, and passes,
raises :class:`ConformanceFailure` (fail; a LuminaError and an AssertionError, raised explicitly
so that ``python -O`` cannot switch a check off) or :class:`NotApplicable` (skip, the device
lacks what the check needs). Run it with ``lumina-hal selftest URI`` or
``pytest --pyargs lumina_hal.testing.conformance --lumina-device URI``::

    from lumina_hal.testing.conformance import CHECKS
    for check in CHECKS:
        check("mock://?rows=8&cols=8")
"""

from __future__ import annotations

from lumina_hal.testing.conformance import compute, lifecycle, repeatability, state
from lumina_hal.testing.conformance.support import Check, ConformanceFailure, NotApplicable

#: The checks in the order they run (the order of the table in docs/conformance.md).
CHECKS: tuple[Check, ...] = tuple(
    Check.of(func)
    for func in (
        lifecycle.check_lifecycle,
        lifecycle.check_closed_device,
        lifecycle.check_info,
        compute.check_load_weights,
        compute.check_matmul_shapes,
        compute.check_matmul_before_load,
        compute.check_bad_input,
        lifecycle.check_reset,
        state.check_telemetry,
        state.check_temperature,
        compute.check_accuracy,
        repeatability.check_determinism,
        repeatability.check_noise_position,
        repeatability.check_thread_safety,
    )
)


def select_checks(pattern: str | None = None) -> tuple[Check, ...]:
    """The checks whose name contains ``pattern`` (case-insensitive); all if it is empty."""
    if not pattern:
        return CHECKS
    needle = pattern.lower()
    return tuple(check for check in CHECKS if needle in check.name.lower())


__all__ = ["CHECKS", "Check", "ConformanceFailure", "NotApplicable", "select_checks"]
