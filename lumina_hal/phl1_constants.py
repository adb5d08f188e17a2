"""Every PHL1 protocol constant (docs/protocol.md), in one place.

The host driver (``drivers/fpga``), the firmware emulator (``sim/fpga``) and the board timing
model (``board_timing``) take their numbers from here; a core module, so it imports nothing
of the package. Payload layouts are ``struct`` formats and every size is derived from them.
(The independent peer in tests/phl1_peer keeps its own numbers on purpose: it is written
from the page alone.)
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum

# ---- versions (§3, §6 HELLO, §11) --------------------------------------------------------
#: Frame ``ver`` byte of v1.1 and v1.2: the frame layout did not change in v1.2, so the
#: minor is negotiated in HELLO only (§11).
FRAME_VERSION = 0x11
#: ``ver`` of a PHL1 v1.0 frame (8-byte header, no session), only ever refused (§11).
LEGACY_FRAME_VERSION = 0x01
PROTO_MAJOR = 1
#: Newest minor this package speaks (host and emulator).
PROTO_MINOR = 2
#: Oldest minor a host accepts in HELLO.
PROTO_MINOR_MIN = 1
#: First minor whose HELLO carries ``heater_range_pi`` at offset 60 (reserved 0 before).
MINOR_HEATER_RANGE = 2
#: Firmware major a host accepts.
FIRMWARE_MAJOR = 1

# ---- framing (§2-3) ----------------------------------------------------------------------
MAX_PAYLOAD = 8192
BASE_FORMAT = "<BBBBHH"  # ver, flags, opcode, chan, seq, len: unchanged since v1.0
HEADER_FORMAT = "<BBBBHHI"  # ... and the session; len counts it (4 + payload)
CRC_FORMAT = "<I"
SESSION_BYTES = 4
HEADER_BYTES = struct.calcsize(HEADER_FORMAT)  # 12
CRC_BYTES = struct.calcsize(CRC_FORMAT)  # 4
FRAME_OVERHEAD = HEADER_BYTES + CRC_BYTES  # 16 bytes around the payload
LEGACY_FRAME_OVERHEAD = struct.calcsize(BASE_FORMAT) + CRC_BYTES  # 12
MAX_FRAME = MAX_PAYLOAD + FRAME_OVERHEAD  # 8208
#: FPGA side: a partial frame is discarded after this long without a byte (§2).
IDLE_CLEAR_S = 0.05

FLAG_RESP = 0x01
FLAG_ERR = 0x02
FLAG_MORE = 0x04  # reserved: MUST be 0
FLAG_RETX = 0x08
FLAG_EVENT = 0x10
KNOWN_FLAGS = FLAG_RESP | FLAG_ERR | FLAG_MORE | FLAG_RETX | FLAG_EVENT


class Opcode(IntEnum):
    """§6."""

    HELLO = 0x01
    PING = 0x02
    W_BEGIN = 0x10
    W_CHUNK = 0x11
    W_COMMIT = 0x12
    W_ABORT = 0x13
    W_STATUS = 0x14
    RUN = 0x20
    X_CHUNK = 0x21
    Y_READ = 0x22
    TELEMETRY = 0x30
    SET_TEMPERATURE = 0x31
    RESET = 0x40
    SAFE_STATE = 0x42
    EVENT = 0x7F


class ErrorCode(IntEnum):
    """§7."""

    NAK_CRC = 1
    MALFORMED = 2
    UNKNOWN_OP = 3
    BAD_VERSION = 4
    BUSY = 5
    OUT_OF_RANGE = 6
    NO_TXN = 7
    STAGED_CRC_MISMATCH = 8
    WEIGHT_ID_MISMATCH = 9
    NO_SESSION = 10
    IN_USE = 11
    INTERNAL = 12


class EventKind(IntEnum):
    """EVENT kinds (§6, opcode 0x7F)."""

    THERMAL_TRIP = 1
    REBOOTED = 2


# ---- sessions, window, response cache (§4) -----------------------------------------------
MAX_WINDOW = 16
#: The FPGA caches the answers to at least max(MIN_CACHE_ENTRIES, 2 window) requests.
MIN_CACHE_ENTRIES = 16

# ---- limits (§5) -------------------------------------------------------------------------
MIN_MAX_PAYLOAD = 256
MAX_SIDE = 8192  # rows and cols a HELLO may announce
MAX_WEIGHT_BITS = 16
CODE_BITS_RANGE = (2, 24)  # input_bits and output_bits
HELLO_TEMPERATURE_RANGE_C = (-50.0, 150.0)  # temperature_min_c and _max_c lie within
MAX_OP_S = 10.0
MAX_S_PER_UNIT = 1e-3  # commit_s_per_cell, run_s_per_mac
MAX_BUFFER_BYTES = 1 << 30
MAX_ERROR_MESSAGE = 200
RUN_MAX_COUNT = 0xFFFF  # a RUN's u16 count
#: ``heater_range_pi`` (v1.2 HELLO): 0 (unknown) or in (0, HEATER_RANGE_MAX_PI].
HEATER_RANGE_MAX_PI = 4.0
#: The heater range a host takes for a device that reports none (a v1.1 device): π, the
#: v1 mapping's (docs/physics.md §2 step 4; every PHL1 v1.1 device drives a v1 chip).
UNREPORTED_HEATER_RANGE_RAD = math.pi

# ---- payload layouts (§6) ----------------------------------------------------------------
#: HELLO reply, 120 bytes; offset 60 is ``heater_range_pi`` (f32) from v1.2, reserved 0 before.
HELLO_FORMAT = "<BBBBBBH3BxIHHIIfffffffff24s32s"
HELLO_BYTES = struct.calcsize(HELLO_FORMAT)
HELLO_HEATER_RANGE_OFFSET = 60
W_BEGIN_FORMAT = "<IHHII"  # txn, rows, cols, total_bytes, crc32_all
W_BEGIN_BYTES = struct.calcsize(W_BEGIN_FORMAT)  # 16
W_BEGIN_REPLY = 4  # txn
W_CHUNK_HEAD_FORMAT = "<II"  # txn, offset; then the codes
W_CHUNK_HEAD = struct.calcsize(W_CHUNK_HEAD_FORMAT)  # 8
W_CHUNK_REPLY = 12  # txn, offset, length
W_COMMIT_BYTES = 8  # txn, crc32_all
W_COMMIT_REPLY = 8  # weight_id, crc32_all
RUN_REQUEST_FORMAT = "<IQIHH"  # weight_id, call_index, first_vector, count, run_flags
RUN_REQUEST_HEAD = struct.calcsize(RUN_REQUEST_FORMAT)  # 20
RUN_REPLY_FORMAT = "<IHH"  # weight_id, count, clipped
RUN_REPLY_HEAD = struct.calcsize(RUN_REPLY_FORMAT)  # 8
RUN_STAGED_INPUT = 0x1  # run_flags bit0: codes come from the X_CHUNK buffer
RUN_HOLD_OUTPUT = 0x2  # bit1: keep the result for Y_READ
RUN_FLAGS = RUN_STAGED_INPUT | RUN_HOLD_OUTPUT
Y_READ_BYTES = 12  # weight_id, offset, length
TELEMETRY_FORMAT = "<ffIIIIIII"
ERROR_HEAD_FORMAT = "<BBH"  # code, detail, aux; then the message
EVENT_FORMAT = "<BBHI"  # kind, detail, reserved, value

# ---- timeouts, retries, escalation (§8-9) ------------------------------------------------
BACKOFF_CAP = 4  # attempt k waits T * min(2**k, BACKOFF_CAP)
PRE_HELLO_OP_S = 0.1  # op_s assumed before HELLO announced the device's own
FLUSH_S = 0.01
BUSY_DEFAULT_S = 0.010  # BUSY with aux = 0
BUSY_MAX_WAIT_S = 0.100  # BUSY waits clamp(aux, 1, 100) ms
