"""The host side of NAK_CRC and EVENT frames (docs/protocol.md §4, §5): the real driver
against the in-process emulator, and PhlLink against a scripted port."""

from __future__ import annotations

import logging
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from cobs import cobs

import lumina_hal
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_EVENT,
    FLAG_RESP,
    FLAG_RETX,
    Frame,
    FrameDecoder,
    encode_frame,
    frame_bytes,
)
from lumina_hal.drivers.fpga.link import LinkTiming, PhlLink
from lumina_hal.errors import LinkError
from lumina_hal.sim.fpga.faults import FaultRates
from lumina_hal.sim.fpga.firmware import NAK_CRC_WIRE, FirmwareEmulator

PARAMS = "rows=8&cols=8&seed=9&preset=typical"
LINK_LOG = "lumina_hal.drivers.fpga.link"


class Wire:
    """Taps the in-process port: logs every frame written and every read, and can damage
    chosen requests on the way (one bit, so COBS and length stay valid: a NAK_CRC case)."""

    def __init__(self, port: Any, damage: Any = None) -> None:
        self.port = port
        self.sent: list[Frame] = []
        self.empty_reads = 0  # reads that found nothing: the host was waiting on silence
        self.damage = damage or (lambda frame, sent: False)
        self._write, self._read = port.write, port.read
        port.write, port.read = self.write, self.read

    def write(self, data: bytes) -> int:
        """One write may carry several whole frames (a window's refill): each is logged and
        may be damaged on its own."""
        frames = FrameDecoder().feed(bytes(data))
        if not frames:  # a flush (0x00 0x00)
            return self._write(data)
        wire = []
        for frame in frames:
            raw = bytearray(frame_bytes(frame))
            if self.damage(frame, self.sent):
                raw[8] ^= 0x10
            self.sent.append(frame)
            wire.append(cobs.encode(bytes(raw)) + b"\x00")
        self._write(b"".join(wire))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = self._read(size)
        self.empty_reads += not data
        return data

    def opcodes(self) -> list[int]:
        return [f.opcode for f in self.sent]


def emulator_of(chip: Any) -> FirmwareEmulator:
    return chip._link.port.emulator


def twin_results(w: np.ndarray, calls: list[np.ndarray]) -> list[np.ndarray]:
    with lumina_hal.open_device(f"mock://?{PARAMS}") as twin:
        twin.load_weights(w)
        return [twin.matmul(x) for x in calls]


def workload() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.uniform(-1, 1, (8, 8)), rng.uniform(-1, 1, (8, 8)), rng.uniform(-1, 1, (5, 8))


# ---- NAK_CRC ---------------------------------------------------------------------------
def test_a_corrupted_request_is_resent_at_once_and_run_once():
    a, _, x = workload()
    expected = twin_results(a, [x])[0]
    # a long timeout: waiting for it instead of acting on the NAK would show as empty reads
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}&timeout=2") as chip:
        chip.load_weights(a)
        damaged_runs = []

        def damage(frame: Frame, sent: list[Frame]) -> bool:
            if frame.opcode == msg.Opcode.RUN and len(damaged_runs) < 2:
                damaged_runs.append(frame.seq)
                return True
            return False

        wire = Wire(chip._link.port, damage)
        np.testing.assert_array_equal(chip.matmul(x), expected)
        emulator = emulator_of(chip)
        assert emulator.counters["runs"] == 1 and emulator.counters["crc_errors"] == 2
        assert [(f.opcode, f.flags) for f in wire.sent] == [
            (msg.Opcode.RUN, 0),
            (msg.Opcode.RUN, FLAG_RETX),
            (msg.Opcode.RUN, FLAG_RETX),
        ]
        assert len({f.seq for f in wire.sent}) == 1
        assert wire.empty_reads == 0 and chip._link.retransmissions == 2
        assert chip.telemetry().counters["crc_errors"] == 2


def test_a_stale_nak_resend_is_answered_from_the_cache_never_run_twice():
    """A NAK that does not belong to the request still makes the host resend it: the FPGA
    answers the RETX from its cache, and the extra reply is dropped as stale."""
    a, _, x = workload()
    expected = twin_results(a, [x, x[:2], x])
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}&timeout=2") as chip:
        chip.load_weights(a)
        port = chip._link.port
        real_write, injected = port.write, []

        def write_then_nak(data: bytes) -> int:
            n = real_write(data)
            if not injected:  # a NAK ahead of the first RUN's reply
                injected.append(1)
                with port._cond:
                    port._rx[0:0] = NAK_CRC_WIRE
            return n

        port.write = write_then_nak
        got = [chip.matmul(x), chip.matmul(x[:2]), chip.matmul(x)]
        assert emulator_of(chip).counters["runs"] == 3  # three calls, three runs
        assert chip._link.retransmissions == 1
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)


def test_a_windowed_upload_resends_the_nakked_chunk_at_once():
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}&timeout=2") as chip:
        link = chip._link
        data = np.arange(64, dtype="<i4").tobytes()
        link.request(msg.Opcode.W_BEGIN, msg.WBegin(9, 8, 8, 64 * 4, zlib.crc32(data)).pack())
        chunks = [msg.WChunk(9, off, data[off : off + 32]).pack() for off in range(0, 256, 32)]
        wire = Wire(link.port, lambda frame, sent: len(sent) == 1)  # the second chunk
        replies = link.request_window(msg.Opcode.W_CHUNK, chunks, window=4)
        assert [struct.unpack("<III", r) for r in replies] == [
            (9, off, 32) for off in range(0, 256, 32)
        ]
        retx = [f for f in wire.sent if f.flags & FLAG_RETX]
        assert [f.seq for f in retx] == [wire.sent[1].seq]  # that chunk, and only that one
        assert wire.empty_reads == 0
        commit = link.request(msg.Opcode.W_COMMIT, struct.pack("<II", 9, zlib.crc32(data)))
        assert struct.unpack("<II", commit)[1] == zlib.crc32(data)


