"""Progress bars for long runs: tqdm on stderr, off unless asked for (and off without a TTY)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_wanted(no_progress: bool = False) -> bool:
    """Whether the CLI shows bars: stderr is a terminal and ``--no-progress`` was not given."""
    return not no_progress and sys.stderr.isatty()


def progress_bar(
    iterable: Iterable[T],
    *,
    enabled: bool,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
) -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar on stderr when ``enabled``, else unchanged."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
