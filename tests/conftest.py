"""Shared fixtures: a small twin, a seeded RNG."""

from __future__ import annotations

import numpy as np
import pytest

import lumina_hal


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def twin():
    with lumina_hal.open_device("mock://?rows=8&cols=8&seed=1&noise=false") as device:
        yield device

