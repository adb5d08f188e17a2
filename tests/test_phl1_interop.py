"""The real host driver against an independent PHL1 v1.1 firmware written from
docs/protocol.md alone (tests/phl1_peer): wide/tall RUNs, BUSY, stale replies, a silent
device, v1.0 peers, and hostile replies (hypothesis) that must all end as LuminaErrors."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phl1_peer import wire as peer_wire
from phl1_peer.firmware import PeerFirmware, PeerPort

from lumina_hal import codes as chip_codes
from lumina_hal.drivers.fpga.device import FpgaDevice
from lumina_hal.drivers.fpga.link import LinkTiming
from lumina_hal.errors import ConfigurationError, DeviceError, LinkError, LuminaError


def open_peer(timing: LinkTiming | None = None, **params) -> tuple[FpgaDevice, PeerFirmware]:
    firmware = PeerFirmware(**params)
    device = FpgaDevice(
        lambda: PeerPort(firmware), timing or LinkTiming(None, 0.005, 0.05, 4), "peer"
    )
    return device.open(), firmware


def expected(device: FpgaDevice, firmware: PeerFirmware, x: np.ndarray) -> np.ndarray:
    """docs/protocol.md §6 dequantization of the peer's own ADC codes."""
    y_codes = np.concatenate(firmware.outputs).astype(np.float32)
    cols = device.weights_shape[1]
    _, s_x = chip_codes.input_codes(x, firmware.input_bits)
    full_scale = np.float32(1.0 * np.sqrt(cols))
    y = (y_codes * (full_scale / np.float32(firmware.ly))) * s_x[:, None]
    return y * np.float32(device._scale)


@pytest.mark.parametrize(
    "rows, cols, batch",
    [(8, 8, 3), (4, 300, 5), (300, 4, 5), (40, 700, 2), (8, 8, 400)],
    ids=["inline", "wide-staged-input", "tall-held-output", "both", "batch-split"],
)
def test_matmul_over_the_independent_peer_carries_every_shape(rows, cols, batch):
    """max_payload 1024 on the peer: 4 x 300 needs X_CHUNK, 300 x 4 needs Y_READ."""
    device, firmware = open_peer(rows=rows, cols=cols)
    rng = np.random.default_rng(rows * cols)
    w = rng.uniform(-1, 1, size=(rows, cols))
    x = rng.uniform(-1, 1, size=(batch, cols)).astype(np.float32)
    with device:
        device.load_weights(w)
        got = device.matmul(x)
        np.testing.assert_array_equal(got, expected(device, firmware, x))
    staged = 20 + 4 * cols > 1024
    held = 8 + 4 * rows > 1024
    assert (peer_wire_ops(firmware, 0x21) > 0) == staged
    assert (peer_wire_ops(firmware, 0x22) > 0) == held


def peer_wire_ops(firmware: PeerFirmware, opcode: int) -> int:
    return firmware.executed.count(opcode)


def test_busy_is_retried_and_bounded():
    device, firmware = open_peer(rows=4, cols=4)
    with device:
        device.load_weights(np.eye(4))
        firmware.busy = 5  # five BUSY answers, then the request runs
        assert device.matmul(np.ones(4)).shape == (4,)
        assert device._link.busy_retries == 5
        firmware.busy = 10**6  # BUSY for ever: DeviceError after busy_s, not a hang
        device._link.timing = LinkTiming(None, 0.005, 0.05, 4, busy_s=0.3)
        start = time.monotonic()
        with pytest.raises(DeviceError, match="BUSY") as info:
            device.matmul(np.ones(4))
        assert info.value.code == 5
        assert time.monotonic() - start < 0.3 + 0.2


def test_a_reply_from_an_earlier_session_is_never_taken_as_the_answer():
    device, firmware = open_peer(rows=4, cols=4)
    with device:
        device.load_weights(np.eye(4))
        before = device.matmul(np.ones(4))
        firmware.stale = True  # a copy with another session and junk data arrives first
        np.testing.assert_array_equal(device.matmul(np.ones(4)), before)
        firmware.stale = True
        assert device.telemetry().temperature_c == 25.0


