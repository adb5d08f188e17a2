"""The conformance suite as pytest tests, one per check, on the plugin's device under test.

    pytest --pyargs lumina_hal.testing.conformance --lumina-device URI

A check that does not apply (NotApplicable) is skipped with its reason.
"""

from __future__ import annotations

import pytest

from lumina_hal.testing.conformance import CHECKS, Check, NotApplicable


@pytest.mark.parametrize("check", CHECKS, ids=[check.name for check in CHECKS])
def test_conformance(check: Check, lumina_device_uri: str) -> None:
    try:
        check(lumina_device_uri)
    except NotApplicable as exc:
        pytest.skip(str(exc))
