"""lumina_hal.crc: the combined and the threaded CRC-32 equal zlib's CRC-32 of the whole."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumina_hal._lumina_kernel import ffi, lib
from lumina_hal.crc import PARALLEL_MIN_BYTES, crc32, crc32_combine, zlib_crc32
from lumina_hal.device import weights_checksum
from lumina_hal.twin.kernel import isa_name, select_isa


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), cut=st.integers(0, 600), seed=st.integers(0, 2**32 - 1))
def test_combine_of_two_pieces_is_the_crc_of_the_whole(data, cut, seed):
    cut = min(cut, len(data))
    a, b = data[:cut], data[cut:]
    start = seed  # zlib's running value: the combine holds for any starting CRC of a
    assert crc32_combine(zlib.crc32(a, start), zlib.crc32(b), len(b)) == zlib.crc32(data, start)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(0, 3 * PARALLEL_MIN_BYTES), pieces=st.integers(1, 7))
def test_threaded_crc_equals_zlib_for_any_length_and_piece_count(length, pieces):
    data = np.random.default_rng(length).integers(0, 256, size=length, dtype=np.uint8)
    expected = zlib.crc32(data.data) & 0xFFFFFFFF
    assert crc32(data.data, pieces) == expected
    assert zlib_crc32(memoryview(data.data), pieces) == expected  # without the kernel


@settings(max_examples=60, deadline=None)
@given(
    length=st.one_of(st.integers(0, 300), st.integers(0, 3 * 2**20 + 100)),
    offset=st.integers(0, 15),
    threads=st.sampled_from([1, 2, 7]),
    isa=st.sampled_from(["scalar", "avx2"]),
)
def test_kernel_crc_equals_zlib_on_both_paths(length, offset, threads, isa):
    """lk_crc32 (carry-less folding on x86, table bytes on the scalar path, 1 MiB units
    combined) against zlib.crc32, at any length and alignment and thread count."""
    data = np.random.default_rng(length).integers(0, 256, size=length + offset, dtype=np.uint8)
    view = memoryview(data.data)[offset:]
    out = ffi.new("uint32_t *")
    best = isa_name()
    try:
        select_isa(isa)
        rc = lib.lk_crc32(ffi.from_buffer("uint8_t[]", view), length, threads, out)
    finally:
        select_isa(best)
    assert rc == lib.LK_OK
    assert out[0] == zlib.crc32(view) & 0xFFFFFFFF


def test_kernel_crc_refuses_bad_arguments():
    out = ffi.new("uint32_t *")
    data = ffi.from_buffer("uint8_t[]", b"abc")
    assert lib.lk_crc32(data, -1, 1, out) == lib.LK_EINVAL
    assert lib.lk_crc32(data, 3, 0, out) == lib.LK_EINVAL
    assert lib.lk_crc32(ffi.NULL, 3, 1, out) == lib.LK_EINVAL
    assert lib.lk_crc32(ffi.NULL, 0, 1, out) == lib.LK_OK and out[0] == 0


def test_combine_with_long_second_pieces_uses_every_power_of_two():
    """Lengths with high bits set (2^31 + ...) without building them: zeros extend a CRC."""
    for len2 in (1, 2**20 + 3, 2**31 + 2**29 + 7):
        # crc32(a + zeros(len2)) from crc32(a) and crc32(zeros(len2)) = combine(c, z, len2);
        # check against the byte-by-byte definition on a short case only.
        if len2 < 2**21:
            a = b"lumina"
            zeros = bytes(len2)
            assert crc32_combine(zlib.crc32(a), zlib.crc32(zeros), len2) == zlib.crc32(a + zeros)
        else:
            assert 0 <= crc32_combine(0x12345678, 0x9ABCDEF0, len2) < 2**32


def test_combine_refuses_a_negative_length():
    with pytest.raises(ValueError):
        crc32_combine(0, 0, -1)


def test_weights_checksum_is_zlibs_crc_of_the_codes():
    codes = np.random.default_rng(3).integers(-(2**20), 2**20, size=(1500, 1100), dtype=np.int32)
    expected = f"1500x1100-{zlib.crc32(codes.astype('<i4').tobytes()) & 0xFFFFFFFF:08x}"
    assert weights_checksum(codes) == expected
