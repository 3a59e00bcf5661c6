"""Frames on the wire: COBS(type, seq, payload, crc32le) + 0x00 (docs/protocol.md)."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from cobs import cobs


class Msg(IntEnum):
    """Message types; must match firmware/runtime/include/tt/tt_device.h."""
    HELLO = 0x01
    PLAN_BEGIN = 0x02
    PLAN_CHUNK = 0x03
    PLAN_COMMIT = 0x04
    INPUT_CHUNK = 0x05
    TRAIN = 0x06
    EVAL = 0x07
    READ_TENSOR = 0x08
    RESET = 0x09
    WRITE_TENSOR = 0x0A
    CHECKPOINT = 0x0B
    ACK = 0x80
    INFO = 0x81
    STEP = 0x86
    PRED = 0x87
    TENSOR = 0x88
    NAK = 0x7E
    ERROR = 0x7F


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes


class FrameError(ValueError):
    pass


def encode_frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    raw = bytes((msg_type, seq & 0xFF)) + payload
    raw += struct.pack("<I", zlib.crc32(raw))
    return bytes(cobs.encode(raw)) + b"\0"


def decode_frame(encoded: bytes) -> Frame:
    """One frame without its 0x00 delimiter."""
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as e:
        raise FrameError(f"bad COBS encoding: {e}") from None
    if len(raw) < 6:
        raise FrameError(f"frame of {len(raw)} bytes is too short")
    body, crc = raw[:-4], struct.unpack("<I", raw[-4:])[0]
    if zlib.crc32(body) != crc:
        raise FrameError("CRC mismatch")
    return Frame(body[0], body[1], body[2:])


class FrameReader:
    """Splits a byte stream into frames at 0x00 delimiters."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        *frames, rest = self.buffer.split(b"\0")
        self.buffer = bytearray(rest)
        return [bytes(f) for f in frames if f]
