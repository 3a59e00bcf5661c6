"""The host side of the link protocol v1 (docs/protocol.md): requests, retries, device errors."""
from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cbor2

from tinyhost.link.auth import ERR_AUTH, ReplyNotAuthentic, Session
from tinyhost.link.framing import Frame, FrameError, FrameReader, Msg, decode_frame, encode_frame
from tinyhost.link.transport import Link, LinkError

HELLO_TIMEOUT = 1.5   # seconds of silence per attempt: a silent port is reported within seconds
REQUEST_TIMEOUT = 30.0
RETRIES = 3           # attempts after the first that may go unanswered (silence)
NOISY_BUDGET = 30.0   # seconds of NAKed, corrupt or cut replies before a noisy line is given up
POKE = 0.02           # silence after which a lone delimiter is sent: it ends a request whose own
                      # delimiter was lost (an empty frame is ignored by the device otherwise)
CUT_REPLY = 0.1       # part of a reply then this much silence: its delimiter was lost, resend
BACKOFF_AFTER = 16    # noisy attempts in a row before pausing between attempts (a burst)
BACKOFF_MAX = 0.01    # the longest pause between two noisy attempts
MIN_CHUNK = 64        # the smallest chunk the adaptive chunking goes down to, bytes
CLEAN_TO_GROW = 16    # first-attempt successes in a row before the chunk size doubles again
SHRINK_AFTER = 3      # noisy attempts at one chunk before it is cut in half
ERR_PROTO = -10  # TT_ERR_PROTO: a malformed request


class DeviceError(RuntimeError):
    """An error the device reported: its status code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"device error {code}: {message}")
        self.code = code
        self.message = message


class AuthError(DeviceError):
    """Authorization failed (docs/security.md): the device refused a request (no MAC, a wrong
    key, a replay: ERROR TT_ERR_AUTH), a reply was not authentic, or the host's key and the
    device's provisioning disagree."""

    def __init__(self, message: str) -> None:
        super().__init__(ERR_AUTH, message)
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class DeviceTimeout(LinkError):
    """No reply at all: the device is not there, or not running the firmware."""


class NoisyLink(LinkError):
    """Replies come, but none clean: the line corrupts too much to get a request through."""


class _Fail(Enum):
    SILENT = "silent"    # nothing came back
    NAK = "nak"          # the device got a corrupt request
    CORRUPT = "corrupt"  # a reply failed its CRC or COBS, or was cut short


@dataclass
class StepReply:
    loss: float
    pred: int
    cost: int
    step: int


@dataclass
class LinkStats:
    """What the link took beyond one frame per request (for benches and messages)."""
    requests: int = 0
    resends: int = 0
    nak: int = 0      # attempts answered with NAK
    corrupt: int = 0  # attempts whose reply was corrupt or cut
    silent: int = 0   # attempts with no reply


