"""The training plan: dataclasses (the schema) and their CBOR form (`.ttp` files).

A `.ttp` file is the CBOR array `[format_version, body, sha256(body)]`, where `body` is a byte string
holding the CBOR-encoded plan body (see docs/plan.cddl). The version comes first so any reader can
refuse a plan from another format version before parsing anything else. The constant blob (frozen
parameters and the initial values of trainable ones) is the body's last element, and the encoder pads
the body so the blob starts at a 16-byte-aligned file offset: a device keeps the plan in flash and
reads frozen weights in place.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import cbor2
import numpy as np

from tinyhost.dtypes import DType
from tinyhost.ops import OP_SPECS, Opcode, UpdateRule, attr_index

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
    # Pad lengths 24..39 all take a 2-byte CBOR header, so only the payload moves the blob.
    for pad in range(24, 24 + BLOB_ALIGN):
        outer, blob_at = _blob_file_offset(plan, pad)
        if blob_at % BLOB_ALIGN == 0:
            return outer
    raise AssertionError("no padding aligns the blob")  # unreachable: 16 consecutive offsets


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise PlanError(f"malformed plan: {what}")


def decode_plan(data: bytes) -> Plan:
    """Parse and check a `.ttp` file; every problem raises PlanError naming it."""
    stream = io.BytesIO(data)
    try:
        outer = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises several types for truncated/corrupt input
        raise PlanError(f"not a tinytrain plan (CBOR decoding failed: {e}); "
                        "the file is corrupt or truncated") from None
    if stream.tell() != len(data):
        raise PlanError(f"plan file has {len(data) - stream.tell()} bytes of trailing data: "
                        "the file is corrupt")
    _expect(isinstance(outer, list) and len(outer) == 3, "top level must be [version, body, hash]")
    version, body, digest = outer
    if version != PLAN_FORMAT_VERSION:
        raise PlanError(f"plan format version {version} is not supported: this tinyhost reads "
                        f"version {PLAN_FORMAT_VERSION}; recompile the model with this tinyhost")
    _expect(isinstance(body, bytes) and isinstance(digest, bytes), "body and hash must be bytes")
    if hashlib.sha256(body).digest() != digest:
        raise PlanError("plan content hash does not match: the file is corrupt")
    try:
        (arena_size, n_forward, bind, num_classes, lr, tensors, ops, meta, _pad, blob) = \
            cbor2.loads(body)
        plan = Plan(
            arena_size=arena_size, n_forward=n_forward, bindings=Bindings(*bind),
            num_classes=num_classes, default_lr=lr,
            tensors=[Tensor(name=t[6], dtype=DType(t[0]), shape=tuple(t[5]), kind=TensorKind(t[1]),
                            arena_offset=t[3], data_offset=t[4]) for t in tensors],
            ops=[Op(Opcode(o[0]), list(o[1]), list(o[2]), list(o[3])) for o in ops],
            blob=blob, meta=meta)
    except (ValueError, TypeError, IndexError) as e:
        raise PlanError(f"malformed plan body: {e}") from None
    check_plan(plan)
    return plan


def check_plan(plan: Plan) -> None:
    """The consistency rules the firmware also enforces before it runs anything."""
    n = len(plan.tensors)
    for t in plan.tensors:
        if t.in_arena:
            _expect(0 <= t.arena_offset and t.arena_offset + t.nbytes <= plan.arena_size,
                    f"tensor {t.name!r} lies outside the {plan.arena_size}-byte arena")
        if t.data_offset != NONE:
            _expect(0 <= t.data_offset and t.data_offset + t.nbytes <= len(plan.blob),
                    f"tensor {t.name!r} lies outside the constant blob")
        _expect(t.in_arena or t.data_offset != NONE, f"tensor {t.name!r} has no storage")
    for k, op in enumerate(plan.ops):
        spec = OP_SPECS[op.opcode]
        _expect(len(op.inputs) == len(spec.inputs) and len(op.outputs) == len(spec.outputs)
                and len(op.attrs) == len(spec.attrs), f"op {k} ({op.opcode.name}) arity")
        for i in op.inputs + op.outputs:
            _expect(i == NONE or 0 <= i < n, f"op {k} ({op.opcode.name}) names tensor {i}")
        if op.opcode in (Opcode.UPDATE_S8_F32, Opcode.UPDATE_S32_F32):
            _expect(op.outputs == [op.inputs[0], op.inputs[3]],
                    f"op {k} ({op.opcode.name}) must update its state in place")
            _expect(op.attrs[-1] in (UpdateRule.ROUND, UpdateRule.MASTER) and
                    (op.inputs[3] != NONE) == (op.attrs[-1] == UpdateRule.MASTER),
                    f"op {k} ({op.opcode.name}): a master copy goes with rule MASTER only")
    for i in (plan.bindings.input, plan.bindings.label, plan.bindings.logits,
              plan.bindings.loss, plan.bindings.pred):
        _expect(0 <= i < n and plan.tensors[i].in_arena, f"binding {i} is not an arena tensor")
    _expect(0 < plan.n_forward <= len(plan.ops), "n_forward out of range")


def plan_hash(data: bytes) -> bytes:
    """The identity of a plan file: sha256 of its body (what devices report in `info`)."""
    try:
        return cbor2.loads(data)[2]
    except Exception:
        raise PlanError("not a tinytrain plan") from None


def load_plan_file(path: str) -> tuple[Plan, bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PlanError(f"cannot read plan {path}: {e.strerror}") from None
    return decode_plan(data), data
