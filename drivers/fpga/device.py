"""FpgaDevice: a PhotonicDevice behind an FPGA speaking PHL1 (docs/protocol.md).

Schemes: ``fpga:///dev/ttyUSB0?baudrate=3000000`` (serial), ``fpga+tcp://host:port`` and
``fpga+sim://?seed=1&preset=typical`` (the firmware emulator in-process). Weights travel
as heater DAC codes and results as ADC codes, so the same physics applies as on the twin
and ``fpga+sim://`` returns exactly what ``mock://`` does for the same parameters.
A reboot of the FPGA (its "rebooted" EVENT, or a new boot_id in HELLO after a failure)
marks the weights lost: ``matmul`` then raises LinkError until ``load_weights`` succeeds.
``heater_range_rad`` is what the device's HELLO reports (PHL1 v1.2), π if it reports none.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import serial

from lumina_hal import codes as chip_codes
from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.link import SUPPORTED_FIRMWARE_MAJOR, LinkTiming, PhlLink
from lumina_hal.drivers.fpga.transport import SerialPort, SocketPort
from lumina_hal.errors import ConfigurationError, DeviceError, LinkError, SafetyLimitError
from lumina_hal.params import Param
from lumina_hal.phl1_constants import UNREPORTED_HEATER_RANGE_RAD
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)
_RUN = msg.Opcode.RUN
_RUN_HEAD = msg.RunRequest.HEAD
_RUN_REPLY_HEAD = msg.RunResponse.HEAD

__all__ = ["SUPPORTED_FIRMWARE_MAJOR", "FpgaDevice", "FpgaSerialDevice", "FpgaTcpDevice"]
LINK_PARAMS: tuple[Param, ...] = (
    Param(
        "timeout",
        float,
        0.05,
        "minimum time to wait for a response",
        unit="s",
        minimum=0.001,
        maximum=60.0,
    ),
    Param("retries", int, 4, "retransmissions before a resync", minimum=0, maximum=20),
)
SERIAL_PARAMS = (
    Param("baudrate", int, 3_000_000, "UART baud rate", unit="Bd", minimum=300, maximum=20_000_000),
)


class FpgaDevice(PhotonicDevice):
    """The FPGA backend; subclasses differ only in how they open the port."""

    summary = "photonic chip behind an FPGA (PHL1 over a serial port)"

    def __init__(self, port_factory: Any, timing: LinkTiming, description: str) -> None:
        super().__init__()
        self._port_factory = port_factory
        self._timing = timing
        self._description = description
        self._link: PhlLink | None = None
        self._hello: msg.Hello | None = None
        self._info_cache: tuple[msg.Hello, DeviceInfo] | None = None
        self._weight_id = 0
        self._scale = 1.0
        self._call_index = 0
        self._lost = ""
        self._reboots = 0  # reboots seen; a change during a request means it hit the reboot
        self._txn = 0
        self._plan_cache: tuple[msg.Hello, tuple[int, int], RunPlan, np.float32] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._description})"

    # ---- lifecycle -------------------------------------------------------------------
    def _open(self) -> None:
        try:
            port = self._port_factory()
        except (OSError, serial.SerialException) as exc:
            raise LinkError(f"cannot open {self._description}: {exc}") from exc
        self._hello = None
        self._link = PhlLink(port, self._timing, on_event=self._on_event, on_hello=self._on_hello)
        try:
            hello = self._link.open_session()
        except BaseException:
            self._link.close()
            self._link = None
            raise
        log.info(
            "connected to %s: %s %s, %dx%d, firmware %s",
            self._description,
            hello.model,
            hello.serial,
            hello.rows,
            hello.cols,
            ".".join(map(str, hello.firmware)),
        )
        self._weight_id, self._call_index, self._lost = 0, 0, ""

    def _on_hello(self, hello: msg.Hello) -> None:
        """Every HELLO the link completes: a new boot id means the weights are gone; the
        heater range is the one the device reports (v1.2), else π (docs/protocol.md §11)."""
        known = self._hello
        self._hello = hello
        reported = hello.heater_range_rad
        if reported is None and known is None:
            log.info("%s reports no heater range (PHL1 v1.1): taking π", self._description)
        self.heater_range_rad = UNREPORTED_HEATER_RANGE_RAD if reported is None else reported
        if known is not None and hello.boot_id != known.boot_id:
            self._weights_lost(hello.boot_id)

    def _close(self) -> None:
        if self._link is None:
            return
        try:
            self._link.request(msg.Opcode.SAFE_STATE)
        except (LinkError, DeviceError) as exc:
            log.warning("could not put %s in its safe state: %s", self._description, exc)
        finally:
            self._link.close()
            self._link = None

    # ---- contract ----------------------------------------------------------------------
    def _info(self) -> DeviceInfo:
        """Built once per HELLO (every field comes from it): ``call_index`` and
        ``seek_call_index`` ask for the capabilities on every call."""
        h = self._require_hello()
        cached = self._info_cache
        if cached is not None and cached[0] is h:
            return cached[1]
        info = DeviceInfo(
            vendor="Lumina",
            model=h.model,
            serial=h.serial,
            firmware=".".join(map(str, h.firmware)),
            rows=h.rows,
            cols=h.cols,
            weight_bits=h.weight_bits,
            input_bits=h.input_bits,
            output_bits=h.output_bits,
            capabilities=self._capabilities(),
        )
        self._info_cache = (h, info)
        return info

    def _capabilities(self) -> frozenset[str]:
        return frozenset(
            {
                Capability.SET_TEMPERATURE.value,
                Capability.HARDWARE.value,
                Capability.OPTICAL_POWER.value,
                Capability.HEATER_CODES.value,  # W_CHUNK carries heater codes as they are
                Capability.CALIBRATE.value,
                Capability.NOISE_POSITION.value,  # the host names every RUN's call index
            }
        )

    def _snapshot(self) -> dict[str, Any]:
        """What the FPGA reported in HELLO (calibration constants, limits, boot id) and the
        host's next call index: the chip side of a record of real hardware."""
        hello = dataclasses.asdict(self._require_hello())
        hello["firmware"] = list(hello["firmware"])
        return {"hello": hello, "call_index": self._call_index}

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        """(k_row, k_col) dB per pitch that programming compensates, as HELLO reported them."""
        h = self._require_hello()
        return h.loss_row_db, h.loss_col_db

    def _require_hello(self) -> msg.Hello:
        if self._hello is None:
            raise LinkError(f"{self._description} is not connected")
        return self._hello

    def _load_weights(self, weights: np.ndarray) -> str:
        h = self._require_hello()
        codes, scale = chip_codes.heater_codes(
            weights, h.weight_bits, (h.loss_row_db, h.loss_col_db)
        )
        self._weight_id = self._upload(codes)
        self._scale, self._lost = scale, ""
        self._install_fast_matmul(codes.shape)
        return weights_checksum(codes)

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        """The weight transaction with the caller's codes (docs/protocol.md W_CHUNK)."""
        self._weight_id = self._upload(codes)
        self._scale, self._lost = weight_scale, ""
        self._install_fast_matmul(codes.shape)
        return weights_checksum(codes)

    def _upload(self, codes: np.ndarray) -> int:
        """Two-phase upload: W_BEGIN, pipelined W_CHUNKs, W_COMMIT against the whole CRC."""
        link, h = self._require_link(), self._require_hello()
        data = memoryview(np.ascontiguousarray(codes, dtype="<i4").tobytes())
        crc = zlib.crc32(data)
        self._txn = self._txn % 0xFFFFFFFF + 1
        txn = self._txn
        rows, cols = codes.shape
        begin = msg.WBegin(txn, rows, cols, len(data), crc).pack()
        chunks = _Chunks(txn.to_bytes(4, "little"), data, h.max_payload - msg.WChunk.HEAD.size)
        reboots = self._reboots

        def check(index: int, reply: bytes) -> None:
            expected = msg.WChunk.HEAD.pack(txn, chunks.offset(index)) + struct.pack(
                "<I", chunks.length(index)
            )
            _expect(reply == expected, "W_CHUNK", "an echo of txn, offset and length")

        try:
            _expect(link.request(msg.Opcode.W_BEGIN, begin) == begin[:4], "W_BEGIN", "txn echo")
            link.request_window(msg.Opcode.W_CHUNK, chunks, h.window, check=check)
            reply = link.request(
                msg.Opcode.W_COMMIT,
                struct.pack("<II", txn, crc),
                work_s=rows * cols * h.commit_s_per_cell,
            )
        except (LinkError, DeviceError) as exc:
            self._abort_quietly()
            self._raise_if_rebooted(reboots, exc)  # a reboot mid-upload raises LinkError
            raise
        # A commit that succeeded ran on the boot that is current now: an EVENT read during
        # this upload came before W_BEGIN ran (docs/protocol.md §6), so the weights are valid.
        _expect(len(reply) == 8, "W_COMMIT", "an 8-byte payload")
        weight_id, echoed = struct.unpack("<II", reply)
        _expect(echoed == crc and weight_id != 0, "W_COMMIT", "the CRC echo and weight_id != 0")
        return int(weight_id)

    def _abort_quietly(self) -> None:
        if self._link is None or self._link.closed:
            return
        try:
            self._link.request(msg.Opcode.W_ABORT, self._txn.to_bytes(4, "little"))
        except (LinkError, DeviceError) as exc:
            log.debug("W_ABORT after a failed upload: %s", exc)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        if self._lost:
            raise LinkError(self._lost)
        h = self._require_hello()
        rows, cols = self.weights_shape or (0, 0)
        codes_f, s_x = chip_codes.input_codes(x, h.input_bits)
        codes = codes_f.astype(np.int32)
        plan, from_code = self._plan(h, rows, cols)
        call_index = self._call_index
        for first in range(0, codes.shape[0], plan.per_run):
            part = codes[first : first + plan.per_run]
            y_codes = self._run(plan, part, call_index, first, rows)
            chip_codes.output_values(
                y_codes,
                from_code,
                s_x[first : first + plan.per_run],
                self._scale,
                out[first : first + plan.per_run],
            )
        self._call_index = call_index + 1

    def _plan(self, h: msg.Hello, rows: int, cols: int) -> tuple[RunPlan, np.float32]:
        """The RUN plan and the ADC code's value for this shape, kept while HELLO and the
        shape stay (they cost more than a small RUN's framing to recompute)."""
        cached = self._plan_cache
        if cached is not None and cached[0] is h and cached[1] == (rows, cols):
            return cached[2], cached[3]
        plan = RunPlan.for_shape(h, rows, cols)
        full_scale = np.float32(h.adc_full_scale * np.sqrt(cols))  # as the FPGA holds it
        from_code = full_scale / np.float32(chip_codes.levels(h.output_bits))
        self._plan_cache = (h, (rows, cols), plan, from_code)
        return plan, from_code

    def _install_fast_matmul(self, shape: tuple[int, int]) -> None:
        """Bind PhotonicDevice's fast path for this shape (drivers/fpga/fast_run.py): one
        inline RUN per call; None when RUNs of this shape are staged or held."""
        from lumina_hal.drivers.fpga.fast_run import fast_matmul

        h = self._require_hello()
        rows, cols = int(shape[0]), int(shape[1])
        plan, from_code = self._plan(h, rows, cols)
        inline = not (plan.staged_input or plan.held_output)
        self._fast_matmul = fast_matmul(self, h, rows, cols, plan, from_code) if inline else None

    def _run(
        self, plan: RunPlan, part: np.ndarray, call_index: int, first: int, rows: int
    ) -> np.ndarray:
        """One RUN of ``part`` (inline or staged input, inline or held output, §6)."""
        link, h = self._require_link(), self._require_hello()
        reboots = self._reboots
        try:
            if plan.staged_input or plan.held_output:
                y = self._run_staged(link, h, plan, part, call_index, first, rows)
            else:
                y = self._run_inline(link, h.run_s_per_mac, part, call_index, first, rows)
        except DeviceError as exc:
            if exc.code == msg.ErrorCode.WEIGHT_ID_MISMATCH:
                self._raise_if_rebooted(reboots, exc)
            raise
        except LinkError as exc:
            if not link.closed:
                self._raise_if_rebooted(reboots, exc)
            raise
        if self._reboots != reboots:  # cannot happen in order (§6); never trust it if it does
            raise LinkError(self._lost)
        levels = chip_codes.levels(h.output_bits)
        if y.size <= 256:  # a small RUN: Python ints cost less than two numpy reductions
            values = y.ravel().tolist()
            low, high = min(values), max(values)
        else:
            low, high = int(y.min()), int(y.max())
        _expect(-levels <= low and high <= levels, "RUN", "codes within ±L_y")
        return y

    def _run_inline(
        self, link: PhlLink, mac_s: float, part: np.ndarray, call_index: int, first: int, rows: int
    ) -> np.ndarray:
        """The RUN request with its codes and the reply with its codes (``mac_s``: HELLO's
        run_s_per_mac): the common case."""
        count, cols = part.shape
        payload = _RUN_HEAD.pack(self._weight_id, call_index, first, count, 0) + (
            np.ascontiguousarray(part, dtype="<i4").tobytes()
        )
        reply = link.request(
            _RUN,
            payload,
            response_bytes=16 + 4 * count * rows,
            work_s=count * rows * cols * mac_s,
        )
        head = _RUN_REPLY_HEAD.size
        if len(reply) != head + 4 * count * rows:
            raise msg.MalformedPayload(
                f"RUN response has {len(reply) - head} bytes for {count}x{rows}"
                if len(reply) >= head
                else "RUN response shorter than its 8-byte header"
            )
        weight_id, echoed, clipped = _RUN_REPLY_HEAD.unpack_from(reply)
        _expect(weight_id == self._weight_id, "RUN", "the weight_id echo")
        _expect(echoed == count, "RUN", f"count {count}")
        _expect(clipped <= min(count * rows, 0xFFFF), "RUN", "clipped <= count rows")
        return np.frombuffer(reply, dtype="<i4", offset=head).reshape(count, rows)

    def _run_staged(
        self,
        link: PhlLink,
        h: msg.Hello,
        plan: RunPlan,
        part: np.ndarray,
        call_index: int,
        first: int,
        rows: int,
    ) -> np.ndarray:
        """A RUN with staged input (X_CHUNKs first) or held output (Y_READs after)."""
        count, cols = part.shape
        flags = plan.flags
        if plan.staged_input:
            data = memoryview(np.ascontiguousarray(part, dtype="<i4").tobytes())
            chunks = _Chunks(b"", data, h.max_payload - 4)

            def check_x(index: int, reply: bytes) -> None:
                want = struct.pack("<II", chunks.offset(index), chunks.length(index))
                _expect(reply == want, "X_CHUNK", "an echo of offset and length")

            link.request_window(msg.Opcode.X_CHUNK, chunks, h.window, check=check_x)
            request = msg.RunRequest(self._weight_id, call_index, first, None, flags, count)
        else:
            request = msg.RunRequest(self._weight_id, call_index, first, part, flags)
        payload = link.request(
            msg.Opcode.RUN,
            request.pack(),
            response_bytes=16 + (0 if plan.held_output else 4 * count * rows),
            work_s=count * rows * cols * h.run_s_per_mac,
        )
        reply = msg.RunResponse.unpack(payload, rows, held=plan.held_output)
        _expect(reply.weight_id == self._weight_id, "RUN", "the weight_id echo")
        _expect(reply.codes.shape[0] == count, "RUN", f"count {count}")
        _expect(reply.clipped <= min(count * rows, 0xFFFF), "RUN", "clipped <= count rows")
        y = reply.codes if not plan.held_output else self._read_held(count * rows * 4)
        return y.reshape(count, rows)

    def _read_held(self, nbytes: int) -> np.ndarray:
        """Y_READ the held output of the last RUN, pipelined (§6)."""
        link, h = self._require_link(), self._require_hello()
        step = (h.max_payload - 4) // 4 * 4
        requests = [
            struct.pack("<III", self._weight_id, offset, min(step, nbytes - offset))
            for offset in range(0, nbytes, step)
        ]

        def check(index: int, reply: bytes) -> None:
            offset, length = struct.unpack_from("<II", requests[index], 4)
            _expect(len(reply) == 4 + length, "Y_READ", f"{4 + length} bytes")
            _expect(reply[:4] == offset.to_bytes(4, "little"), "Y_READ", "the offset echo")

        parts = link.request_window(
            msg.Opcode.Y_READ, requests, h.window, response_bytes=step + 16, check=check
        )
        return np.frombuffer(b"".join(p[4:] for p in parts), dtype="<i4")

    def _raise_if_rebooted(self, reboots_before: int, cause: Exception) -> None:
        """After a failed request: LinkError naming the reboot if the FPGA rebooted since
        ``reboots_before`` (seen as an EVENT, else found by HELLO); otherwise return."""
        if self._reboots == reboots_before:
            self._check_reboot()
        if self._reboots != reboots_before:
            raise LinkError(self._lost) from cause

    def _check_reboot(self) -> None:
        """Re-HELLO for the boot id: a reboot whose EVENT was lost is found here
        (``_on_hello`` marks the weights lost)."""
        link = self._link
        if link is None or link.closed:
            return
        try:
            link.restart_session()
        except (LinkError, DeviceError) as exc:
            log.debug("re-HELLO after a failed request: %s", exc)

    def _on_event(self, event: msg.Event) -> None:
        """The link read an EVENT (already logged): a reboot to a new boot id loses weights."""
        if event.kind != msg.EventKind.REBOOTED or self._hello is None:
            return  # no weights can be loaded before the handshake has finished
        if event.value == self._hello.boot_id:
            return  # a repeat of a reboot already handled
        self._hello = dataclasses.replace(self._hello, boot_id=event.value)
        self._weights_lost(event.value)

    def _weights_lost(self, boot_id: int) -> None:
        self._weight_id = 0
        self._reboots += 1
        self._lost = (
            f"{self._description} rebooted (boot id {boot_id:08x}): its "
            "weights are lost; call load_weights again"
        )
        log.warning(self._lost)

    def _telemetry(self) -> Telemetry:
        raw = self._require_link().request(msg.Opcode.TELEMETRY)
        t = msg.Telemetry.unpack(raw)
        _expect(np.isfinite(t.temperature_c), "TELEMETRY", "a finite temperature")
        return Telemetry(
            temperature_c=t.temperature_c,
            optical_power_dbm=t.optical_power_dbm,
            weights_id=self.weights_id,
            counters={
                "runs": t.runs,
                "vectors": t.vectors,
                "clipped_outputs": t.clipped,
                "crc_errors": t.crc_errors,
                "frames_dropped": t.frames_dropped,
                "call_index": self._call_index,
                "retransmissions": self._require_link().retransmissions,
            },
        )

    def _set_temperature(self, temperature_c: float) -> None:
        h = self._require_hello()
        if not h.temperature_min_c <= temperature_c <= h.temperature_max_c:
            raise SafetyLimitError(
                f"temperature_c {temperature_c:g} °C is outside the device's limits "
                f"[{h.temperature_min_c:g}, {h.temperature_max_c:g}] °C; nothing was sent"
            )
        sent = struct.pack("<f", temperature_c)
        reply = self._require_link().request(msg.Opcode.SET_TEMPERATURE, sent)
        _expect(reply == sent, "SET_TEMPERATURE", "the setpoint echo")

    def _read_call_index(self) -> int:
        return self._call_index

    def _seek_call_index(self, call_index: int) -> None:
        self._call_index = call_index

    def _reset(self) -> None:
        self._require_link().request(msg.Opcode.RESET)
        self._weight_id, self._call_index, self._lost = 0, 0, ""

    def _require_link(self) -> PhlLink:
        if self._link is None:
            raise LinkError(f"{self._description} is not connected")
        return self._link