class DeviceClient:
    """Requests and replies over a link, surviving a noisy wire: every failed attempt is resent
    with the same sequence number (the device answers a retransmission from its kept reply, so
    nothing runs twice), NAKs and corrupt replies are retried for NOISY_BUDGET seconds rather than
    a fixed count, a lost delimiter costs POKE or CUT_REPLY seconds instead of a timeout, and large
    transfers go in smaller chunks while attempts fail (chunk_size)."""

    def __init__(self, link: Link, key: bytes | None = None) -> None:
        self.link = link
        self.key = key            # the device's key (--key FILE); None: an open device
        self.session: Session | None = None  # set by HELLO when the device is provisioned
        self.device_auth = False  # INFO said the device requires a key
        self.reader = FrameReader()
        self.seq = int.from_bytes(os.urandom(1), "little")  # never matches a stale cached reply
        self.stats = LinkStats()
        self._shrink = 0   # chunks are the device's max payload >> _shrink
        self._clean = 0    # first-attempt successes in a row

    def close(self) -> None:
        self.link.close()

    def chunk_size(self, limit: int) -> int:
        """The chunk to send now for a transfer whose chunks may be up to `limit` bytes: halved
        after each request that needed several attempts, doubled back after CLEAN_TO_GROW clean
        ones (a 4 KB frame almost never survives 1e-3 byte errors; a 256-byte one mostly does)."""
        return max(min(limit, MIN_CHUNK), limit >> self._shrink)

    def _adapt(self, attempts: int) -> None:
        if attempts == 1:
            self._clean += 1
            if self._clean >= CLEAN_TO_GROW and self._shrink > 0:
                self._shrink -= 1
                self._clean = 0
        else:
            self._clean = 0
            if attempts > 2:
                self._shrink = min(self._shrink + 1, 8)

    def _read(self) -> bytes:
        """What has arrived (waiting at most the port's read timeout for a first byte)."""
        try:
            # Every pyserial port class has in_waiting; SerialBase (the declared type) not.
            waiting = int(getattr(self.link.port, "in_waiting", 0))
            return bytes(self.link.port.read(max(1, waiting)))
        except Exception as e:
            raise LinkError(f"cannot read from {self.link.name}: {e}") from None

    def _send(self, data: bytes) -> None:
        try:
            self.link.port.write(data)
            self.link.port.flush()
        except Exception as e:
            raise LinkError(f"cannot write to {self.link.name}: {e}") from None

    def request(self, msg: Msg, body: Any = None, timeout: float = REQUEST_TIMEOUT,
                retries: int = RETRIES, noisy_budget: float | None = None,
                max_noisy: int | None = None) -> tuple[int, Any]:
        """Sends one request and returns (response type, decoded payload). Resends with the same
        sequence number until a clean reply: up to `retries` times after silence (`timeout`
        seconds each), and for up to `noisy_budget` seconds while replies come back NAKed or
        corrupt (or `max_noisy` such attempts: a chunked transfer then sends a smaller chunk)."""
        budget = NOISY_BUDGET if noisy_budget is None else noisy_budget
        # A leading delimiter ends whatever line noise the device holds, so the request starts a
        # frame of its own.
        frame, counter = self._frame(msg, b"" if body is None else cbor2.dumps(body))
        frame = b"\0" + frame
        opener = self._opener(msg, counter)
        self.stats.requests += 1
        fails = {f: 0 for f in _Fail}
        noisy_since: float | None = None
        attempts = 0
        while True:
            attempts += 1
            self._send(frame)
            outcome = self._await(self.seq, timeout, opener)
            if not isinstance(outcome, _Fail):
                self._adapt(attempts)
                rtype, payload = outcome
                if rtype == Msg.ERROR:
                    code, message = payload
                    raise self._device_error(msg, code, message)
                return rtype, payload
            fails[outcome] += 1
            self.stats.resends += 1
            setattr(self.stats, outcome.value, getattr(self.stats, outcome.value) + 1)
            if outcome is _Fail.SILENT:
                if fails[_Fail.SILENT] > retries:
                    raise DeviceTimeout(self._silent_message(msg, timeout, attempts, fails))
                continue
            now = time.monotonic()
            noisy_since = now if noisy_since is None else noisy_since
            noisy = fails[_Fail.NAK] + fails[_Fail.CORRUPT]
            if now - noisy_since > budget or (max_noisy is not None and noisy >= max_noisy):
                raise NoisyLink(f"{fails[_Fail.NAK]} NAKs and {fails[_Fail.CORRUPT]} corrupt or "
                                f"cut replies in a row from {self.link.name} to {msg.name} "
                                f"({now - noisy_since:.0f} s, {attempts} attempts, none clean): "
                                "the line is too noisy; check the cable, ground and baud rate")
            if noisy >= BACKOFF_AFTER:  # let a burst pass rather than feed it frames
                time.sleep(min(BACKOFF_MAX, 0.001 * 2 ** min(noisy - BACKOFF_AFTER, 6)))

    def _silent_message(self, msg: Msg, timeout: float, attempts: int,
                        fails: dict[_Fail, int]) -> str:
        noisy = fails[_Fail.NAK] + fails[_Fail.CORRUPT]
        also = (f" (and {noisy} NAKed or corrupt replies before)" if noisy else "")
        return (f"no answer from {self.link.name} to {msg.name}: {fails[_Fail.SILENT]} attempts "
                f"of {attempts} got no reply in {timeout:g} s{also}: is the tinytrain firmware "
                "running on that port?")

    # -- authorization (docs/security.md) ---------------------------------------------------------
    def _frame(self, msg: Msg, payload: bytes) -> tuple[bytes, int | None]:
        """The next request's frame under a new sequence number, with its counter and MAC in a
        session (then also the counter, which the reply's MAC covers)."""
        self.seq = (self.seq + 1) & 0xFF
        counter = None
        if self.session is not None and msg != Msg.HELLO:
            payload, counter = self.session.seal(msg, self.seq, payload)
        return encode_frame(msg, self.seq, payload), counter

    def _opener(self, msg: Msg, counter: int | None) -> Callable[[Frame], bytes] | None:
        """Checks a reply's MAC and returns its payload without it (None: an open exchange)."""
        session = self.session
        if session is None or counter is None:
            return None

        def open_reply(frame: Frame) -> bytes:
            try:
                return session.open(counter, frame.type, frame.seq, frame.payload)
            except ReplyNotAuthentic as e:
                refusal = self._refusal(msg, frame)
                if refusal is not None:
                    raise refusal from None
                raise AuthError(f"{e} came from {self.link.name} to {msg.name}: not from the "
                                "device holding this key, or altered on the way") from None
        return open_reply

    def _refusal(self, msg: Msg, frame: Frame) -> AuthError | None:
        """An untagged ERROR TT_ERR_AUTH: the device refused the request before running it."""
        if frame.type != Msg.ERROR:
            return None
        try:
            code, message = cbor2.loads(frame.payload)
        except Exception:
            return None
        err = self._device_error(msg, code, message)
        return err if isinstance(err, AuthError) else None

    def _device_error(self, msg: Msg, code: int, message: str) -> DeviceError:
        if code != ERR_AUTH:
            return DeviceError(code, message)
        if "plan" in message.split(":")[0]:  # unsigned plan, plan signature ...
            hint = ("sign it with the key the device trusts: tinyhost compile ... --sign-key "
                    "FILE writes PLAN.sig beside the plan")
        elif self.key is None:
            hint = "the device requires a key: pass --key FILE with its key file"
        elif message.startswith("bad key"):
            hint = "is --key the file this device was provisioned with?"
        else:
            hint = "a copy of an earlier request, or another host on the line"
        return AuthError(f"device refused {msg.name}: {message} ({hint})")

    def _await(self, seq: int, timeout: float,
               opener: Callable[[Frame], bytes] | None = None) -> tuple[int, Any] | _Fail:
        last_byte = last_poke = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_byte >= timeout:
                return _Fail.SILENT
            data = self._read()
            now = time.monotonic()
            if data:
                last_byte = now
            elif self.reader.buffer and now - last_byte >= CUT_REPLY:
                self.reader.buffer.clear()  # a reply whose delimiter was lost
                return _Fail.CORRUPT
            elif now - max(last_byte, last_poke) >= POKE:
                self._send(b"\0")  # ends our request if its own delimiter was lost
                last_poke = now
            for raw in self.reader.feed(data):
                try:
                    frame = decode_frame(raw)
                except FrameError:
                    return _Fail.CORRUPT  # resend: the device answers from its kept reply
                if frame.type == Msg.NAK:
                    return _Fail.NAK
                if frame.seq != seq:
                    continue  # a late reply to an earlier attempt
                body = frame.payload if opener is None else opener(frame)
                try:
                    payload = cbor2.loads(body) if body else None
                except Exception:
                    return _Fail.CORRUPT
                return frame.type, payload

    def _expect(self, got: int, want: Msg) -> None:
        if got != want:
            raise LinkError(f"unexpected reply {got:#x} from {self.link.name} (wanted {want.name})")

    # -- messages ---------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        rtype, info = self.request(Msg.HELLO, timeout=HELLO_TIMEOUT, retries=2)
        self._expect(rtype, Msg.INFO)
        if not isinstance(info, dict):
            raise LinkError(f"{self.link.name} sent INFO that is not a map: {info!r}")
        self._start_session(info)
        return info

    def _start_session(self, info: dict[str, Any]) -> None:
        """HELLO opened a session: a provisioned device's INFO has `auth` and a fresh nonce. A
        key for a device that requires none is refused: its replies could not be told from
        anyone's (a device that should be provisioned, or another device on the port)."""
        self.session = None
        self.device_auth = info.get("auth") is True
        if not self.device_auth:
            if self.key is not None:
                raise AuthError(f"{self.link.name} is not provisioned with a key (its INFO has no "
                                "`auth`), but --key was given: provision it (docs/security.md) "
                                "or drop --key")
            return
        nonce = info.get("nonce")
        if not isinstance(nonce, bytes) or len(nonce) != 16:
            raise AuthError(f"{self.link.name} requires a key but sent no valid session nonce")
        if self.key is not None:
            self.session = Session(self.key, nonce)

    def upload_plan(self, data: bytes, chunk: int,
                    progress: Callable[[int], None] | None = None,
                    arena: int | None = None, signature: bytes | None = None) -> None:
        """PLAN_BEGIN, the chunks, PLAN_COMMIT. With `arena` (the plan's arena_size) PLAN_BEGIN
        lets the device refuse a plan too large for its arena before any chunk is sent; a
        firmware older than that element answers ERROR (protocol) and gets the two-element form."""
        begin = [len(data), hashlib.sha256(data).digest()]
        extra: list[Any] = [] if arena is None else [arena]
        if signature is not None:  # a device that takes only signed plans (docs/security.md)
            extra = [arena or 0, signature]
        try:
            rtype, _ = self.request(Msg.PLAN_BEGIN, begin + extra)
        except DeviceError as e:
            if arena is None or e.code != ERR_PROTO or "[size, sha256]" not in e.message:
                raise
            rtype, _ = self.request(Msg.PLAN_BEGIN, begin)
        self._expect(rtype, Msg.ACK)

        def send(offset: int, n: int, max_noisy: int | None) -> None:
            rtype, _ = self.request(Msg.PLAN_CHUNK, [offset, data[offset:offset + n]],
                                    max_noisy=max_noisy)
            self._expect(rtype, Msg.ACK)
            if progress:
                progress(n)

        self._transfer(len(data), chunk, send)
        rtype, _ = self.request(Msg.PLAN_COMMIT, [])
        self._expect(rtype, Msg.ACK)

    def write_input(self, sample: bytes, chunk: int) -> None:
        self._write_window(Msg.INPUT_CHUNK, [], sample, chunk)

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

        def send(offset: int, n: int, max_noisy: int | None) -> None:
            rtype, data = self.request(Msg.READ_TENSOR, [index, offset, n], max_noisy=max_noisy)
            self._expect(rtype, Msg.TENSOR)
            out.extend(data)

        self._transfer(nbytes, chunk, send)
        return bytes(out)

    def _transfer(self, total: int, limit: int,
                  send: Callable[[int, int, int | None], None]) -> None:
        """`total` bytes in chunks of chunk_size(limit), in order; a chunk that meets SHRINK_AFTER
        noisy attempts is sent again cut in half (each request below is idempotent: INPUT_CHUNK
        and READ_TENSOR by nature, PLAN_CHUNK because the device takes bytes it already has)."""
        offset = 0
        while offset < total:
            size = self.chunk_size(limit)
            can_shrink = size > min(limit, MIN_CHUNK)
            n = min(size, total - offset)
            try:
                send(offset, n, SHRINK_AFTER if can_shrink else None)
            except NoisyLink:
                if not can_shrink:
                    raise
                self._shrink += 1
                self._clean = 0
                continue
            offset += n

    def write_tensor(self, index: int, data: bytes, chunk: int) -> None:
        """A trainable parameter's bytes, in chunks (set-parameters)."""
        self._write_window(Msg.WRITE_TENSOR, [index], data, chunk)

    def _write_window(self, msg: Msg, head: list[Any], data: bytes, limit: int) -> None:
        """`data` by requests [*head, offset, bytes] that the device ACKs and may run twice
        (INPUT_CHUNK, WRITE_TENSOR write bytes at an offset). On a clean line that is one chunk
        of up to `limit` bytes at a time. When attempts fail the chunks shrink (chunk_size), and
        as many go out back to back as fit in `limit` bytes (what the device may have in flight):
        the failed ones are sent again under new sequence numbers, so one round trip serves
        many chunks."""
        pending = deque(self._chunks(0, len(data), limit))
        noisy_since: float | None = None
        fails = 0
        while pending:
            window: list[tuple[int, int]] = []
            while pending and sum(n for _, n in window) + pending[0][1] <= limit:
                window.append(pending.popleft())
            window = window or [pending.popleft()]
            sent: dict[int, tuple[int, int]] = {}
            wire = bytearray()
            openers: dict[int, Callable[[Frame], bytes] | None] = {}
            for offset, n in window:
                frame, counter = self._frame(msg, cbor2.dumps([*head, offset,
                                                               data[offset:offset + n]]))
                sent[self.seq] = (offset, n)
                openers[self.seq] = self._opener(msg, counter)
                wire += b"\0" + frame
            self.stats.requests += len(window)
            self._send(bytes(wire))
            acked = self._collect(msg, sent, openers)
            failed = [chunk for seq, chunk in sent.items() if seq not in acked]
            if not failed:
                self._adapt(1)
                noisy_since, fails = None, 0
                continue
            self.stats.resends += len(failed)
            fails += len(failed)
            now = time.monotonic()
            noisy_since = now if noisy_since is None else noisy_since
            if now - noisy_since > NOISY_BUDGET:
                raise NoisyLink(f"{fails} of the {msg.name} requests to {self.link.name} failed "
                                f"in {now - noisy_since:.0f} s without one clean exchange: the "
                                "line is too noisy; check the cable, ground and baud rate")
            if 2 * len(failed) >= len(window):
                self._shrink = min(self._shrink + 1, 8)
                self._clean = 0
            again = [c for offset, n in failed for c in self._chunks(offset, offset + n, limit)]
            pending.extendleft(reversed(again))

    def _chunks(self, start: int, end: int, limit: int) -> list[tuple[int, int]]:
        size = self.chunk_size(limit)
        return [(at, min(size, end - at)) for at in range(start, end, size)]

    def _collect(self, msg: Msg, sent: dict[int, tuple[int, int]],
                 openers: dict[int, Callable[[Frame], bytes] | None]) -> set[int]:
        """The sequence numbers of `sent` the device ACKed. Every request gets one reply (ACK,
        ERROR, or a NAK when it arrived corrupt), so this returns once as many replies came
        back, good or bad, or, once some came, after a silence longer than the first one took
        (at least POKE * 2): the rest were lost whole. The first reply's wait measures the line
        (a 4 KB chunk takes a quarter second to cross a 16 KiB/s UART), so a slow link is not
        taken for a lossy one. An ERROR for one of them is raised."""
        acked: set[int] = set()
        replies = 0
        start = last_byte = last_poke = time.monotonic()
        patience: float | None = None  # set by the first reply
        while replies < len(sent):
            now = time.monotonic()
            if now - last_byte >= REQUEST_TIMEOUT:
                self.stats.silent += 1
                raise DeviceTimeout(f"no answer from {self.link.name} to {msg.name} in "
                                    f"{REQUEST_TIMEOUT:g} s: is the tinytrain firmware running "
                                    "on that port?")
            data = self._read()
            now = time.monotonic()
            if data:
                last_byte = now
            elif patience is not None and now - last_byte >= patience and not self.reader.buffer:
                break  # some request or reply was lost whole
            elif self.reader.buffer and now - last_byte >= CUT_REPLY:
                self.reader.buffer.clear()
                self.stats.corrupt += 1
                break
            elif now - max(last_byte, last_poke) >= POKE:
                self._send(b"\0")
                last_poke = now
            for raw in self.reader.feed(data):
                replies += 1
                if patience is None:
                    patience = max(2 * POKE, 1.5 * (now - start))
                try:
                    frame = decode_frame(raw)
                except FrameError:
                    self.stats.corrupt += 1
                    continue
                opener = openers.get(frame.seq) if frame.type != Msg.NAK else None
                body = frame.payload if opener is None else opener(frame)
                try:
                    payload = cbor2.loads(body) if body else None
                except Exception:
                    self.stats.corrupt += 1
                    continue
                if frame.type == Msg.NAK:
                    self.stats.nak += 1
                elif frame.seq in sent and frame.type == Msg.ACK:
                    acked.add(frame.seq)
                elif frame.seq in sent and frame.type == Msg.ERROR:
                    code, message = payload if isinstance(payload, list) else (0, repr(payload))
                    raise self._device_error(msg, code, message)
        return acked

    def checkpoint(self) -> None:
        """The device saves its trained parameters and step count; an error if it could not."""
        rtype, _ = self.request(Msg.CHECKPOINT, [])
        self._expect(rtype, Msg.ACK)

    def reset(self) -> None:
        rtype, _ = self.request(Msg.RESET, [])
        self._expect(rtype, Msg.ACK)
