"""The firmware emulator against docs/protocol.md, driven frame by frame."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest

import lumina_hal
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_RETX,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lumina_hal.sim.fpga.firmware import FirmwareEmulator
from lumina_hal.twin import reference

SESSION = 0x5E55_1011


class Host:
    """The smallest possible host: one request, one response, no retries; keeps events."""

    def __init__(self, emulator: FirmwareEmulator) -> None:
        self.emulator, self.seq, self.decoder = emulator, 0, FrameDecoder()
        self.events: list[Frame] = []

    def call(
        self, opcode: int, payload: bytes = b"", *, seq: int | None = None, flags: int = 0
    ) -> Frame:
        if seq is None:
            self.seq += 1
            seq = self.seq
        frame = Frame(opcode, seq, payload, flags=flags, session=SESSION)
        reply = self.emulator.receive(encode_frame(frame))
        frames = self.decoder.feed(reply)
        self.events += [f for f in frames if f.flags & FLAG_EVENT]
        (frame,) = [f for f in frames if not f.flags & FLAG_EVENT]
        assert frame.seq == seq and frame.is_response
        return frame

    def ok(self, opcode: int, payload: bytes = b"") -> bytes:
        frame = self.call(opcode, payload)
        assert not frame.is_error, msg.ErrorReply.unpack(frame.payload).describe()
        return frame.payload

    def error(self, opcode: int, payload: bytes = b"") -> msg.ErrorReply:
        frame = self.call(opcode, payload)
        assert frame.flags & FLAG_ERR
        return msg.ErrorReply.unpack(frame.payload)

    def upload(self, codes: np.ndarray, txn: int = 1, chunk_codes: int = 1000) -> int:
        data = np.ascontiguousarray(codes, dtype="<i4").tobytes()
        crc = zlib.crc32(data)
        self.ok(msg.Opcode.W_BEGIN, msg.WBegin(txn, *codes.shape, len(data), crc).pack())
        for off in range(0, len(data), 4 * chunk_codes):
            self.ok(
                msg.Opcode.W_CHUNK, msg.WChunk(txn, off, data[off : off + 4 * chunk_codes]).pack()
            )
        reply = self.ok(msg.Opcode.W_COMMIT, struct.pack("<II", txn, crc))
        return struct.unpack("<I", reply[:4])[0]

    def run(self, weight_id: int, codes: np.ndarray, call_index: int, first: int = 0):
        payload = msg.RunRequest(weight_id, call_index, first, codes).pack()
        return msg.RunResponse.unpack(self.ok(msg.Opcode.RUN, payload), self.rows)


def host_for(**params) -> tuple[Host, msg.Hello]:
    host = Host(FirmwareEmulator(**params))
    hello = msg.Hello.unpack(host.ok(msg.Opcode.HELLO))
    host.rows = None
    return host, hello


def test_hello_reports_identity_geometry_and_calibration():
    host, hello = host_for(rows=16, cols=12, preset="harsh", serial="EMU-7")
    assert (hello.rows, hello.cols, hello.weight_bits, hello.output_bits) == (16, 12, 10, 10)
    assert hello.serial == "EMU-7" and hello.proto_version == (1, 2) and hello.firmware[0] == 1
    assert hello.heater_range_pi == 1.0 and hello.heater_range_rad == math.pi  # the v1 chip's
    assert hello.loss_row_db == pytest.approx(2.0 * 1.0 / 16)  # α L_die / rows
    assert hello.boot_id == host.emulator.boot_id


def test_emulator_output_equals_the_twin_bit_for_bit():
    """Same weights, inputs, seed and preset: the PHL1 path gives exactly mock://'s result."""
    rng = np.random.default_rng(11)
    w = rng.uniform(-1, 1, size=(20, 24))
    x = rng.uniform(-1, 1, size=(9, 24)).astype(np.float32)
    uri_params = {"rows": 32, "cols": 24, "seed": 5, "preset": "typical"}
    with lumina_hal.open_device("mock://", **uri_params) as chip:
        chip.load_weights(w)
        twin_first = chip.matmul(x)
        twin_second = chip.matmul(x)

    host, hello = host_for(**uri_params)
    host.rows = 20
    codes, s_w = reference.heater_codes(
        w, hello.weight_bits, (hello.loss_row_db, hello.loss_col_db)
    )
    weight_id = host.upload(codes, chunk_codes=97)
    x_levels = np.float32(reference.levels(hello.input_bits))
    s_x = np.max(np.abs(x), axis=1)
    x_codes = np.rint(x * (x_levels / s_x)[:, None]).astype(np.int32)
    fs = np.float32(reference.full_scale(host.emulator.physics, 24))
    from_code = fs / np.float32(reference.levels(hello.output_bits))

    def dequantize(y_codes):
        return ((y_codes.astype(np.float32) * from_code) * s_x[:, None]) * np.float32(s_w)

    whole = host.run(weight_id, x_codes, call_index=0)
    np.testing.assert_array_equal(dequantize(whole.codes), twin_first)
    # the second call, split over two RUN frames, equals the twin's second call
    a = host.run(weight_id, x_codes[:4], call_index=1, first=0)
    b = host.run(weight_id, x_codes[4:], call_index=1, first=4)
    np.testing.assert_array_equal(dequantize(np.vstack([a.codes, b.codes])), twin_second)


