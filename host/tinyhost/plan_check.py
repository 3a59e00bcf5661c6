"""The host's plan check: it refuses exactly the plans the firmware's `tt_plan_load` refuses.

Two stages, as on the device:

- `parse_plan_file` reads a `.ttp` file the way firmware/runtime/src/plan.c decodes it with zcbor
  (`open_file`, `walk_body`): the same CBOR items of the same major types, integers of the same
  widths (zcbor's `uint32`/`int32` decoders take 0 to 4-byte encodings, and nothing wider, whatever
  the value), the same container nesting limit for `meta` (6 levels with the body), indefinite
  lengths where zcbor takes them, trailing bytes after the body array ignored as zcbor does. A
  general CBOR library accepts and refuses other things (text that is not UTF-8, 8-byte encodings
  of small numbers, odd indefinite maps), so this is a small decoder of its own, `_Zcbor`, which
  follows zcbor 0.9's decoding functions step by step on a 64-bit host (size_t lengths).
- `plan_problem` is firmware/runtime/src/plan_check.c (`tt_plan_check`): tensors against the arena
  and the blob, the bindings, num_classes and n_forward, then each op through the registry: the
  opcode, operand and attribute counts, every attribute in its range (ops.AttrRange), then the
  op's own rules from its OpDef (`sizes`, `problem`: tinyhost/ops.py, each the copy of the op's
  `tt_op_<name>_check`), with tt_op_check_operands in between (`_operands_problem`).

What is not plan validity stays out: the arena a device has (TT_ERR_PLAN_ARENA) is the device's
business; `tinyhost compile --budget` and the report speak about it.

tests/c/test_plan.c feeds every mutated plan of tests/c/gen_plans.py to the firmware and requires
the verdict this module gave (recorded in mutants.bin); tests/host/test_plan_check.py names the
messages.
"""
from __future__ import annotations

import hashlib
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyhost.dtypes import DType
from tinyhost.ops import INT32_MAX, INT32_MIN, OP_SPECS, Opcode, OpDef

if TYPE_CHECKING:  # type-only: tinyhost.plan imports this module
    from tinyhost.plan import Op, Plan, Tensor

SHA256_SIZE = 32
UINT32_MAX = 2**32 - 1
SIZE_MAX = 2**64 - 1  # size_t of the host build the C tests run (see _Zcbor)
BODY_DEPTH = 6  # plan.c MAX_DEPTH: body > tensors > tensor > shape, and meta within it
N_DTYPES, N_KINDS = 3, 7  # tt_dtype, tt_tensor_kind
KIND_PARAM_TRAINABLE = 4  # TensorKind.PARAM_TRAINABLE
MAX_OPERANDS = 255  # an op's inputs, outputs and attributes each (tt_op's uint8_t counts)


class Refused(ValueError):
    """A plan the firmware refuses; the message names what and where (tinyhost.plan raises it
    as PlanError)."""


# --- stage 1: the CBOR structure as plan.c decodes it --------------------------------------------

class _Fail(Exception):
    """A zcbor decoding function returned false."""


@dataclass
class _State:
    pos: int
    end: int
    count: int  # zcbor's elem_count: items left in the current container
    indefinite: bool = False


