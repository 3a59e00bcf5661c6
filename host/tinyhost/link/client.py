"""The host side of the link protocol v1 (docs/protocol.md): requests, retries, device errors."""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2

from tinyhost.link.framing import FrameError, FrameReader, Msg, decode_frame, encode_frame
from tinyhost.link.transport import Link, LinkError

HELLO_TIMEOUT = 1.5   # seconds per attempt: a silent port is reported within seconds
REQUEST_TIMEOUT = 30.0
RETRIES = 3
ERR_PROTO = -10  # TT_ERR_PROTO: a malformed request


class DeviceError(RuntimeError):
    """An error the device reported: its status code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"device error {code}: {message}")
        self.code = code
        self.message = message


class DeviceTimeout(LinkError):
    pass


@dataclass
class StepReply:
    loss: float
    pred: int
    cost: int
    step: int


class DeviceClient:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.reader = FrameReader()
        self.seq = int.from_bytes(os.urandom(1), "little")  # never matches a stale cached reply
        self.resends = 0

    def close(self) -> None:
        self.link.close()

    def request(self, msg: Msg, body: Any = None, timeout: float = REQUEST_TIMEOUT,
                retries: int = RETRIES) -> tuple[int, Any]:
        """Sends one request and returns (response type, decoded payload); resends on timeout
        or NAK with the same sequence number, so the device never executes it twice."""
        self.seq = (self.seq + 1) & 0xFF
        frame = encode_frame(msg, self.seq, b"" if body is None else cbor2.dumps(body))
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
            try:
                self.link.port.write(frame)
                self.link.port.flush()
            except Exception as e:
                raise LinkError(f"cannot write to {self.link.name}: {e}") from None
            reply = self._await(self.seq, timeout)
            if reply is None or reply[0] == Msg.NAK:
                continue
            rtype, payload = reply
            if rtype == Msg.ERROR:
                code, message = payload
                raise DeviceError(code, message)
            return rtype, payload
        raise DeviceTimeout(f"no answer from {self.link.name} to {msg.name} after "
                            f"{retries + 1} attempts ({(retries + 1) * timeout:.0f} s): is the "
                            "tinytrain firmware running on that port?")

    def _await(self, seq: int, timeout: float) -> tuple[int, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # Every pyserial port class has in_waiting; SerialBase (the declared type) not.
                waiting = int(getattr(self.link.port, "in_waiting", 0))
                data = self.link.port.read(max(1, waiting))
            except Exception as e:
                raise LinkError(f"cannot read from {self.link.name}: {e}") from None
            for raw in self.reader.feed(data):
                try:
                    frame = decode_frame(raw)
                except FrameError:
                    return None  # corrupt reply: resend the request
                if frame.type == Msg.NAK:
                    return Msg.NAK, None
                if frame.seq != seq:
                    continue  # a late reply to an earlier attempt
                try:
                    payload = cbor2.loads(frame.payload) if frame.payload else None
                except Exception:
                    return None
                return frame.type, payload
        return None

    def _expect(self, got: int, want: Msg) -> None:
        if got != want:
            raise LinkError(f"unexpected reply {got:#x} from {self.link.name} (wanted {want.name})")

    # -- messages ---------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        rtype, info = self.request(Msg.HELLO, timeout=HELLO_TIMEOUT, retries=2)
        self._expect(rtype, Msg.INFO)
        if not isinstance(info, dict):
            raise LinkError(f"{self.link.name} sent INFO that is not a map: {info!r}")
        return info

    def upload_plan(self, data: bytes, chunk: int,
                    progress: Callable[[int], None] | None = None,
                    arena: int | None = None) -> None:
        """PLAN_BEGIN, the chunks, PLAN_COMMIT. With `arena` (the plan's arena_size) PLAN_BEGIN
        lets the device refuse a plan too large for its arena before any chunk is sent; a
        firmware older than that element answers ERROR (protocol) and gets the two-element form."""
        begin = [len(data), hashlib.sha256(data).digest()]
        try:
            rtype, _ = self.request(Msg.PLAN_BEGIN, begin + ([] if arena is None else [arena]))
        except DeviceError as e:
            if arena is None or e.code != ERR_PROTO or "[size, sha256]" not in e.message:
                raise
            rtype, _ = self.request(Msg.PLAN_BEGIN, begin)
        self._expect(rtype, Msg.ACK)
        for offset in range(0, len(data), chunk):
            part = data[offset:offset + chunk]
            rtype, _ = self.request(Msg.PLAN_CHUNK, [offset, part])
            self._expect(rtype, Msg.ACK)
            if progress:
                progress(len(part))
        rtype, _ = self.request(Msg.PLAN_COMMIT, [])
        self._expect(rtype, Msg.ACK)

    def write_input(self, sample: bytes, chunk: int) -> None:
        for offset in range(0, len(sample), chunk):
            rtype, _ = self.request(Msg.INPUT_CHUNK, [offset, sample[offset:offset + chunk]])
            self._expect(rtype, Msg.ACK)

    def train(self, sample: bytes, label: int, lr: float) -> StepReply:
        rtype, (loss, pred, cost, step) = self.request(Msg.TRAIN, [label, lr, sample])
        self._expect(rtype, Msg.STEP)
        return StepReply(loss, pred, cost, step)

    def evaluate(self, sample: bytes) -> int:
        rtype, (pred,) = self.request(Msg.EVAL, [sample])
        self._expect(rtype, Msg.PRED)
        return int(pred)

    def read_tensor(self, index: int, nbytes: int, chunk: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            n = min(chunk, nbytes - len(out))
            rtype, data = self.request(Msg.READ_TENSOR, [index, len(out), n])
            self._expect(rtype, Msg.TENSOR)
            out += data
        return bytes(out)

    def reset(self) -> None:
        rtype, _ = self.request(Msg.RESET, [])
        self._expect(rtype, Msg.ACK)
