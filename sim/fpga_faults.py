"""Fault injection for the FPGA emulator's links: what a marginal cable or a flaky board does.

Each fault has a probability per frame (``fault_<name>`` URI parameters) and all draw from
one generator seeded by ``fault_seed``, so a failing soak run can be replayed exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from lumina_hal.params import Param

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


class FaultInjector:
    """Applies FaultRates to frames crossing the link, in either direction."""

    def __init__(self, rates: FaultRates, delay_s: float = 0.02, seed: int = 0) -> None:
        self.rates = rates
        self.delay_s = delay_s
        self._rng = np.random.default_rng(seed)
        self.hung = False
        self.counts = {f.name: 0 for f in fields(FaultRates)}

    @classmethod
    def from_params(cls, params: dict[str, float]) -> FaultInjector:
        rates = FaultRates(
            **{f.name: float(params.get(f"fault_{f.name}", 0.0)) for f in fields(FaultRates)}
        )
        return cls(
            rates, float(params.get("fault_delay_s", 0.02)), int(params.get("fault_seed", 0))
        )

    @property
    def active(self) -> bool:
        return any(getattr(self.rates, f.name) > 0 for f in fields(FaultRates))

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