class _Zcbor:
    """The zcbor decoding functions plan.c calls, on `data[start:end]`, with `backups` container
    levels (ZCBOR_STATE_D's num_backups). Each method raises _Fail where zcbor returns false."""

    def __init__(self, data: bytes, start: int, end: int, elem_count: int, backups: int) -> None:
        self.d = data
        self.s = _State(start, end, elem_count)
        self.saved: list[_State] = []
        self.backups = backups

    # value_extract(): the header's argument, from the header or the 1/2/4/8 bytes after it, into
    # a result of `size` bytes (an encoding wider than the result is refused, whatever the value).
    def _value(self, size: int, indefinite_ok: bool = False) -> int | None:
        s = self.s
        if s.pos >= s.end or s.count == 0:
            raise _Fail
        additional = self.d[s.pos] & 0x1F
        if additional == 31 and indefinite_ok:
            s.pos += 1
            s.count -= 1
            return None
        if additional > 27:
            raise _Fail
        n = 0 if additional < 24 else 1 << (additional - 24)
        if n > size or s.pos + n + 1 > s.end:
            raise _Fail
        value = additional if n == 0 else int.from_bytes(self.d[s.pos + 1:s.pos + 1 + n], "big")
        s.pos += n + 1
        s.count -= 1
        return value

    def _major(self) -> int:
        if self.s.pos >= self.s.end:
            raise _Fail
        return self.d[self.s.pos] >> 5

    def _type(self, major: int) -> None:
        if self._major() != major:
            raise _Fail

    def uint32(self) -> int:
        self._type(0)
        v = self._value(4)
        assert v is not None
        return v

    def int32(self) -> int:
        major = self._major()
        if major not in (0, 1):
            raise _Fail
        v = self._value(4)
        assert v is not None
        if v > INT32_MAX:  # val_to_int: the top bit of the 4-byte result must be clear
            raise _Fail
        return v if major == 0 else -1 - v

    def float(self) -> float:
        """zcbor_float_decode: a half, single or double float (major type 7 only)."""
        self._type(7)
        additional = self.d[self.s.pos] & 0x1F
        fmt = {25: ">e", 26: ">f", 27: ">d"}.get(additional)
        if fmt is None:
            raise _Fail
        start = self.s.pos + 1
        self._value(struct.calcsize(fmt))
        return float(struct.unpack(fmt, self.d[start:self.s.pos])[0])

    def _str(self, major: int) -> tuple[int, int]:
        """bstr/tstr: (start, length) of the payload, which must lie within the end."""
        self._type(major)
        n = self._value(8)
        assert n is not None
        if n > self.s.end - self.s.pos:
            raise _Fail
        start = self.s.pos
        self.s.pos += n
        return start, n

    def bstr(self) -> tuple[int, int]:
        return self._str(2)

    def tstr(self) -> tuple[int, int]:
        return self._str(3)

    def _start(self, major: int) -> None:
        self._type(major)
        n = self._value(8, indefinite_ok=True)
        if len(self.saved) >= self.backups:  # zcbor_new_backup: no backup left
            raise _Fail
        self.saved.append(_State(self.s.pos, self.s.end, self.s.count, self.s.indefinite))
        if n is None:
            self.s.count, self.s.indefinite = SIZE_MAX - 15, True  # ZCBOR_LARGE_ELEM_COUNT
        else:
            self.s.count, self.s.indefinite = n, False
            if major == 5:  # a map: twice its pairs, if that fits size_t
                if n >= SIZE_MAX // 2:
                    raise _Fail
                self.s.count = 2 * n

    def list_start(self) -> None:
        self._start(4)

    def map_start(self) -> None:
        self._start(5)

    def at_end(self) -> bool:
        s = self.s
        if s.indefinite:
            return s.pos < s.end and self.d[s.pos] == 0xFF
        return s.count == 0

    def list_end(self) -> None:
        """zcbor_list_end_decode (and map_end): a definite container must be used up, an
        indefinite one must end with its break byte here."""
        s = self.s
        max_count = 0
        if s.indefinite:
            if s.pos >= s.end or self.d[s.pos] != 0xFF:
                raise _Fail
            s.pos += 1
            max_count = SIZE_MAX
        if not self.saved:
            raise _Fail
        parent = self.saved.pop()
        left = s.count
        self.s = _State(s.pos, parent.end, parent.count, parent.indefinite)
        if left > max_count:
            raise _Fail

    def tag(self) -> None:
        self._type(6)
        self._value(4)
        self.s.count += 1

    def any_skip_scalar(self) -> None:
        """zcbor_any_skip on an item that is not a container (its tags already taken)."""
        item = self.s.pos
        major = self._major()
        n = self._value(8)
        assert n is not None
        if major in (2, 3):
            # zcbor checks the length against the bytes left from the item's header, not from
            # its payload; a string that overruns by up to its header's size moves the position
            # past the end, which every later read refuses.
            if n > self.s.end - item:
                raise _Fail
            self.s.pos += n

    def skip_item(self) -> None:
        """plan.c skip_item: tags, then a scalar, or a container entered with a backup."""
        while self.s.pos < self.s.end and self.d[self.s.pos] >> 5 == 6:
            self.tag()
        major = self._major()
        if major not in (4, 5):
            self.any_skip_scalar()
            return
        self._start(major)
        while not self.at_end():
            self.skip_item()
        self.list_end()


