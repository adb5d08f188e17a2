"""Shared fixtures: a small twin, a seeded RNG; tests run against the installed package."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import lumina_hal

REPO_ROOT = Path(__file__).resolve().parent.parent
# test-only helper packages (tests/phl1_peer) import as top-level modules under importlib mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

# CI replays the same examples every run (a red CI must be reproducible); a local run explores
# new ones each time and keeps what it found in .hypothesis/.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test the source tree by mistake: the suite tests what a user installs.

    ``lumina_hal/`` at the repository root lacks ``drivers``, ``sim`` and the compiled kernel,
    which the installed package maps in (pyproject package-dir).
    """
    installed = Path(lumina_hal.__file__).resolve().parent
    if installed == REPO_ROOT / "lumina_hal":
        raise pytest.UsageError(
            "lumina_hal was imported from the source tree; install it (pip install .) and run "
            "pytest with the environment's own pytest, not `python -m pytest` from the root"
        )


@pytest.fixture(autouse=True, scope="session")
def _run_outside_the_source_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Subprocesses (``python -c``, ``-m lumina_hal``) put their working directory first on
    sys.path; from the repository root that would be the source tree. Work elsewhere."""
    previous = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def twin():
    with lumina_hal.open_device("mock://?rows=8&cols=8&seed=1&noise=false") as device:
        yield device
