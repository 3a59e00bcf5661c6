"""The training plan: dataclasses (the schema) and their CBOR form (`.ttp` files).

A `.ttp` file is the CBOR array `[format_version, body, sha256(body)]`, where `body` is a byte
string holding the CBOR-encoded plan body (see docs/plan.cddl). The version comes first so any
reader can refuse a plan from another format version before parsing anything else. The constant
blob (frozen parameters and the initial values of trainable ones) is the body's last element, and
the encoder pads the body so the blob starts at a 16-byte-aligned file offset: a device keeps the
plan in flash and reads frozen weights in place. decode_plan refuses exactly what the firmware
refuses (tinyhost.plan_check).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, cast

import cbor2
import numpy as np

from tinyhost import plan_check
from tinyhost.dtypes import DType as DType  # re-exported: the plan's element types
from tinyhost.ops import Opcode, attr_index

PLAN_FORMAT_VERSION = 1
BLOB_ALIGN = 16
ARENA_ALIGN = 16  # tensor offsets in the arena
TABLE_ALIGN = 8   # the arena size: the device's decoded plan tables follow it 8-byte aligned
NONE = -1  # "no tensor", "not in the arena", "no constant data"


class PlanError(ValueError):
    """A plan file that cannot be used: corrupt, truncated, another version, inconsistent."""


class TensorKind(IntEnum):
    """What a tensor is for; the device only needs the offsets, the reports need the kind."""
    INPUT = 0
    LABEL = 1
    ACTIVATION = 2       # forward intermediate (and the logits)
    GRADIENT = 3         # backward intermediate
    PARAM_TRAINABLE = 4  # lives in the arena, initialised from the blob, updated by training
    PARAM_FROZEN = 5     # constant, read in place from the blob (flash on a device)
    OUTPUT = 6           # loss and prediction, read by the host after a step


@dataclass
class Tensor:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    kind: TensorKind
    arena_offset: int = NONE
    data_offset: int = NONE

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def in_arena(self) -> bool:
        return self.arena_offset != NONE


@dataclass
class Op:
    opcode: Opcode
    inputs: list[int]
    outputs: list[int]
    attrs: list[int]

    def attr(self, name: str) -> int:
        """Attribute `name` (host/tinyhost/ops.py names each op's attributes)."""
        return self.attrs[attr_index(self.opcode, name)]


@dataclass
class Bindings:
    input: int
    label: int
    logits: int
    loss: int
    pred: int


@dataclass
class Plan:
    arena_size: int
    n_forward: int  # ops[:n_forward] is inference (input -> logits); all ops make a training step
    bindings: Bindings
    num_classes: int
    default_lr: float
    tensors: list[Tensor]
    ops: list[Op]
    blob: bytes
    meta: dict[str, Any] = field(default_factory=dict)  # host-only: model name, report, ...

    def tensor_index(self, name: str) -> int:
        for i, t in enumerate(self.tensors):
            if t.name == name:
                return i
        raise KeyError(name)

    def constant(self, index: int) -> np.ndarray:
        """The blob data of a tensor (a frozen parameter or a trainable one's initial value)."""
        t = self.tensors[index]
        if t.data_offset == NONE:
            raise ValueError(f"tensor {t.name!r} has no constant data")
        raw = self.blob[t.data_offset:t.data_offset + t.nbytes]
        return np.frombuffer(raw, dtype=t.dtype.numpy).reshape(t.shape)

    @property
    def trainable(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors) if t.kind == TensorKind.PARAM_TRAINABLE]

    @property
    def parameters(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors)
                if t.kind in (TensorKind.PARAM_TRAINABLE, TensorKind.PARAM_FROZEN)]