@dataclass
class RawTensor:
    dtype: int
    kind: int
    nbytes: int
    arena_offset: int
    data_offset: int
    shape: list[int]
    name: bytes


@dataclass
class RawOp:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    attrs: list[int]


@dataclass
class RawPlan:
    """A plan file's body as plan.c decodes it, before tt_plan_check."""
    arena_size: int
    n_forward: int
    bindings: list[int]  # input, label, logits, loss, pred
    num_classes: int
    default_lr: float
    tensors: list[RawTensor] = field(default_factory=list)
    ops: list[RawOp] = field(default_factory=list)
    meta: bytes = b""      # the meta item's CBOR bytes
    blob: bytes = b""
    blob_at: int = 0       # the blob's offset in the file (its alignment matters)
    digest: bytes = b""


def _malformed(what: str) -> Refused:
    return Refused(f"malformed plan: {what}")


def _open_file(data: bytes, version_read: int) -> tuple[int, int, bytes]:
    """plan.c open_file: [version, body, sha256(body)] and nothing after it; (body start, body
    length, digest)."""
    z = _Zcbor(data, 0, len(data), 1, 2)
    try:
        z.list_start()
        version = z.uint32()
    except _Fail:
        raise Refused("not a tinytrain plan: the file is corrupt or truncated") from None
    if version != version_read:
        raise Refused(f"plan format version {version} is not supported: this tinyhost reads "
                      f"version {version_read}; recompile the model with this tinyhost")
    try:
        body_at, body_len = z.bstr()
        digest_at, digest_len = z.bstr()
        if digest_len != SHA256_SIZE:
            raise _Fail
        z.list_end()
    except _Fail:
        raise Refused("plan file is corrupt or truncated") from None
    if z.s.pos != len(data):
        raise Refused(f"plan file has {len(data) - z.s.pos} bytes of trailing data: "
                      "the file is corrupt")
    body = data[body_at:body_at + body_len]
    digest = data[digest_at:digest_at + digest_len]
    if hashlib.sha256(body).digest() != digest:
        raise Refused("plan content hash does not match: the file is corrupt")
    return body_at, body_len, digest


def _i32_list(z: _Zcbor) -> list[int]:
    z.list_start()
    out = []
    while not z.at_end():
        out.append(z.int32())
    z.list_end()
    return out


def _tensor(z: _Zcbor, index: int) -> RawTensor:
    """plan.c decode_tensor."""
    try:
        z.list_start()
        dtype, kind, nbytes = z.uint32(), z.uint32(), z.uint32()
        arena_offset, data_offset = z.int32(), z.int32()
        z.list_start()
    except _Fail:
        raise _malformed(f"tensor {index}: entry") from None
    shape, numel = [], 1
    while not z.at_end():
        try:
            dim = z.uint32()
        except _Fail:
            raise _malformed(f"tensor {index}: shape") from None
        numel *= dim
        if numel > UINT32_MAX:
            raise _malformed(f"tensor {index} is too large")
        shape.append(dim)
    try:
        z.list_end()
        name_at, name_len = z.tstr()
        z.list_end()
    except _Fail:
        raise _malformed(f"tensor {index}: entry") from None
    if dtype >= N_DTYPES or kind >= N_KINDS:
        raise Refused(f"malformed plan: tensor {index}: unknown dtype {dtype} or kind {kind}")
    if numel * DType(dtype).itemsize != nbytes:
        raise Refused(f"malformed plan: tensor {index}: {nbytes} bytes do not match its shape "
                      f"{shape}")
    return RawTensor(dtype, kind, nbytes, arena_offset, data_offset, shape,
                     z.d[name_at:name_at + name_len])


