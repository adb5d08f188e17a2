"""``lumina-hal selftest``: run the conformance suite against one device URI.

One line per check as it finishes (pass/fail/skip, seconds, reason), then a summary; exit
status 0 when no check failed, 1 otherwise (docs/conformance.md, section 5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lumina_hal.errors import ConfigurationError
from lumina_hal.registry import build_device, default_uri
from lumina_hal.testing.conformance import (
    Check,
    ConformanceFailure,
    NotApplicable,
    select_checks,
)

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``status`` is pass, fail or skip; ``reason`` says why."""

    name: str
    status: str
    reason: str
    seconds: float


def run_check(check: Check, uri: str) -> CheckResult:
    """Run one check; any exception other than NotApplicable fails it (others named by type)."""
    start = time.perf_counter()
    try:
        check(uri)
    except NotApplicable as exc:
        status, reason = SKIP, str(exc)
    except ConformanceFailure as exc:
        status, reason = FAIL, str(exc) or "check failed"
    except Exception as exc:
        status, reason = FAIL, f"{type(exc).__name__}: {exc}"
    else:
        status, reason = PASS, ""
    result = CheckResult(check.name, status, reason, time.perf_counter() - start)
    log.info("%s %s %.3f s %s", result.status, result.name, result.seconds, result.reason)
    return result


def run_selftest(
    uri: str | None = None,
    pattern: str | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> dict[str, Any]:
    """Run the checks selected by ``pattern`` on ``uri``; return the report (see the docs).

    The URI is parsed first, so a wrong one is a ConfigurationError, not 13 failed checks.
    """
    target = uri if uri is not None else default_uri()
    build_device(target)  # validates scheme and parameters; nothing is opened
    checks = select_checks(pattern)
    if not checks:
        raise ConfigurationError(f"no conformance check matches -k {pattern!r}")
    start = time.perf_counter()
    results = []
    for check in checks:
        result = run_check(check, target)
        results.append(result)
        if on_result is not None:
            on_result(result)
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP)}
    return {
        "uri": target,
        "checks": [asdict(r) for r in results],
        "passed": counts[PASS],
        "failed": counts[FAIL],
        "skipped": counts[SKIP],
        "seconds": time.perf_counter() - start,
        "exit_status": 1 if counts[FAIL] else 0,
    }


def format_line(result: CheckResult) -> str:
    line = f"{result.status.upper():4}  {result.name:<20} {result.seconds:7.3f} s"
    return f"{line}  {result.reason}" if result.reason else line