def _encode_body(plan: Plan, pad: int) -> bytes:
    b = plan.bindings
    body = [
        plan.arena_size,
        plan.n_forward,
        [b.input, b.label, b.logits, b.loss, b.pred],
        plan.num_classes,
        float(np.float32(plan.default_lr)),
        [[int(t.dtype), int(t.kind), t.nbytes, t.arena_offset, t.data_offset, list(t.shape), t.name]
         for t in plan.tensors],
        [[int(op.opcode), op.inputs, op.outputs, op.attrs] for op in plan.ops],
        plan.meta,
        b"\0" * pad,
        plan.blob,
    ]
    return cbor2.dumps(body)


def _blob_file_offset(plan: Plan, pad: int) -> tuple[bytes, int]:
    body = _encode_body(plan, pad)
    outer = cbor2.dumps([PLAN_FORMAT_VERSION, body, hashlib.sha256(body).digest()])
    # The blob is the body's last item, so its payload ends where the body ends.
    body_start = outer.index(body)
    return outer, body_start + len(body) - len(plan.blob)


def encode_plan(plan: Plan) -> bytes:
    # Pad lengths 24..255 all take a 2-byte CBOR header, so the payload moves the blob one byte
    # per step, except where the body's own length header grows (once at most): some pad aligns.
    for pad in range(24, 256):
        outer, blob_at = _blob_file_offset(plan, pad)
        if blob_at % BLOB_ALIGN == 0:
            return outer
    raise AssertionError("no padding aligns the blob")  # unreachable: 16 consecutive offsets


def _opcode(value: int) -> Opcode:
    """An op's opcode; one the registry does not know stays a plain int until check_plan
    refuses it (as the firmware does, after the tensors and bindings)."""
    return Opcode(value) if value in Opcode._value2member_map_ else cast(Opcode, value)


def decode_plan(data: bytes) -> Plan:
    """Parse and check a `.ttp` file; PlanError names the first problem. It refuses exactly what
    the firmware's tt_plan_load refuses, except an arena larger than a device's (tinyhost.plan_check
    decodes the file as firmware/runtime/src/plan.c does, then applies plan_check.c's rules)."""
    try:
        raw = plan_check.parse_plan_file(data, PLAN_FORMAT_VERSION)
    except plan_check.Refused as e:
        raise PlanError(str(e)) from None
    try:
        meta = cbor2.loads(raw.meta)
    except Exception:  # noqa: BLE001 - CBOR the device skips but cbor2 will not read (host-only)
        meta = {}
    plan = Plan(
        arena_size=raw.arena_size, n_forward=raw.n_forward, bindings=Bindings(*raw.bindings),
        num_classes=raw.num_classes, default_lr=raw.default_lr,
        tensors=[Tensor(name=t.name.decode("utf-8", errors="replace"), dtype=DType(t.dtype),
                        shape=tuple(t.shape), kind=TensorKind(t.kind),
                        arena_offset=t.arena_offset, data_offset=t.data_offset)
                 for t in raw.tensors],
        ops=[Op(_opcode(o.opcode), o.inputs, o.outputs, o.attrs) for o in raw.ops],
        blob=raw.blob, meta=meta)
    check_plan(plan, blob_at=raw.blob_at)
    return plan


def check_plan(plan: Plan, *, blob_at: int = 0) -> None:
    """The rules the firmware enforces before it runs anything (firmware/runtime/src/plan_check.c,
    each op's check through the registry: tinyhost.plan_check), and the number ranges its decoder
    reads. `blob_at`: the blob's offset in the plan file (a plan in memory: 0, encode_plan aligns
    it). PlanError names the first problem, an op's by its index and opcode name."""
    problem = plan_check.plan_problem(plan, blob_at)
    if problem is not None:
        raise PlanError(problem)


def plan_hash(data: bytes) -> bytes:
    """The identity of a plan file: sha256 of its body (what devices report in `info`)."""
    try:
        digest = cbor2.loads(data)[2]
    except Exception:
        raise PlanError("not a tinytrain plan") from None
    if not isinstance(digest, bytes):
        raise PlanError("not a tinytrain plan")
    return digest


def load_plan_file(path: str) -> tuple[Plan, bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PlanError(f"cannot read plan {path}: {e.strerror}") from None
    return decode_plan(data), data