def _op(z: _Zcbor, index: int) -> RawOp:
    """plan.c decode_op_entry."""
    try:
        z.list_start()
        opcode = z.uint32()
        inputs = _i32_list(z)
    except _Fail:
        raise _malformed(f"op {index}: entry") from None
    try:
        outputs = _i32_list(z)
    except _Fail:
        raise _malformed(f"op {index}: outputs") from None
    try:
        attrs = _i32_list(z)
        z.list_end()
    except _Fail:
        raise _malformed(f"op {index}: attributes") from None
    if max(len(inputs), len(outputs), len(attrs)) > MAX_OPERANDS:
        raise Refused(f"malformed plan: op {index} has too many operands or attributes")
    return RawOp(opcode, inputs, outputs, attrs)


def parse_plan_file(data: bytes, version: int) -> RawPlan:
    """The `.ttp` file of format `version` as the firmware decodes it (plan.c: open_file,
    walk_body); Refused names the first thing it refuses."""
    body_at, body_len, digest = _open_file(data, version)
    z = _Zcbor(data, body_at, body_at + body_len, 1, BODY_DEPTH)
    try:
        z.list_start()
        arena_size, n_forward = z.uint32(), z.uint32()
        z.list_start()
        bindings = [z.int32() for _ in range(5)]
        z.list_end()
        num_classes = z.int32()
        lr = z.float()
    except _Fail:
        raise _malformed("header") from None
    plan = RawPlan(arena_size, n_forward, bindings, num_classes, lr, digest=digest)
    try:
        z.list_start()
    except _Fail:
        raise _malformed("tensor table") from None
    while not z.at_end():
        plan.tensors.append(_tensor(z, len(plan.tensors)))
    try:
        z.list_end()
        z.list_start()
    except _Fail:
        raise _malformed("op list") from None
    while not z.at_end():
        plan.ops.append(_op(z, len(plan.ops)))
    try:
        z.list_end()
        meta_at = z.s.pos
        z.skip_item()
        meta_end = z.s.pos
        z.bstr()  # the padding
        blob_at, blob_len = z.bstr()
        z.list_end()
    except _Fail:
        raise _malformed("trailer (meta, blob)") from None
    plan.meta = data[meta_at:meta_end]
    plan.blob, plan.blob_at = data[blob_at:blob_at + blob_len], blob_at
    return plan


# --- stage 2: plan_check.c -----------------------------------------------------------------------

