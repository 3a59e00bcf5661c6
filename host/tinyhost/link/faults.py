"""A noisy wire on purpose: a port wrapper that corrupts, drops, duplicates and delays bytes in both
directions, seeded, so link robustness is tested and benchmarked against the real firmware.

Set TINYTRAIN_LINK_FAULTS (read by open_link) to use it with any command, e.g.
`TINYTRAIN_LINK_FAULTS=rate=0.01,seed=1 tinyhost train --port sim ...`: each byte, either way, is
hit with probability `rate` by one of corrupt (one to eight bits flipped), drop (the byte lost)
and dup (sent twice), evenly. Each kind can take its own rate instead, and delay (that write or
read held back `delay_ms`) only so: `corrupt=0.01,drop=0.001,delay=0.01,seed=3`.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("corrupt", "drop", "dup", "delay")
RATE_KINDS = ("corrupt", "drop", "dup")  # what `rate=P` spreads P over


@dataclass(frozen=True)
class Faults:
    rates: dict[str, float] = field(default_factory=dict)  # kind -> probability per byte
    seed: int = 0
    delay_ms: float = 5.0

    @property
    def total(self) -> float:
        return sum(self.rates.values())

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """`rate=P[,seed=N][,delay_ms=MS]` (P split evenly over corrupt, drop and dup) or per-kind
        rates `corrupt=P,drop=P,dup=P,delay=P`."""
        rates: dict[str, float] = {}
        seed, delay_ms = 0, 5.0
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            try:
                if not sep:
                    raise ValueError
                if key == "seed":
                    seed = int(value)
                elif key == "delay_ms":
                    delay_ms = float(value)
                elif key == "rate":
                    rates.update({k: float(value) / len(RATE_KINDS) for k in RATE_KINDS})
                elif key in KINDS:
                    rates[key] = float(value)
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"link faults {spec!r}: cannot read {item!r} (expected rate=P, "
                                 f"{'=P, '.join(KINDS)}=P, seed=N or delay_ms=MS)") from None
        if any(not 0.0 <= p <= 1.0 for p in rates.values()) or sum(rates.values()) > 1.0:
            raise ValueError(f"link faults {spec!r}: rates must be in [0, 1] and sum to at most 1")
        return cls(rates, seed, delay_ms)


class FaultyPort:
    """Wraps a pyserial port: what is written reaches the device through the faults, and what is
    read comes back through them (an independent random stream per direction)."""

    def __init__(self, port: Any, faults: Faults) -> None:
        self.port = port
        self.faults = faults
        self._out = random.Random(faults.seed * 2 + 1)
        self._in = random.Random(faults.seed * 2 + 2)
        self._cum = [(k, p) for k, p in faults.rates.items() if p > 0]

    def _hit(self, rng: random.Random) -> str | None:
        u = rng.random()
        for kind, p in self._cum:
            if u < p:
                return kind
            u -= p
        return None

    def _apply(self, data: bytes, rng: random.Random) -> tuple[bytes, bool]:
        out = bytearray()
        delayed = False
        for byte in data:
            kind = self._hit(rng)
            if kind == "drop":
                continue
            if kind == "corrupt":
                byte ^= rng.randrange(1, 256)
            out.append(byte)
            if kind == "dup":
                out.append(byte)
            delayed = delayed or kind == "delay"
        return bytes(out), delayed

    def write(self, data: bytes) -> int:
        out, delayed = self._apply(bytes(data), self._out)
        if delayed:
            time.sleep(self.faults.delay_ms / 1000)
        self.port.write(out)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data, delayed = self._apply(self.port.read(size), self._in)
        if delayed:
            time.sleep(self.faults.delay_ms / 1000)
        return data

    @property
    def in_waiting(self) -> int:
        return int(getattr(self.port, "in_waiting", 0))

    def flush(self) -> None:
        self.port.flush()

    def close(self) -> None:
        self.port.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)
