"""CRC-32 (zlib's, ISO-HDLC) of large buffers in parallel pieces, combined exactly.

``crc32_combine`` is zlib's ``crc32_combine`` (polynomial arithmetic modulo the CRC
polynomial in GF(2), reflected bit order): the CRC of ``a + b`` from the CRCs of ``a`` and
``b`` and the length of ``b``. ``crc32`` splits a buffer into contiguous pieces, runs
``zlib.crc32`` on each in its own thread (zlib releases the GIL on large buffers) and
combines them, so the value is ``zlib.crc32(buffer)`` for any number of pieces.
"""

from __future__ import annotations

import os
import threading
import zlib

_POLY = 0xEDB88320  # x^32 + ... reflected
#: Below this many bytes a buffer is checksummed in one piece (threads cost ~0.1 ms).
PARALLEL_MIN_BYTES = 4 << 20


def _mult_mod_p(a: int, b: int) -> int:
    """a(x) b(x) modulo the CRC polynomial (reflected: bit 31 is x^0); a must not be 0."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    """x^(2^n) modulo the polynomial, n = 0 .. 31."""
    p = 1 << 30  # x^1
    table = [p]
    for _ in range(31):
        p = _mult_mod_p(p, p)
        table.append(p)
    return tuple(table)


_X2N = _x2n_table()


def _x2n_mod_p(n: int, k: int) -> int:
    """x^(n 2^k) modulo the polynomial."""
    p = 1 << 31  # x^0
    while n:
        if n & 1:
            p = _mult_mod_p(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``a + b`` given ``crc1 = crc32(a)``, ``crc2 = crc32(b)``, ``len2 = len(b)``."""
    if len2 < 0:
        raise ValueError(f"len2 must be >= 0, got {len2}")
    return _mult_mod_p(_x2n_mod_p(len2, 3), crc1 & 0xFFFFFFFF) ^ (crc2 & 0xFFFFFFFF)


def default_pieces() -> int:
    """The CPUs this process may run on (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def crc32(data: bytes | bytearray | memoryview, pieces: int | None = None) -> int:
    """``zlib.crc32(data) & 0xFFFFFFFF``, computed in ``pieces`` threads for large buffers
    (default: :func:`default_pieces`); the value does not depend on ``pieces``.

    Large buffers go to the compiled kernel's lk_crc32 (carry-less multiplication where the
    CPU has it, its thread pool) when it is built, else to ``zlib.crc32`` in threads."""
    view = memoryview(data).cast("B")
    size = len(view)
    count = default_pieces() if pieces is None else max(1, int(pieces))
    if size >= PARALLEL_MIN_BYTES:
        try:
            from lumina_hal._lumina_kernel import ffi, lib
        except ImportError:  # a source tree without the compiled kernel
            pass
        else:
            out = ffi.new("uint32_t *")
            if lib.lk_crc32(ffi.from_buffer("uint8_t[]", view), size, count, out) == lib.LK_OK:
                return int(out[0])
    return zlib_crc32(view, count)


def zlib_crc32(view: memoryview, count: int) -> int:
    """``zlib.crc32`` of a byte view in ``count`` threads (large views), combined."""
    size = len(view)
    count = min(count, max(1, size // (PARALLEL_MIN_BYTES // 2)))
    if count == 1:
        return zlib.crc32(view) & 0xFFFFFFFF
    bounds = [size * k // count for k in range(count + 1)]
    crcs = [0] * count

    def run(k: int) -> None:
        crcs[k] = zlib.crc32(view[bounds[k] : bounds[k + 1]])

    workers = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(1, count)]
    for t in workers:
        t.start()
    run(0)
    for t in workers:
        t.join()
    crc = crcs[0]
    for k in range(1, count):
        crc = crc32_combine(crc, crcs[k], bounds[k + 1] - bounds[k])
    return crc & 0xFFFFFFFF