def _integer(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        operator.index(v)
    except TypeError:
        return False
    return True


def _encodable_problem(plan: Plan) -> str | None:
    """What the decoder would refuse in an in-memory plan once encoded (tinyhost.plan.encode_plan):
    numbers outside the widths plan.c reads, unknown dtypes or kinds, tensors over 4 GB, too many
    operands. A plan decoded from a file passes by construction."""
    def u32(v: Any) -> bool:
        return _integer(v) and 0 <= v <= UINT32_MAX

    def i32(v: Any) -> bool:
        return _integer(v) and INT32_MIN <= v <= INT32_MAX

    b = plan.bindings
    if not (u32(plan.arena_size) and u32(plan.n_forward) and i32(plan.num_classes)
            and all(i32(i) for i in (b.input, b.label, b.logits, b.loss, b.pred))):
        return "malformed plan: header (a number outside its range)"
    for i, t in enumerate(plan.tensors):
        if not (_integer(t.dtype) and 0 <= t.dtype < N_DTYPES
                and _integer(t.kind) and 0 <= t.kind < N_KINDS):
            return f"malformed plan: tensor {i}: unknown dtype {t.dtype} or kind {t.kind}"
        numel = 1
        for dim in t.shape:
            if not u32(dim):
                return f"malformed plan: tensor {i} ({t.name!r}): shape {t.shape}"
            numel *= dim
            if numel > UINT32_MAX:
                return f"malformed plan: tensor {i} ({t.name!r}) is too large"
        if not (u32(numel * DType(t.dtype).itemsize) and i32(t.arena_offset)
                and i32(t.data_offset) and isinstance(t.name, str)):
            return f"malformed plan: tensor {i} ({t.name!r}): a number outside its range"
    for k, op in enumerate(plan.ops):
        if not (u32(op.opcode) and all(i32(v) for v in [*op.inputs, *op.outputs, *op.attrs])):
            return f"malformed plan: op {k}: a number outside its range"
        if max(len(op.inputs), len(op.outputs), len(op.attrs)) > MAX_OPERANDS:
            return f"malformed plan: op {k} has too many operands or attributes"
    return None


def _tensors_problem(plan: Plan, blob_at: int) -> str | None:
    """tt_plan_check's tensor loop: arena tensors within arena_size and 4-byte aligned, blob
    data within the blob and 4-byte aligned in the file (the blob's own alignment included),
    storage somewhere, trainable tensors in the arena (initialised from the blob)."""
    for i, t in enumerate(plan.tensors):
        in_arena = t.arena_offset >= 0
        if in_arena and (t.arena_offset + t.nbytes > plan.arena_size or t.arena_offset % 4):
            return (f"tensor {i} ({t.name!r}, {t.nbytes} bytes at {t.arena_offset}) lies outside "
                    f"the {plan.arena_size}-byte arena or is misaligned")
        if t.data_offset >= 0:
            if t.data_offset + t.nbytes > len(plan.blob) or (blob_at + t.data_offset) % 4:
                return (f"tensor {i} ({t.name!r}) data lies outside the {len(plan.blob)}-byte "
                        "constant blob or is misaligned")
        elif not in_arena or t.kind == KIND_PARAM_TRAINABLE:
            return f"tensor {i} ({t.name!r}) has no storage"
        if t.kind == KIND_PARAM_TRAINABLE and not in_arena:
            return f"trainable tensor {i} ({t.name!r}) is not in the arena"
    return None


# A binding: (name, required dtype or None, must hold exactly one 4-byte value).
_BINDINGS = (("input", None, False), ("label", DType.S32, True), ("logits", DType.F32, False),
             ("loss", DType.F32, True), ("pred", DType.S32, True))


def _bindings_problem(plan: Plan) -> str | None:
    """check_binding for each, then num_classes against the logits, then n_forward."""
    n = len(plan.tensors)
    for name, dtype, scalar in _BINDINGS:
        i = getattr(plan.bindings, name)
        if (not 0 <= i < n or plan.tensors[i].arena_offset < 0
                or (dtype is not None and plan.tensors[i].dtype != dtype)
                or (scalar and plan.tensors[i].nbytes != 4)):
            return f"plan binding '{name}' (tensor {i}) is not a valid arena tensor"
    logits = plan.tensors[plan.bindings.logits].nbytes
    if plan.num_classes > 0 and 4 * plan.num_classes > UINT32_MAX:
        # (The firmware computes 4 * num_classes in 32 bits, which wraps around here.)
        return f"num_classes ({plan.num_classes}) is too large: 4 * num_classes exceeds uint32"
    if plan.num_classes <= 0 or logits != 4 * plan.num_classes:
        return f"the logits ({logits} bytes) do not hold num_classes ({plan.num_classes}) values"
    if not 0 < plan.n_forward <= len(plan.ops):
        return f"forward op count {plan.n_forward} out of range (the plan has {len(plan.ops)} ops)"
    return None


class OpView:
    """An op as its registry rules (ops.OpDef.problem) see it: operands and attributes by name."""

    def __init__(self, plan: Plan, spec: OpDef, op: Op) -> None:
        self.plan, self.spec = plan, spec
        self.a = dict(zip(spec.attrs, op.attrs, strict=True))
        self._operands = dict(zip((o.name for o in spec.operands), [*op.inputs, *op.outputs],
                                   strict=True))
        self._dtypes = {o.name: o.dtype for o in spec.operands}

    def index(self, name: str) -> int:
        """Operand `name`'s tensor index (-1 when absent)."""
        return self._operands[name]

    def present(self, name: str) -> bool:
        return self._operands[name] >= 0

    def tensor(self, name: str) -> Tensor:
        return self.plan.tensors[self._operands[name]]

    def values(self, name: str) -> np.ndarray | None:
        """A constant operand's values (from the blob, as the registry's dtype), None for an arena
        tensor: what the arena holds when the firmware checks the plan is not the plan's."""
        t = self.tensor(name)
        if t.arena_offset >= 0:
            return None
        raw = self.plan.blob[t.data_offset:t.data_offset + t.nbytes]
        return np.frombuffer(raw, dtype=self._dtypes[name].numpy)


def _operands_problem(plan: Plan, spec: OpDef, op: Op, numel: Sequence[int]) -> str | None:
    """tt_op_check_operands: every operand present unless optional, a valid tensor index, the
    registered dtype, numel elements; outputs in the arena."""
    n_in = len(spec.ins)
    for i, (opnd, t, n) in enumerate(zip(spec.operands, [*op.inputs, *op.outputs], numel,
                                                  strict=True)):
        if t < 0 and opnd.optional:
            continue
        if not 0 <= t < len(plan.tensors):
            return f"operand {i} ({opnd.name}) names tensor {t}"
        tensor = plan.tensors[t]
        need = n * opnd.dtype.itemsize
        if tensor.dtype != opnd.dtype or tensor.nbytes != need:
            return (f"operand {i} ({opnd.name}) is tensor {t} ({tensor.name!r}, "
                    f"{DType(tensor.dtype).name} of {tensor.nbytes} bytes); its attributes "
                    f"need {opnd.dtype.name} of {need} bytes")
        if i >= n_in and tensor.arena_offset < 0:
            return f"operand {i} ({opnd.name}) writes constant tensor {t} ({tensor.name!r})"
    return None


def _op_problem(plan: Plan, op: Op) -> str | None:
    """plan_check.c check_op: registration, counts, attribute ranges, then the op's check."""
    spec = OP_SPECS.get(op.opcode)
    if spec is None:
        return f"opcode {int(op.opcode)} is not supported by this firmware"
    if (len(op.inputs), len(op.outputs), len(op.attrs)) != (len(spec.ins), len(spec.outs),
                                                           len(spec.attr_defs)):
        return (f"wrong operand count: {len(op.inputs)} inputs, {len(op.outputs)} outputs, "
                f"{len(op.attrs)} attributes; {spec.name} has {len(spec.ins)}, {len(spec.outs)}, "
                f"{len(spec.attr_defs)}")
    for attr, v in zip(spec.attr_defs, op.attrs, strict=True):
        lo, hi = attr.range.bounds
        if not lo <= v <= hi:
            return f"impossible attributes: {attr.name} = {v} is outside [{lo}, {hi}]"
    assert spec.sizes is not None, f"{spec.name}: no plan-check rules in its OpDef"
    numel = spec.sizes(dict(zip(spec.attrs, op.attrs, strict=True)))
    if numel is None:
        return "impossible attributes (" + ", ".join(
            f"{n}={v}" for n, v in zip(spec.attrs, op.attrs, strict=True)) + ")"
    problem = _operands_problem(plan, spec, op, numel)
    if problem is None and spec.problem is not None:
        problem = spec.problem(OpView(plan, spec, op))
    return problem


def plan_problem(plan: Plan, blob_at: int = 0) -> str | None:
    """What the firmware refuses in a plan (tt_plan_check, and what decoding its encoding
    would), or None. `blob_at` is the blob's offset in the plan file (0 for a plan in memory:
    encode_plan aligns it)."""
    problem = (_encodable_problem(plan) or _tensors_problem(plan, blob_at)
               or _bindings_problem(plan))
    if problem is not None:
        return problem
    for k, op in enumerate(plan.ops):
        problem = _op_problem(plan, op)
        if problem is not None:
            name = Opcode(op.opcode).name if op.opcode in OP_SPECS else "unknown opcode"
            return f"op {k} ({name}): {problem}"
    return None
