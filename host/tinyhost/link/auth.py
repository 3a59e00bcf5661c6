"""Link authorization, the host's side (docs/security.md; the device's is tt_auth.h/auth.c).

A device provisioned with a key gives a fresh 16-byte nonce in INFO at every HELLO. Each request
of that session then carries `counter:u32le | tag:16` after its payload, the tag being keyed
BLAKE2b-128 over "Q" | nonce | counter | type | seq | payload, with a counter that rises by one
per request; the device refuses any other (ERROR TT_ERR_AUTH). Its replies carry a tag over
"R" | nonce | counter (of the request) | type | seq | payload, checked here. Python's
hashlib.blake2b(key=...) is RFC 7693's keyed BLAKE2b, the same function as Monocypher's
crypto_blake2b_keyed on the device (tests/host/test_link_auth.py checks the two agree)."""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

KEY_SIZE = 32
NONCE_SIZE = 16
TAG_SIZE = 16
ERR_AUTH = -16  # TT_ERR_AUTH: a provisioned device refused the request


def tag(key: bytes, direction: bytes, nonce: bytes, counter: int, msg_type: int, seq: int,
        payload: bytes) -> bytes:
    """The MAC of one request (direction b"Q") or reply (b"R") of the session `nonce`."""
    h = hashlib.blake2b(key=key, digest_size=TAG_SIZE)
    h.update(direction + nonce + struct.pack("<IBB", counter, msg_type, seq & 0xFF))
    h.update(payload)
    return h.digest()


class ReplyNotAuthentic(ValueError):
    """A reply whose tag does not verify: not from the device holding the key, or altered."""


@dataclass
class Session:
    """One session of a provisioned device: its nonce and the host's request counter."""
    key: bytes = field(repr=False)
    nonce: bytes
    counter: int = 0

    def seal(self, msg_type: int, seq: int, payload: bytes) -> tuple[bytes, int]:
        """The request's payload with its counter and tag; returns it and the counter (what
        the reply's tag covers)."""
        self.counter += 1
        if self.counter >= 2**32:
            raise ValueError("the session's request counter is exhausted: send HELLO again")
        t = tag(self.key, b"Q", self.nonce, self.counter, msg_type, seq, payload)
        return payload + struct.pack("<I", self.counter) + t, self.counter

    def open(self, counter: int, msg_type: int, seq: int, payload: bytes) -> bytes:
        """The reply's payload without its tag, once the tag verifies."""
        if len(payload) < TAG_SIZE:
            raise ReplyNotAuthentic("a reply without its MAC")
        body, got = payload[:-TAG_SIZE], payload[-TAG_SIZE:]
        want = tag(self.key, b"R", self.nonce, counter, msg_type, seq, body)
        if not hmac.compare_digest(got, want):
            raise ReplyNotAuthentic("a reply whose MAC does not verify")
        return body