def test_a_silent_device_escalates_ping_hello_then_closes_within_the_bound():
    timing = LinkTiming(None, 0.005, 0.02, 3)
    device, firmware = open_peer(timing, rows=4, cols=4)
    with device:
        device.load_weights(np.eye(4))
        firmware.silent = True
        executed = len(firmware.executed)
        start = time.monotonic()
        with pytest.raises(LinkError, match="unreachable"):
            device.matmul(np.ones(4))
        elapsed = time.monotonic() - start
        bound = timing.max_blocking_s(timing.attempt_timeout_s(64, 64, 0.01), 0.01)
        assert elapsed < bound - timing.busy_s + 0.5, (elapsed, bound)
        assert len(firmware.executed) == executed
        assert device._link.closed
        with pytest.raises(LinkError, match="closed"):  # every later call, at once
            device.matmul(np.ones(4))


def test_the_documented_bound_holds_for_a_policy_that_blocked_204_s_in_v1_0():
    """timeout=0.05&retries=10 on a dead device: v1.0 blocked 204 s; v1.1 <= the bound."""
    timing = LinkTiming(None, 0.005, 0.05, 10)
    device, firmware = open_peer(timing, rows=4, cols=4)
    with device:
        device.load_weights(np.eye(4))
        firmware.silent = True
        start = time.monotonic()
        with pytest.raises(LinkError):
            device.matmul(np.ones(4))
        elapsed = time.monotonic() - start
    bound = timing.max_blocking_s(timing.attempt_timeout_s(64, 64, 0.01), 0.01)
    assert bound < 7.0
    assert elapsed < bound + 0.5, (elapsed, bound)


def test_a_v1_0_device_is_refused_clearly():
    class V10Port(PeerPort):
        def write(self, data: bytes) -> int:  # a v1.0 firmware: BAD_VERSION, v1.0 layout
            for item in peer_wire.Splitter().feed(bytes(data)):
                if isinstance(item, peer_wire.Pdu):
                    body = bytes([4, 0, 0, 0]) + b"version 17 not 1"
                    self._rx += peer_wire.wire(
                        peer_wire.Pdu(item.opcode, item.seq, 0, body, 3, 0, peer_wire.VER_1_0)
                    )
            return len(data)

    device = FpgaDevice(lambda: V10Port(PeerFirmware()), LinkTiming(None, 0.005, 0.05, 1), "v1.0")
    with pytest.raises(ConfigurationError, match=r"v1\.0"):
        device.open()


def test_our_emulator_refuses_a_v1_0_host_in_the_v1_0_layout():
    from lumina_hal.sim.fpga.firmware import FirmwareEmulator

    hello_v10 = peer_wire.wire(peer_wire.Pdu(1, 2, 0, b"", 0, 0, peer_wire.VER_1_0))
    (reply,) = peer_wire.Splitter().feed(FirmwareEmulator(rows=4, cols=4).receive(hello_v10))
    assert reply.ver == 1 and reply.flags == 3 and reply.seq == 2
    assert reply.payload[0] == 4 and b"PHL1 v1.1 required" in reply.payload


# ---- v1.1 and v1.2 (docs/protocol.md §11): HELLO's heater range ------------------------
NAN_BITS = 0x7FC00000  # what a faulty v1.1 firmware might leave at the reserved offset 60


@pytest.mark.parametrize("reserved60", [0, NAN_BITS, 0x40000000])  # 0, NaN, f32 2.0
def test_a_v1_2_host_takes_pi_from_a_v1_1_peer_and_ignores_its_reserved_field(reserved60):
    device, _ = open_peer(proto_minor=1, reserved60=reserved60)
    with device:
        assert device.heater_range_rad == math.pi  # unknown: the v1.1 range (§11)
        assert device._snapshot()["hello"]["heater_range_pi"] == 0.0
        assert device._snapshot()["hello"]["proto_version"] == (1, 1)
        x = np.random.default_rng(0).uniform(-1, 1, (3, 8))
        device.load_weights(np.random.default_rng(1).uniform(-1, 1, (8, 8)))
        assert device.matmul(x).shape == (3, 8)


