"""Seed corpora for the fuzz targets, written into OUT/plan and OUT/device:

    python tests/fuzz/make_seeds.py OUT

plan: real plans compiled now by tinyhost (the demo CNN in fp32; small int8 ones through the
quantizer), so the seeds follow the plan format as it changes. device: one input per message
type in fuzz_device's record form (first byte even: [type, length (2 B LE), payload]...) with
well-formed CBOR payloads, plus raw framed bytes (first byte odd); and OUT/small.ttp, the plan the
device target loads (TT_FUZZ_PLAN).
"""
from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

import cbor2
import numpy as np

from tinyhost.compiler import compile_model
from tinyhost.link.framing import Msg, encode_frame

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"

SMALL = """
import torch
from torch import nn

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8, 3)), torch.randn(1, 2, 8)
"""


def record(msg: int, payload: bytes) -> bytes:
    return bytes([msg]) + struct.pack("<H", len(payload)) + payload


def main() -> int:
    out = Path(sys.argv[1])
    (out / "plan").mkdir(parents=True, exist_ok=True)
    (out / "device").mkdir(parents=True, exist_ok=True)
    model = out / "small_model.py"
    model.write_text(SMALL)
    small = compile_model(f"{model}:make_model", update="full").data
    (out / "small.ttp").write_bytes(small)
    (out / "plan" / "small.ttp").write_bytes(small)
    (out / "plan" / "small_last1.ttp").write_bytes(
        compile_model(f"{model}:make_model", update="last:1").data)
    (out / "plan" / "demo.ttp").write_bytes(compile_model(DEMO_MODEL).data)

    sample = np.zeros((2, 8), np.float32).tobytes()
    messages = {
        "hello": [record(Msg.HELLO, b"")],
        "upload": [record(Msg.PLAN_BEGIN, cbor2.dumps([len(small), hashlib.sha256(small).digest(),
                                                       4096])),
                   record(Msg.PLAN_CHUNK, cbor2.dumps([0, small[:1500]])),
                   record(Msg.PLAN_CHUNK, cbor2.dumps([1500, small[1500:]])),
                   record(Msg.PLAN_COMMIT, cbor2.dumps([]))],
        "train": [record(Msg.TRAIN, cbor2.dumps([1, 0.01, sample])),
                  record(Msg.TRAIN, cbor2.dumps([2, 0.01, sample]))],
        "chunked": [record(Msg.INPUT_CHUNK, cbor2.dumps([0, sample[:32]])),
                    record(Msg.INPUT_CHUNK, cbor2.dumps([32, sample[32:]])),
                    record(Msg.EVAL, cbor2.dumps([b""]))],
        "tensors": [record(Msg.READ_TENSOR, cbor2.dumps([1, 0, 16])),
                    record(Msg.WRITE_TENSOR, cbor2.dumps([1, 0, bytes(16)])),
                    record(Msg.CHECKPOINT, cbor2.dumps([])),
                    record(Msg.RESET, cbor2.dumps([]))],
    }
    for name, records in messages.items():
        (out / "device" / name).write_bytes(b"\0" + b"".join(records))
        # The same on a provisioned device: fuzz_device adds the session's counter and MAC.
        (out / "device" / f"{name}-keyed").write_bytes(b"\2" + b"".join(records))
    raw = encode_frame(Msg.HELLO, 7, b"") + encode_frame(Msg.TRAIN, 8,
                                                         cbor2.dumps([0, 0.01, sample]))
    (out / "device" / "raw").write_bytes(b"\1" + raw + b"\0\0garbage\0")
    print(f"seeds in {out}: {len(list((out / 'plan').iterdir()))} plans, "
          f"{len(list((out / 'device').iterdir()))} device inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
