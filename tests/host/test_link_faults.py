"""The fault-injecting port (tinyhost.link.faults): what it does to bytes, seeded."""
from __future__ import annotations

import pytest

from tinyhost.link.faults import Faults, FaultyPort


class Loopback:
    """A port whose reads return what was last written (a wire with nothing on it)."""

    def __init__(self) -> None:
        self.wire = bytearray()

    def write(self, data: bytes) -> int:
        self.wire += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.wire = bytes(self.wire[:size]), self.wire[size:]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self.wire)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


DATA = bytes(range(256)) * 40


def through(spec: str, data: bytes = DATA) -> bytes:
    port = FaultyPort(Loopback(), Faults.parse(spec))
    port.write(data)
    return port.port.wire


def test_parse() -> None:
    f = Faults.parse("rate=0.03,seed=7")
    assert f.seed == 7 and f.rates == pytest.approx({"corrupt": 0.01, "drop": 0.01, "dup": 0.01})
    f = Faults.parse("corrupt=0.02, delay=0.5, delay_ms=2")
    assert f.rates == {"corrupt": 0.02, "delay": 0.5} and f.delay_ms == 2
    for bad in ("rate", "rate=x", "noise=0.1", "corrupt=1.5", "corrupt=0.6,drop=0.6"):
        with pytest.raises(ValueError, match="link faults"):
            Faults.parse(bad)


def test_no_faults_is_a_plain_wire() -> None:
    assert through("rate=0") == DATA


def test_each_kind_does_what_it_says() -> None:
    assert through("drop=1") == b""
    assert through("dup=1") == bytes(b for b in DATA for _ in range(2))
    corrupted = through("corrupt=1")
    assert len(corrupted) == len(DATA) and all(a != b for a, b in zip(corrupted, DATA, strict=True))


def test_rate_is_per_byte_and_seeded() -> None:
    a, b, c = through("rate=0.01,seed=1"), through("rate=0.01,seed=1"), through("rate=0.01,seed=2")
    assert a == b and a != c
    changed = sum(x != y for x, y in zip(a, DATA, strict=True)) if len(a) == len(DATA) else None
    # about 1% of 10,240 bytes are hit; drops and dups shift the rest, so compare lengths too
    assert a != DATA and abs(len(a) - len(DATA)) < 60 and (changed is None or changed < 300)


def test_reads_are_faulted_too() -> None:
    inner = Loopback()
    port = FaultyPort(inner, Faults.parse("drop=1"))
    inner.write(DATA)
    assert port.read(100) == b""
