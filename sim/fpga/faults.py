"""Fault injection for the FPGA emulator's links: what a marginal cable or a flaky board does.

Each fault has a probability per frame (``fault_<name>`` URI parameters) and all draw from
one generator seeded by ``fault_seed``, so a failing soak run can be replayed exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from lumina_hal.drivers.fpga.framing import FrameDecoder
from lumina_hal.drivers.fpga.messages import Opcode
from lumina_hal.params import Param, resolve_params

_DOCS = {
    "corrupt": "flip one random bit of a frame",
    "drop": "lose a whole frame",
    "duplicate": "deliver a reply twice",
    "delay": "hold a reply back for fault_delay_s",
    "truncate": "cut a frame short",
    "garbage": "add random bytes before a frame",
    "reboot": "reboot the FPGA when a weight chunk arrives (mid-upload)",
    "hang": "stop answering until the link is reopened",
}


@dataclass(frozen=True)
class FaultRates:
    corrupt: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    truncate: float = 0.0
    garbage: float = 0.0
    reboot: float = 0.0
    hang: float = 0.0


_RATE_PARAMS = tuple(
    Param(
        f"fault_{f.name}",
        float,
        0.0,
        f"probability per frame: {_DOCS[f.name]}",
        minimum=0.0,
        maximum=1.0,
    )
    for f in fields(FaultRates)
)
FAULT_PARAMS: tuple[Param, ...] = (
    *_RATE_PARAMS,
    Param(
        "fault_delay_s",
        float,
        0.02,
        "how long a delayed reply is held",
        unit="s",
        minimum=0.0,
        maximum=10.0,
    ),
    Param("fault_seed", int, 0, "seed of the fault generator", minimum=0, maximum=2**63 - 1),
)


@dataclass(frozen=True)
class FaultConfig:
    """Typed fault settings: per-frame rates, the delay of a held reply (s), the seed.

    The seed is a Python int end to end, so every one of its 63 bits reaches the generator.
    """

    rates: FaultRates = FaultRates()
    delay_s: float = 0.02
    seed: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FaultConfig:
        """From ``fault_*`` parameters (strings or typed values; others are ignored)."""
        names = {p.name for p in FAULT_PARAMS}
        typed = resolve_params(
            FAULT_PARAMS, {k: v for k, v in params.items() if k in names}, context="faults"
        )
        rates = FaultRates(
            **{f.name: typed.get(f"fault_{f.name}", 0.0) for f in fields(FaultRates)}
        )
        return cls(rates, typed.get("fault_delay_s", 0.02), typed.get("fault_seed", 0))


def _any_rate(rates: FaultRates) -> bool:
    return any(getattr(rates, f.name) > 0 for f in fields(FaultRates))


class FaultInjector:
    """Applies FaultRates to frames crossing the link, in either direction."""

    def __init__(self, rates: FaultRates, delay_s: float = 0.02, seed: int = 0) -> None:
        self._rates = rates
        self._any_rate = _any_rate(rates)
        self.delay_s = delay_s
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.hung = False
        self.counts = {f.name: 0 for f in fields(FaultRates)}

    @classmethod
    def from_config(cls, config: FaultConfig) -> FaultInjector:
        return cls(config.rates, config.delay_s, config.seed)

    @property
    def rates(self) -> FaultRates:
        return self._rates

    @rates.setter
    def rates(self, rates: FaultRates) -> None:
        self._rates, self._any_rate = rates, _any_rate(rates)

    @property
    def active(self) -> bool:
        """Whether any fault can happen (checked per received chunk: kept cheap)."""
        return self.hung or self._any_rate

    def _hit(self, name: str) -> bool:
        rate = getattr(self.rates, name)
        if rate > 0 and self._rng.random() < rate:
            self.counts[name] += 1
            return True
        return False

    def should_reboot(self) -> bool:
        return self._hit("reboot")

    def damage(self, frame: bytes, *, reply: bool) -> bytes:
        """The bytes that actually arrive for one frame ('' if lost)."""
        if self.hung or self._hit("hang"):
            self.hung = True
            return b""
        if self._hit("drop"):
            return b""
        data = bytearray(frame)
        if self._hit("corrupt") and data:
            pos = int(self._rng.integers(len(data)))
            data[pos] ^= 1 << int(self._rng.integers(8))
        if self._hit("truncate") and len(data) > 1:
            data = data[: int(self._rng.integers(1, len(data)))]
        if self._hit("garbage"):
            data = (
                bytearray(
                    self._rng.integers(
                        0, 256, int(self._rng.integers(1, 64)), dtype=np.uint8
                    ).tobytes()
                )
                + data
            )
        if reply and self._hit("delay"):
            time.sleep(self.delay_s)
        if reply and self._hit("duplicate"):
            data = data + bytes(data)
        return bytes(data)


class FaultyEndpoint:
    """The emulator as every transport sees it: request bytes in, reply bytes out, with
    the injector's faults applied on the way (one place for all three transports)."""

    def __init__(self, emulator: Any, faults: FaultInjector) -> None:
        self.emulator = emulator
        self.faults = faults
        self._peek = FrameDecoder()  # sees requests as the FPGA will, for reboot faults
        self._lock = threading.Lock()

    def handle(self, data: bytes) -> bytes:
        with self._lock:
            if not self.faults.active:
                return self.emulator.receive(data)
            arriving = self.faults.damage(data, reply=False)
            if self.faults.rates.reboot:
                chunks = [f for f in self._peek.feed(arriving) if f.opcode == Opcode.W_CHUNK]
                if chunks and self.faults.should_reboot():
                    self.emulator.reboot()  # the chunk arrives at a freshly booted FPGA
            reply = self.emulator.receive(arriving)
            return self.faults.damage(reply, reply=True) if reply else reply


def build_endpoint(config: Any) -> FaultyEndpoint:
    """An emulator and its faults from an EmulatorConfig (or mock://-style and ``fault_*``
    parameters, typed or strings, which become one)."""
    from lumina_hal.sim.fpga.config import EmulatorConfig
    from lumina_hal.sim.fpga.firmware import FirmwareEmulator

    if not isinstance(config, EmulatorConfig):
        config = EmulatorConfig.from_params(config)
    return FaultyEndpoint(FirmwareEmulator(config), FaultInjector.from_config(config.faults))