@pytest.mark.parametrize("minor", [2, 3])  # 3: a later minor serves v1.2's fields (§11)
@pytest.mark.parametrize("range_pi", [1.0, 2.0, 1.5, 0.25, 4.0])
def test_a_v1_2_host_uses_the_range_a_v1_2_peer_reports(minor, range_pi):
    device, _ = open_peer(proto_minor=minor, heater_range_pi=range_pi)
    with device:
        assert device.heater_range_rad == range_pi * math.pi  # exact: π and 2π to the bit
        assert range_pi != 2.0 or device.heater_range_rad == 2 * math.pi
        device.load_weights(np.eye(8))
        assert device.matmul(np.eye(8)).shape == (8, 8)


def test_a_v1_2_peer_that_does_not_know_its_range_gets_pi():
    device, _ = open_peer(heater_range_pi=0.0)
    with device:
        assert device.heater_range_rad == math.pi


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 4.5, 1e-45 * -1])
def test_a_v1_2_peer_with_an_invalid_heater_range_is_refused(bad):
    firmware = PeerFirmware(heater_range_pi=bad)
    device = FpgaDevice(lambda: PeerPort(firmware), LinkTiming(None, 0.005, 0.05, 4), "peer")
    with pytest.raises(LinkError, match=r"heater_range_pi|not finite"):
        device.open()
    assert not device.is_open


def test_a_v1_1_host_reads_our_v1_2_emulator_as_it_reads_a_v1_1_one():
    """A v1.1 host: ver 0x11 frames, proto_major 1 and minor >= 1, offset 60 reserved."""
    from lumina_hal.sim.fpga.firmware import FirmwareEmulator

    emulator = FirmwareEmulator(rows=4, cols=4)
    splitter = peer_wire.Splitter()
    (reply,) = splitter.feed(emulator.receive(peer_wire.wire(peer_wire.Pdu(1, 1, 77))))
    assert (reply.ver, reply.flags, len(reply.payload)) == (peer_wire.VER, peer_wire.RESP, 120)
    major, minor = reply.payload[0], reply.payload[1]
    assert major == 1 and minor == 2  # accepted by a v1.1 host: minor >= 1
    (range_pi,) = struct.unpack_from("<f", reply.payload, 60)
    assert range_pi == 1.0  # the emulated v1 chip's π; a v1.1 host skips these 4 bytes
    (pong,) = splitter.feed(emulator.receive(peer_wire.wire(peer_wire.Pdu(2, 2, 77, b"hi"))))
    assert pong.payload == b"hi" and pong.session == 77