def _expect(ok: bool, opcode: str, what: str) -> None:
    """A reply check of docs/protocol.md §10: LinkError naming the opcode and the field."""
    if not ok:
        raise LinkError(f"protocol violation: the {opcode} reply lacks {what}")


class _Chunks(Sequence[bytes]):
    """Lazy ``prefix + u32 offset + data[offset : offset + step]`` payloads (W_CHUNK, X_CHUNK)."""

    def __init__(self, prefix: bytes, data: memoryview, room: int) -> None:
        self._prefix, self._data = prefix, data
        self._step = max(4, room // 4 * 4)
        self._count = -(-len(data) // self._step)

    def __len__(self) -> int:
        return self._count

    def offset(self, index: int) -> int:
        return index * self._step

    def length(self, index: int) -> int:
        return min(self._step, len(self._data) - index * self._step)

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, int) or not 0 <= index < self._count:
            raise IndexError(index)
        offset = index * self._step
        return b"".join(
            (self._prefix, offset.to_bytes(4, "little"), self._data[offset : offset + self._step])
        )


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """How RUNs of a ``rows x cols`` matrix travel (§6): inline or staged, and how many vectors."""

    staged_input: bool
    held_output: bool
    per_run: int

    @property
    def flags(self) -> int:
        return (msg.RUN_STAGED_INPUT if self.staged_input else 0) | (
            msg.RUN_HOLD_OUTPUT if self.held_output else 0
        )

    @classmethod
    def for_shape(cls, h: msg.Hello, rows: int, cols: int) -> RunPlan:
        head_in, head_out = msg.RunRequest.HEAD.size, msg.RunResponse.HEAD.size
        staged = head_in + 4 * cols > h.max_payload
        held = head_out + 4 * rows > h.max_payload
        room_in = h.input_buffer_bytes if staged else h.max_payload - head_in
        room_out = h.output_buffer_bytes if held else h.max_payload - head_out
        per_run = min(room_in // (4 * cols), room_out // (4 * rows), 0xFFFF)
        return cls(staged, held, max(1, per_run))


class FpgaSerialDevice(FpgaDevice):
    """``fpga:///dev/ttyUSB0?baudrate=3000000&timeout=0.05&retries=4``."""

    uri_params = SERIAL_PARAMS + LINK_PARAMS
    summary = "photonic chip behind an FPGA on a serial port (PHL1)"

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> FpgaDevice:
        if not uri.path or uri.host:
            raise ConfigurationError(
                f"fpga:// needs a device path, e.g. fpga:///dev/ttyUSB0, got {uri.uri!r}"
            )
        baud = params.get("baudrate", 3_000_000)
        timing = LinkTiming(baud, 0.02, params.get("timeout", 0.05), params.get("retries", 4))

        def factory() -> Any:
            return SerialPort(uri.path, baudrate=baud, timeout=0.05)

        return cls(factory, timing, uri.path)


class FpgaTcpDevice(FpgaDevice):
    """``fpga+tcp://host:port``: PHL1 over TCP, one write per frame, TCP_NODELAY."""

    uri_params = LINK_PARAMS
    summary = "photonic chip behind an FPGA reached over TCP (PHL1)"

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> FpgaDevice:
        if not uri.host or uri.port is None or uri.path not in ("", "/"):
            raise ConfigurationError(f"fpga+tcp:// needs host:port, got {uri.uri!r}")
        timing = LinkTiming(None, 0.005, params.get("timeout", 0.05), params.get("retries", 4))

        host, port = uri.host, uri.port

        def factory() -> Any:
            return SocketPort(host, port)

        return cls(factory, timing, f"{uri.host}:{uri.port}")