def test_a_retransmission_is_answered_from_the_cache_not_executed_again():
    host, hello = host_for(rows=8, cols=8)
    host.rows = 8
    codes, _ = reference.heater_codes(np.eye(8), hello.weight_bits, (0.0, 0.0))
    weight_id = host.upload(codes)
    x = np.zeros((1, 8), dtype=np.int32)
    x[0, 0] = reference.levels(hello.input_bits)
    payload = msg.RunRequest(weight_id, 0, 0, x).pack()
    first = host.call(msg.Opcode.RUN, payload, seq=50)
    again = host.call(msg.Opcode.RUN, payload, seq=50, flags=FLAG_RETX)
    assert again == first
    assert host.emulator.counters["runs"] == 1


def test_hello_starts_a_session_so_a_new_host_reusing_seqs_is_executed():
    """A second host restarts at seq 1 with identical requests: they must run, not hit the cache."""
    first, hello = host_for(rows=4, cols=4)
    codes, _ = reference.heater_codes(np.eye(4), hello.weight_bits, (0.0, 0.0))
    first.upload(codes)
    first.ok(msg.Opcode.SAFE_STATE)  # close(): weights dropped
    second = Host(first.emulator)
    assert msg.Hello.unpack(second.ok(msg.Opcode.HELLO)).rows == 4
    weight_id = second.upload(codes)  # the same frames, seq for seq, as the first session's
    status = second.ok(msg.Opcode.W_STATUS)
    assert weight_id != 0 and struct.unpack_from("<I", status)[0] == weight_id


def test_failed_commit_keeps_the_previous_weights_active():
    host, hello = host_for(rows=4, cols=4)
    codes, _ = reference.heater_codes(np.eye(4), hello.weight_bits, (0.0, 0.0))
    first_id = host.upload(codes, txn=1)
    data = codes.astype("<i4").tobytes()
    host.ok(msg.Opcode.W_BEGIN, msg.WBegin(2, 4, 4, len(data), zlib.crc32(data)).pack())
    host.ok(msg.Opcode.W_CHUNK, msg.WChunk(2, 0, data[:32]).pack())  # half the matrix
    err = host.error(msg.Opcode.W_COMMIT, struct.pack("<II", 2, zlib.crc32(data)))
    assert err.code == msg.ErrorCode.STAGED_CRC_MISMATCH and "never staged" in err.message
    status = host.ok(msg.Opcode.W_STATUS)
    assert struct.unpack_from("<I", status)[0] == first_id
    bad = bytearray(data)
    bad[0] ^= 1
    host.ok(msg.Opcode.W_CHUNK, msg.WChunk(2, 0, bytes(bad)).pack())
    err = host.error(msg.Opcode.W_COMMIT, struct.pack("<II", 2, zlib.crc32(data)))
    assert err.code == msg.ErrorCode.STAGED_CRC_MISMATCH
    assert struct.unpack_from("<I", host.ok(msg.Opcode.W_STATUS))[0] == first_id


def test_stale_weights_codes_out_of_range_and_unknown_opcodes_are_refused():
    host, hello = host_for(rows=4, cols=4)
    codes, _ = reference.heater_codes(np.eye(4), hello.weight_bits, (0.0, 0.0))
    weight_id = host.upload(codes)
    x = np.full((1, 4), reference.levels(hello.input_bits), dtype=np.int32)
    stale = host.error(msg.Opcode.RUN, msg.RunRequest(weight_id + 1, 0, 0, x).pack())
    assert stale.code == msg.ErrorCode.WEIGHT_ID_MISMATCH
    big = host.error(msg.Opcode.RUN, msg.RunRequest(weight_id, 0, 0, x * 2).pack())
    assert big.code == msg.ErrorCode.OUT_OF_RANGE
    assert host.error(0x55).code == msg.ErrorCode.UNKNOWN_OP
    assert host.error(msg.Opcode.W_BEGIN, b"short").code == msg.ErrorCode.MALFORMED
    too_big = host.error(msg.Opcode.W_BEGIN, msg.WBegin(3, 5, 4, 80, 0).pack())
    assert too_big.code == msg.ErrorCode.OUT_OF_RANGE
    minimum = np.full((1, 4), -(2**31), dtype=np.int32)  # abs() would overflow: refused
    low = host.error(msg.Opcode.RUN, msg.RunRequest(weight_id, 0, 0, minimum).pack())
    assert low.code == msg.ErrorCode.OUT_OF_RANGE
    host.emulator.reboot()  # a rebooted FPGA has no session: the request is not even read
    assert (
        host.error(msg.Opcode.RUN, msg.RunRequest(weight_id, 0, 0, x).pack()).code
        == msg.ErrorCode.NO_SESSION
    )
    new_boot = msg.Hello.unpack(host.ok(msg.Opcode.HELLO)).boot_id
    assert (
        host.error(msg.Opcode.RUN, msg.RunRequest(weight_id, 0, 0, x).pack()).code
        == msg.ErrorCode.WEIGHT_ID_MISMATCH
    )
    assert new_boot != hello.boot_id
    (event,) = host.events  # the reboot announced itself once, with the new boot id
    assert msg.Event.unpack(event.payload) == msg.Event(msg.EventKind.REBOOTED, 0, new_boot)
