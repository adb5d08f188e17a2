"""Checks that results do not depend on the session or the thread: determinism, the
noise-stream position, thread safety.

A noisy seeded device draws noise from (seed, call index), so a result depends on how many
calls came before it. Both checks therefore compare runs that make the same calls in the
same order, and the thread check records the order the device really ran them in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from lumina_hal.device import MAX_CALL_INDEX, Capability, PhotonicDevice
from lumina_hal.errors import InputError, UnsupportedOperationError
from lumina_hal.testing.conformance.support import (
    ConformanceFailure,
    NotApplicable,
    accuracy_threshold_db,
    assert_accurate,
    assert_raises,
    has,
    ideal,
    inputs,
    opened,
    require,
    uniform,
    work_shape,
)

THREADS = 4
CALLS_PER_THREAD = 6
#: A hang guard for worker threads stuck outside the device lock, not a timing assertion.
JOIN_TIMEOUT_S = 60.0
#: One call may be this much worse than the accuracy threshold (a small sample of outputs).
PER_CALL_MARGIN_DB = 10.0


def _calls(cols: int) -> list[np.ndarray]:
    """The determinism workload: a batch, a single vector, a smaller batch, the batch again."""
    x = inputs(2, 8, cols)
    return [x, x[3], x[:2], x]


def _run(device: PhotonicDevice, w: np.ndarray, calls: Sequence[np.ndarray]) -> list[np.ndarray]:
    device.load_weights(w)
    return [device.matmul(x) for x in calls]


def _assert_identical(got: list[np.ndarray], expected: list[np.ndarray], what: str) -> None:
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        if not np.array_equal(a, b):
            differ = int(np.count_nonzero(a != b))
            raise ConformanceFailure(f"{what}: call {i} differs in {differ} of {a.size} outputs")


def check_determinism(uri: str) -> None:
    """(seeded) Same URI, weights and calls: bit-identical across openings and after reset()."""
    with opened(uri) as device:
        require(device.info, Capability.SEEDED)
        r, c = work_shape(device.info)
        w, calls = uniform(1, r, c), _calls(c)
        first = _run(device, w, calls)
        device.reset()
        _assert_identical(_run(device, w, calls), first, "after reset() and the same calls")
    with opened(uri) as again:
        _assert_identical(_run(again, w, calls), first, "in a second opening")


def check_noise_position(uri: str) -> None:
    """call_index starts at 0, counts calls and returns to 0 on reset(); seek_call_index(n)
    moves it (seeded: the calls from n repeat bit for bit); a bad position is an InputError
    that moves nothing. Without the capability both raise UnsupportedOperationError."""
    with opened(uri) as device:
        info = device.info
        if not has(info, Capability.NOISE_POSITION):
            assert_raises(UnsupportedOperationError, lambda: device.call_index, "call_index")
            assert_raises(
                UnsupportedOperationError, lambda: device.seek_call_index(0), "seek_call_index"
            )
            return
        r, c = work_shape(info)
        w, calls = uniform(1, r, c), _calls(c)
        _expect_position(device, 0, "right after open")
        first = _run(device, w, calls)
        _expect_position(device, len(calls), f"after {len(calls)} calls")
        bad_positions: tuple[Any, ...] = (-1, MAX_CALL_INDEX + 1, 1.5, True, "2")
        for bad in bad_positions:
            assert_raises(InputError, partial(device.seek_call_index, bad), f"seek to {bad!r}")
        _expect_position(device, len(calls), "after refused seeks")
        device.seek_call_index(1)
        _expect_position(device, 1, "after seek_call_index(1)")
        again = [device.matmul(x) for x in calls[1:]]
        _expect_position(device, len(calls), "after the calls from 1 again")
        if has(info, Capability.SEEDED):
            _assert_identical(again, first[1:], "the calls from 1 after seek_call_index(1)")
        device.reset()
        _expect_position(device, 0, "after reset()")


def _expect_position(device: PhotonicDevice, expected: int, when: str) -> None:
    got = device.call_index
    if type(got) is not int or got != expected:
        raise ConformanceFailure(f"call_index {when} is {got!r}, expected {expected}")


def _thread_inputs(cols: int) -> list[list[np.ndarray]]:
    """Per thread, its own inputs: single vectors and batches of 2 alternate."""
    xs: list[list[np.ndarray]] = []
    for t in range(THREADS):
        calls: list[np.ndarray] = []
        for i in range(CALLS_PER_THREAD):
            batch = inputs(100 + t * CALLS_PER_THREAD + i, 2, cols)
            calls.append(batch if i % 2 else batch[0])
        xs.append(calls)
    return xs


def _in_threads(work: Callable[[int], None]) -> None:
    """Run ``work(t)`` for every thread index at once; re-raise the first worker exception."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def body(t: int) -> None:
        try:
            start.wait()
            work(t)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        raise ConformanceFailure(
            f"{hung} of {THREADS} threads did not finish within {JOIN_TIMEOUT_S:g} s"
        )
    if errors:
        raise ConformanceFailure(f"a thread raised {type(errors[0]).__name__}: {errors[0]}") from (
            errors[0]
        )