# ---- EVENT ------------------------------------------------------------------------------
class ScriptedPort:
    """Answers every write with the next scripted bytes."""

    def __init__(self, script: list[bytes]) -> None:
        self.script, self.rx, self.timeout = list(script), b"", 0.05
        self.written: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.written.append(bytes(data))
        self.rx += self.script.pop(0) if self.script else b""
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def read(self, size: int = 1) -> bytes:
        data, self.rx = self.rx[:size], self.rx[size:]
        return data

    def reset_input_buffer(self) -> None:
        self.rx = b""

    def close(self) -> None:
        pass


def test_an_event_is_never_taken_for_the_reply_it_arrives_with(caplog):
    """Even with the seq of the outstanding request, the EVENT flag makes it an event."""
    rebooted = msg.Event(msg.EventKind.REBOOTED, 0, 0x1234ABCD)
    event = encode_frame(Frame(msg.Opcode.EVENT, 1, rebooted.pack(), flags=FLAG_EVENT))
    reply = encode_frame(Frame(msg.Opcode.PING, 1, b"pong", flags=FLAG_RESP))
    events: list[msg.Event] = []
    link = PhlLink(ScriptedPort([event + reply]), LinkTiming(None, 0.005, 0.05, 0), events.append)
    with caplog.at_level(logging.WARNING, logger=LINK_LOG):
        assert link.request(msg.Opcode.PING, b"pong") == b"pong"
    assert events == [rebooted]
    assert "rebooted (boot id 1234abcd)" in caplog.text


def test_a_malformed_event_is_logged_and_ignored(caplog):
    bad = encode_frame(Frame(msg.Opcode.EVENT, 0, b"\x02\x00", flags=FLAG_EVENT))
    reply = encode_frame(Frame(msg.Opcode.PING, 1, b"", flags=FLAG_RESP))
    events: list[msg.Event] = []
    link = PhlLink(ScriptedPort([bad + reply]), LinkTiming(None, 0.005, 0.05, 0), events.append)
    with caplog.at_level(logging.WARNING, logger=LINK_LOG):
        assert link.request(msg.Opcode.PING) == b""
    assert events == [] and "malformed event" in caplog.text


def test_a_reboot_between_calls_is_learned_from_its_event(caplog):
    a, _, x = workload()
    first, second = twin_results(a, [x, x])
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        chip.load_weights(a)
        np.testing.assert_array_equal(chip.matmul(x), first)
        emulator = emulator_of(chip)
        emulator.reboot()
        with caplog.at_level(logging.WARNING):
            chip.telemetry()  # any request: the EVENT arrives ahead of its reply
        assert f"rebooted (boot id {emulator.boot_id:08x})" in caplog.text
        wire = Wire(chip._link.port)
        for _ in range(2):  # lost weights are reported, never used, until reloaded
            with pytest.raises(LinkError, match=r"rebooted.*load_weights again"):
                chip.matmul(x)
        assert wire.sent == []  # known from the event alone: nothing was sent
        chip.load_weights(a)
        np.testing.assert_array_equal(chip.matmul(x), second)


def test_an_upload_hit_by_a_reboot_fails_naming_it_and_the_weights_stay_lost():
    a, b, x = workload()
    first, second = twin_results(a, [x]), None
    with lumina_hal.open_device(f"mock://?{PARAMS}") as twin:
        twin.load_weights(a)
        twin.matmul(x)
        twin.load_weights(b)
        second = twin.matmul(x)
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        chip.load_weights(a)
        np.testing.assert_array_equal(chip.matmul(x), first[0])
        port, emulator = chip._link.port, emulator_of(chip)
        port.faults.rates = FaultRates(reboot=1.0)  # the next weight chunk meets a reboot
        wire = Wire(port)
        with pytest.raises(LinkError, match="rebooted") as info:
            chip.load_weights(b)
        assert f"{emulator.boot_id:08x}" in str(info.value)
        # the rebooted FPGA has no session: a re-HELLO restores it (§9)
        assert msg.Opcode.HELLO in wire.opcodes()
        port.faults.rates = FaultRates()
        with pytest.raises(LinkError, match="rebooted"):
            chip.matmul(x)
        assert msg.Opcode.RUN not in wire.opcodes()
        chip.load_weights(b)
        np.testing.assert_array_equal(chip.matmul(x), second)


def test_weights_loaded_after_the_event_are_valid_and_a_repeat_event_is_ignored():
    """The EVENT arrives with W_BEGIN's reply: the upload ran on the new boot (§5)."""
    a, b, x = workload()
    with lumina_hal.open_device(f"mock://?{PARAMS}") as twin:
        twin.load_weights(a)
        twin.load_weights(b)
        expected = [twin.matmul(x), twin.matmul(x)]
    with lumina_hal.open_device(f"fpga+sim://?{PARAMS}") as chip:
        chip.load_weights(a)
        emulator = emulator_of(chip)
        emulator.reboot()
        event = FrameDecoder().feed(emulator.receive(b""))  # take the EVENT to replay it
        chip._link.port._rx += encode_frame(event[0])  # and deliver it as the FPGA would
        chip.load_weights(b)
        np.testing.assert_array_equal(chip.matmul(x), expected[0])
        chip._link.port._rx += encode_frame(event[0])  # a duplicate of the same event
        np.testing.assert_array_equal(chip.matmul(x), expected[1])
