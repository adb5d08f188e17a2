"""FpgaDevice: a PhotonicDevice behind an FPGA speaking PHL1 (docs/protocol.md).

Schemes: ``fpga:///dev/ttyUSB0?baudrate=3000000`` (serial), ``fpga+tcp://host:port`` and
``fpga+sim://?seed=1&preset=typical`` (the firmware emulator in-process). Weights travel
as heater DAC codes and results as ADC codes, so the same physics applies as on the twin
and ``fpga+sim://`` returns exactly what ``mock://`` does for the same parameters.
A reboot of the FPGA (its "rebooted" EVENT, or a new boot_id in HELLO after a failure)
marks the weights lost: ``matmul`` then raises LinkError until ``load_weights`` succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import zlib
from typing import Any

import numpy as np
import serial

from lumina_hal import codes as chip_codes
from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.link import LinkTiming, PhlLink
from lumina_hal.drivers.fpga.transport import SocketPort
from lumina_hal.errors import ConfigurationError, DeviceError, LinkError, SafetyLimitError
from lumina_hal.params import Param
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)

SUPPORTED_FIRMWARE_MAJOR = 1
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
        self._weight_id = 0
        self._scale = 1.0
        self._call_index = 0
        self._lost = ""
        self._reboots = 0  # reboots seen; a change during a request means it hit the reboot
        self._txn = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._description})"

    # ---- lifecycle -------------------------------------------------------------------
    def _open(self) -> None:
        try:
            port = self._port_factory()
        except (OSError, serial.SerialException) as exc:
            raise LinkError(f"cannot open {self._description}: {exc}") from exc
        self._link = PhlLink(port, self._timing, on_event=self._on_event)
        try:
            self._hello = self._handshake()
        except BaseException:
            self._link.close()
            self._link = None
            raise
        self._weight_id, self._call_index, self._lost = 0, 0, ""

    def _handshake(self) -> msg.Hello:
        assert self._link is not None
        hello = msg.Hello.unpack(self._link.request(msg.Opcode.HELLO, response_bytes=120))
        if hello.proto_version != 1 or hello.firmware[0] != SUPPORTED_FIRMWARE_MAJOR:
            raise ConfigurationError(
                f"incompatible firmware {'.'.join(map(str, hello.firmware))} (protocol "
                f"{hello.proto_version}) on {self._description}; this driver speaks PHL1 "
                f"with firmware {SUPPORTED_FIRMWARE_MAJOR}.x"
            )
        log.info(
            "connected to %s: %s %s, %dx%d, firmware %s",
            self._description,
            hello.model,
            hello.serial,
            hello.rows,
            hello.cols,
            ".".join(map(str, hello.firmware)),
        )
        return hello

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
        h = self._require_hello()
        return DeviceInfo(
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

    def _capabilities(self) -> frozenset[str]:
        return frozenset(
            {
                Capability.SET_TEMPERATURE.value,
                Capability.HARDWARE.value,
                Capability.OPTICAL_POWER.value,
            }
        )

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        """(k_row, k_col) dB per pitch that programming compensates, as HELLO reported them."""
        h = self._require_hello()
        return h.loss_row_db, h.loss_col_db

    def _require_hello(self) -> msg.Hello:
        assert self._hello is not None
        return self._hello

    def _load_weights(self, weights: np.ndarray) -> str:
        h = self._require_hello()
        codes, scale = chip_codes.heater_codes(
            weights, h.weight_bits, (h.loss_row_db, h.loss_col_db)
        )
        self._weight_id = self._upload(codes)
        self._scale, self._lost = scale, ""
        return weights_checksum(codes)

    def _upload(self, codes: np.ndarray) -> int:
        """Two-phase upload: W_BEGIN, W_CHUNKs, W_COMMIT against the whole-matrix CRC."""
        link, h = self._require_link(), self._require_hello()
        data = np.ascontiguousarray(codes, dtype="<i4").tobytes()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        self._txn = self._txn % 0xFFFFFFFF + 1
        rows, cols = codes.shape
        begin = msg.WBegin(self._txn, rows, cols, len(data), crc).pack()
        step = (h.max_payload - msg.WChunk.HEAD.size) // 4 * 4
        reboots = self._reboots
        try:
            link.request(msg.Opcode.W_BEGIN, begin)
            for offset in range(0, len(data), step):
                chunk = msg.WChunk(self._txn, offset, data[offset : offset + step]).pack()
                link.request(msg.Opcode.W_CHUNK, chunk, response_bytes=24)
            reply = link.request(msg.Opcode.W_COMMIT, struct.pack("<II", self._txn, crc))
        except (LinkError, DeviceError) as exc:
            self._abort_quietly()
            self._raise_if_rebooted(reboots, exc)  # a reboot mid-upload raises LinkError
            raise
        # A commit that succeeded ran on the boot that is current now: an EVENT read during
        # this upload came before W_BEGIN ran (docs/protocol.md §5), so the weights are valid.
        weight_id, echoed = struct.unpack("<II", reply)
        if echoed != crc:
            raise DeviceError(f"W_COMMIT echoed CRC {echoed:08x}, sent {crc:08x}")
        return weight_id

    def _abort_quietly(self) -> None:
        try:
            self._require_link().request(msg.Opcode.W_ABORT, self._txn.to_bytes(4, "little"))
        except (LinkError, DeviceError) as exc:
            log.debug("W_ABORT after a failed upload: %s", exc)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        if self._lost:
            raise LinkError(self._lost)
        h = self._require_hello()
        rows, cols = self.weights_shape or (0, 0)
        codes_f, s_x = chip_codes.input_codes(x, h.input_bits)
        codes = codes_f.astype(np.int32)
        per_frame = max(
            1,
            min(
                (h.max_payload - msg.RunRequest.HEAD.size) // (4 * cols),
                (h.max_payload - msg.RunResponse.HEAD.size) // (4 * rows),
            ),
        )
        call_index = self._call_index
        full_scale = np.float32(h.adc_full_scale * np.sqrt(cols))  # as the FPGA holds it
        from_code = full_scale / np.float32(chip_codes.levels(h.output_bits))
        for first in range(0, codes.shape[0], per_frame):
            part = codes[first : first + per_frame]
            request = msg.RunRequest(self._weight_id, call_index, first, part).pack()
            reply = self._run(request, rows, len(part) * rows * 4 + 16, part.size * rows)
            y = (reply.codes.astype(np.float32) * from_code) * s_x[first : first + per_frame, None]
            out[first : first + per_frame] = y * np.float32(self._scale)
        self._call_index = call_index + 1

    def _run(self, request: bytes, rows: int, response_bytes: int, macs: int) -> msg.RunResponse:
        link = self._require_link()
        reboots = self._reboots
        try:
            payload = link.request(
                msg.Opcode.RUN, request, response_bytes=response_bytes, op_s=max(0.005, macs * 1e-6)
            )
        except DeviceError as exc:
            if exc.code == msg.ErrorCode.WEIGHT_ID_MISMATCH:
                self._raise_if_rebooted(reboots, exc)
            raise
        except LinkError as exc:
            self._raise_if_rebooted(reboots, exc)
            raise
        if self._reboots != reboots:  # cannot happen in order (§5); never trust it if it does
            raise LinkError(self._lost)
        return msg.RunResponse.unpack(payload, rows)

    def _raise_if_rebooted(self, reboots_before: int, cause: Exception) -> None:
        """After a failed request: LinkError naming the reboot if the FPGA rebooted since
        ``reboots_before`` (seen as an EVENT, else found by HELLO); otherwise return."""
        if self._reboots == reboots_before:
            self._check_reboot()
        if self._reboots != reboots_before:
            raise LinkError(self._lost) from cause

    def _check_reboot(self) -> None:
        """Ask HELLO for the boot id: a reboot whose EVENT was lost is found here."""
        try:
            hello = msg.Hello.unpack(
                self._require_link().request(msg.Opcode.HELLO, response_bytes=120)
            )
        except (LinkError, DeviceError, msg.MalformedPayload):
            return
        if hello.boot_id != self._require_hello().boot_id:
            self._hello = hello
            self._weights_lost(hello.boot_id)

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
        self._require_link().request(msg.Opcode.SET_TEMPERATURE, struct.pack("<f", temperature_c))

    def _reset(self) -> None:
        self._require_link().request(msg.Opcode.RESET)
        self._weight_id, self._call_index, self._lost = 0, 0, ""

    def _require_link(self) -> PhlLink:
        if self._link is None:
            raise LinkError(f"{self._description} is not connected")
        return self._link


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
            return serial.Serial(uri.path, baudrate=baud, timeout=0.05)

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