def _assert_no_mixups(device: PhotonicDevice, w: np.ndarray, xs: list[list[np.ndarray]]) -> None:
    """Concurrent calls, no help from the test: each result is its own input's result.

    Each call's RMS error, relative to the RMS signal of all calls, must stay within the
    accuracy threshold plus PER_CALL_MARGIN_DB (one call is a small sample); the result of
    another input is off by about 1.4. All calls together must meet the threshold itself.
    """
    results: dict[tuple[int, int], np.ndarray] = {}

    def work(t: int) -> None:
        for i, x in enumerate(xs[t]):
            results[t, i] = device.matmul(x)

    _in_threads(work)
    info = device.info
    threshold = accuracy_threshold_db(info)
    if not (threshold is not None):
        raise ConformanceFailure("conformance check failed: threshold is not None")
    keys = [(t, i) for t in range(THREADS) for i in range(CALLS_PER_THREAD)]
    x_all = np.concatenate([np.atleast_2d(xs[t][i]) for t, i in keys])
    y_all = np.concatenate([np.atleast_2d(results[key]) for key in keys])
    signal = float(np.sqrt(np.mean(ideal(x_all, w) ** 2)))
    limit = 10.0 ** (-(threshold - PER_CALL_MARGIN_DB) / 20.0)
    for t, i in keys:
        y, expected = results[t, i], ideal(xs[t][i], w)
        if not y.shape == expected.shape:
            raise ConformanceFailure(f"thread {t} call {i}: shape {y.shape}")
        error = float(np.sqrt(np.mean((y - expected) ** 2))) / signal
        if not error <= limit:
            raise ConformanceFailure(
                f"thread {t} call {i}: RMS error {error:.3g} of the RMS signal exceeds {limit:.3g} "
                "(the result of another input is off by about 1.4)"
            )
    assert_accurate(y_all, x_all, w, info, "all concurrent calls together")


def _assert_serial_equivalent(uri: str, w: np.ndarray, xs: list[list[np.ndarray]]) -> None:
    """Concurrent calls in a recorded order equal the same calls made serially in that order."""
    order: list[tuple[int, int]] = []
    results: dict[tuple[int, int], np.ndarray] = {}
    with opened(uri) as device:
        device.load_weights(w)

        def work(t: int) -> None:
            for i, x in enumerate(xs[t]):
                with device.lock:  # only to learn the order the device ran the calls in
                    results[t, i] = device.matmul(x)
                    order.append((t, i))

        _in_threads(work)
    with opened(uri) as serial:
        serial.load_weights(w)
        for n, (t, i) in enumerate(order):
            y = serial.matmul(xs[t][i])
            if not np.array_equal(y, results[t, i]):
                raise ConformanceFailure(
                    f"call {n} of the recorded order (thread {t} call {i}) differs from the same "
                    "call made serially"
                )


def check_thread_safety(uri: str) -> None:
    """Concurrent matmul: no mix-ups, and (seeded) the bits of serial calls in the same order."""
    with opened(uri) as device:
        info = device.info
        r, c = work_shape(info)
        w, xs = uniform(1, r, c), _thread_inputs(c)
        comparable = accuracy_threshold_db(info) is not None
        seeded = has(info, Capability.SEEDED)
        if not (comparable or seeded):
            raise NotApplicable(
                "needs converters of >= 4 bits (to check results) or the 'seeded' capability"
            )
        if comparable:
            device.load_weights(w)
            _assert_no_mixups(device, w, xs)
    if seeded:
        _assert_serial_equivalent(uri, w, xs)