# ---- hostile replies: every one a LuminaError, never a raw exception or a hang ---------
class HostilePort(PeerPort):
    """Answers each request with bytes a strategy chose (framed or raw)."""

    def __init__(self, firmware: PeerFirmware, replies: list) -> None:
        super().__init__(firmware)
        self.replies = replies

    def write(self, data: bytes) -> int:
        for item in peer_wire.Splitter().feed(bytes(data)):
            if not isinstance(item, peer_wire.Pdu):
                continue
            honest = self.firmware.answer(item)
            if self.replies and item.opcode != 1:
                kind, blob = self.replies.pop(0)
                pdus = peer_wire.Splitter().feed(honest)
                if kind == "raw" or not pdus or not isinstance(pdus[0], peer_wire.Pdu):
                    honest = blob
                else:
                    p = pdus[0]
                    field = kind
                    p = peer_wire.Pdu(
                        blob[0] if field == "opcode" else p.opcode,
                        p.seq,
                        p.session,
                        blob
                        if field == "payload"
                        else p.payload[: len(blob)]
                        if field == "truncate"
                        else p.payload,
                        blob[0] if field == "flags" else p.flags,
                        blob[0] if field == "chan" else p.chan,
                    )
                    honest = peer_wire.wire(p)
            with self._cond:
                self._rx += honest
        return len(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    replies=st.lists(
        st.tuples(
            st.sampled_from(["raw", "opcode", "payload", "truncate", "flags", "chan"]),
            st.binary(min_size=1, max_size=120),
        ),
        min_size=1,
        max_size=4,
    ),
    action=st.sampled_from(["matmul", "load", "telemetry", "temperature"]),
)
def test_fuzz_hostile_replies_end_as_lumina_errors(replies, action):
    firmware = PeerFirmware(rows=4, cols=4)
    honest = FpgaDevice(lambda: PeerPort(firmware), LinkTiming(None, 0.002, 0.005, 1), "peer")
    honest.open()
    honest.load_weights(np.eye(4))
    port = HostilePort(firmware, list(replies))
    device = FpgaDevice(lambda: port, LinkTiming(None, 0.002, 0.005, 1), "hostile")
    device.open()
    device._weight_id, device._weights_shape, device._scale = firmware.weight_id, (4, 4), 1.0
    start = time.monotonic()
    try:
        if action == "matmul":
            out = device.matmul(np.ones(4))
            assert out.shape == (4,) and np.all(np.isfinite(out))
        elif action == "load":
            device.load_weights(np.eye(4) * 0.5)
        elif action == "telemetry":
            device.telemetry()
        else:
            device.set_temperature(30.0)
    except LuminaError:
        pass
    finally:
        device.close()
    assert time.monotonic() - start < 5.0


@settings(max_examples=300, deadline=None)
@given(
    opcode=st.integers(0, 255),
    payload=st.binary(max_size=400),
    flags=st.sampled_from([0, 0x08, 0x04, 0x01, 0x10, 0x20, 0x03]),
    chan=st.integers(0, 2),
    weights=st.booleans(),
)
def test_fuzz_our_emulator_answers_every_request_with_one_valid_frame(
    opcode, payload, flags, chan, weights
):
    """Frames built by the independent host (tests/phl1_peer/wire.py) against the emulator:
    one answer echoing seq/session/opcode/chan, never an exception, never an oversized frame."""
    from lumina_hal.sim.fpga.firmware import FirmwareEmulator

    emulator = FirmwareEmulator(rows=4, cols=4)
    session = 0xC0FFEE
    emulator.receive(peer_wire.wire(peer_wire.Pdu(1, 1, session)))
    if weights:
        data = bytes(4 * 16)
        crc = peer_wire.crc32(data)
        for seq, op, body in (
            (2, 0x10, struct.pack("<IHHII", 1, 4, 4, 64, crc)),
            (3, 0x11, struct.pack("<II", 1, 0) + data),
            (4, 0x12, struct.pack("<II", 1, crc)),
        ):
            emulator.receive(peer_wire.wire(peer_wire.Pdu(op, seq, session, body)))
    out = emulator.receive(peer_wire.wire(peer_wire.Pdu(opcode, 9, session, payload, flags, chan)))
    items = peer_wire.Splitter().feed(out)
    if flags & (peer_wire.RESP | peer_wire.EVENT):
        assert items == []  # not a request: dropped (§7 step 3)
        return
    (reply,) = items
    assert isinstance(reply, peer_wire.Pdu)
    assert (reply.seq, reply.session, reply.opcode, reply.chan) == (9, session, opcode, chan)
    assert reply.flags in (peer_wire.RESP, peer_wire.RESP | peer_wire.ERR)
    assert len(reply.payload) <= 8192
    if reply.flags & peer_wire.ERR:
        assert 1 <= reply.payload[0] <= 12 and len(reply.payload) <= 4 + 200
