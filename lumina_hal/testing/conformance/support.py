"""What the conformance checks share: the skip signal, device opening, workloads, thresholds.

Checks raise ConformanceFailure (fail; explicit raises, never bare asserts, so ``python -O``
cannot switch them off) or NotApplicable (skip); nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice
from lumina_hal.errors import LuminaError
from lumina_hal.metrics import snr_db
from lumina_hal.registry import build_device

#: Largest block the checks program (rows and cols), so any array size is quick to test.
WORK_LIMIT = 32
#: Most vectors in one call.
MAX_BATCH = 64
#: The accuracy threshold never asks for more than this (10 % RMS error), whatever the bits.
SNR_CAP_DB = 20.0
#: Below this converter width a right result cannot be told from a wrong one.
MIN_BITS_FOR_ACCURACY = 4


class ConformanceFailure(LuminaError, AssertionError):
    """A conformance check failed. Raised explicitly, so ``python -O`` cannot switch it off;
    an AssertionError too, so pytest and older callers still see a failure."""


class NotApplicable(Exception):
    """Raised by a check that does not apply to the device (it is skipped with this reason)."""


@dataclass(frozen=True)
class Check:
    """One conformance check: ``func(uri)`` passes, raises ConformanceFailure or NotApplicable."""

    name: str
    func: Callable[[str], None]

    @classmethod
    def of(cls, func: Callable[[str], None]) -> Check:
        """The check run by ``func``, named after it without the ``check_`` prefix."""
        return cls(func.__name__.removeprefix("check_"), func)

    def __call__(self, uri: str) -> None:
        self.func(uri)


@contextmanager
def opened(uri: str) -> Iterator[PhotonicDevice]:
    """The device named by ``uri``, open for the block and closed after it, whatever happens."""
    device = build_device(uri)
    device.open()
    try:
        yield device
    finally:
        device.close()


def has(info: DeviceInfo, capability: Capability) -> bool:
    return capability.value in info.capabilities


def require(info: DeviceInfo, capability: Capability) -> None:
    """Skip the check (NotApplicable) unless the device declares ``capability``."""
    if not has(info, capability):
        raise NotApplicable(f"device does not declare the {capability.value!r} capability")


def work_shape(info: DeviceInfo) -> tuple[int, int]:
    """The top-left block the checks program: the array, at most WORK_LIMIT each way."""
    return min(info.rows, WORK_LIMIT), min(info.cols, WORK_LIMIT)


def uniform(seed: int, *shape: int) -> np.ndarray:
    """Fixed-seed uniform [-1, 1) data (float64): the same in every opening and every run."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)


def inputs(seed: int, batch: int, cols: int) -> np.ndarray:
    """Fixed-seed float32 input vectors, shape (batch, cols)."""
    return uniform(seed, batch, cols).astype(np.float32)


def ideal(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The exact float64 result ``x @ w.T``."""
    return np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T


def accuracy_threshold_db(info: DeviceInfo) -> float | None:
    """Least SNR a correct device reaches on the uniform workload; None below 4-bit converters.

    One b-bit ADC whose full scale is 6 sigma of the output gives 6.02 b - 10.8 dB; three
    converters in cascade measure about 6.02 b - 13 dB on the twin; 7 dB of margin below
    that, capped at 20 dB so analog noise never fails a correct device (docs/conformance.md).
    """
    bits = min(info.weight_bits, info.input_bits, info.output_bits)
    if bits < MIN_BITS_FOR_ACCURACY:
        return None
    return min(SNR_CAP_DB, 6.02 * bits - 20.0)


def require_accuracy_threshold(info: DeviceInfo) -> float:
    threshold = accuracy_threshold_db(info)
    if threshold is None:
        raise NotApplicable(
            f"converters of {min(info.weight_bits, info.input_bits, info.output_bits)} bits "
            f"are too coarse to tell a right result from a wrong one "
            f"(needs >= {MIN_BITS_FOR_ACCURACY})"
        )
    return threshold


def assert_accurate(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, info: DeviceInfo, what: str
) -> None:
    """``y`` is ``x @ w.T`` within the accuracy threshold (skipped below 4-bit converters)."""
    expected = ideal(x, w)
    if not y.shape == expected.shape:
        raise ConformanceFailure(f"{what}: shape {y.shape}, expected {expected.shape}")
    threshold = accuracy_threshold_db(info)
    if threshold is None:
        return
    measured = snr_db(y, expected)
    if not measured >= threshold:
        raise ConformanceFailure(
            f"{what}: SNR {measured:.1f} dB against x @ W.T is below the {threshold:.1f} dB "
            f"threshold for {min(info.weight_bits, info.input_bits, info.output_bits)}-bit "
            "converters"
        )


def assert_raises(error: type[BaseException], call: Callable[[], Any], what: str) -> BaseException:
    """Call ``call`` and return the ``error`` it raises; fail naming ``what`` otherwise."""
    try:
        call()
    except error as exc:
        if not str(exc):
            raise ConformanceFailure(
                f"{what}: {type(exc).__name__} has an empty message"
            ) from None
        return exc
    except Exception as exc:
        raise ConformanceFailure(
            f"{what}: expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise ConformanceFailure(f"{what}: expected {error.__name__}, nothing was raised")
