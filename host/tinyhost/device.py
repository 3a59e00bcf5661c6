"""A device as the training commands see it: a board or simulator over the link, or the
reference executor in-process (`--port ref`). Both take numpy samples and return the same results,
so every command runs unchanged on either."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Protocol

import numpy as np

from tinyhost import __version__
from tinyhost.boards import board_for_info, tables_lower_bound
from tinyhost.keys import read_key
from tinyhost.link.client import DeviceClient, DeviceError, StepReply
from tinyhost.link.transport import open_link
from tinyhost.lr import lr_ok
from tinyhost.ops import Opcode
from tinyhost.plan import PLAN_FORMAT_VERSION, Plan, TensorKind, plan_hash
from tinyhost.refexec.executor import RefExecutor, prepare_input
from tinyhost.refexec.registry import NonFiniteStep

PAYLOAD_MARGIN = 32  # CBOR framing of a chunk message around its bytes
UNSUPPORTED_OP = -8  # TT_ERR_UNSUPPORTED_OP, what the firmware answers for such a plan
PLAN_ARENA = -6      # TT_ERR_PLAN_ARENA: the plan needs a larger arena than the device has
NONFINITE = -15      # TT_ERR_NONFINITE: a NaN/inf loss, or an update refused (nothing written)
ERR_ARG = -1         # TT_ERR_ARG: an impossible request field (e.g. the learning rate)
STORAGE = -14        # TT_ERR_STORAGE: the device's store (a file, flash) cannot save


def check_lr(lr: float) -> None:
    """TRAIN's learning rate as a board checks it (tt_check_lr), so `--port ref` refuses what a
    board refuses, with its error."""
    if not lr_ok(lr):
        raise DeviceError(ERR_ARG, "TRAIN: the learning rate must be a finite number above 0")


@dataclass
class DeviceInfo:
    firmware: str
    protocol: int
    plan_format: int
    board: str
    arena_capacity: int
    plan_capacity: int
    max_payload: int
    cost_unit: str
    plan_loaded: bool
    plan_hash: bytes
    arena_used: int
    steps: int
    ops: list[int]
    stack_peak: int | None = None  # peak stack bytes since boot, from ports that measure it
    plan_slots: int = 2  # 1: an upload replaces the running plan as soon as it begins
    checkpoints: bool = False  # CHECKPOINT saves the trained state (a store file or flash)
    auth: bool = False  # provisioned with a key: requests need its MAC (docs/security.md)
    plan_signatures: bool = False  # takes only signed plans (compile --sign-key)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["plan_hash"] = self.plan_hash.hex()
        return d


class Device(Protocol):
    name: str

    def info(self) -> DeviceInfo: ...
    def load_plan(self, plan: Plan, data: bytes,
                  progress: Callable[[int], None] | None = None,
                  signature: bytes | None = None) -> bool: ...
    def train_step(self, x: np.ndarray, label: int, lr: float) -> StepReply: ...
    def evaluate(self, x: np.ndarray) -> int: ...
    def read_tensor(self, index: int) -> np.ndarray: ...
    def write_tensor(self, index: int, value: np.ndarray) -> None: ...
    def checkpoint(self) -> None: ...
    def close(self) -> None: ...


def _tensor_bytes(plan: Plan, index: int, value: np.ndarray) -> bytes:
    """A trainable tensor's new value as the device holds it: its dtype and shape exactly (a
    device refuses any other tensor, so --port ref does too)."""
    t = plan.tensors[index]
    if t.kind != TensorKind.PARAM_TRAINABLE:
        raise DeviceError(ERR_ARG, "WRITE_TENSOR: not a trainable parameter of the plan")
    if tuple(value.shape) != tuple(t.shape) or value.dtype != t.dtype.numpy:
        raise ValueError(f"{t.name}: got {value.dtype} {tuple(value.shape)}, the plan holds "
                         f"{t.dtype.numpy} {tuple(t.shape)}")
    return np.ascontiguousarray(value).tobytes()


def _sample_bytes(plan: Plan, x: np.ndarray) -> bytes:
    """The input tensor's bytes; float samples for an int8 input are quantized with the plan's
    meta["input_quant"] (the same function the reference executor uses)."""
    return prepare_input(plan, x).tobytes()


class SerialDevice:
    """A device behind the link protocol (a board, `sim`, or a pyserial URL)."""

    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.name = client.link.name
        self.plan: Plan | None = None
        self._info = self.info()
        if self._info.plan_format != PLAN_FORMAT_VERSION:
            raise DeviceError(-4, f"device reads plan format {self._info.plan_format}, this "
                                  f"tinyhost writes {PLAN_FORMAT_VERSION}: update one of them")
        self.chunk = self._info.max_payload - PAYLOAD_MARGIN

    def info(self) -> DeviceInfo:
        reply = self.client.hello()
        known = {f.name for f in fields(DeviceInfo)}
        required = {f.name for f in fields(DeviceInfo) if f.default is MISSING}  # not optional keys
        missing = required - reply.keys()
        if missing:
            raise DeviceError(-10, f"{self.name} answered HELLO without {sorted(missing)}: "
                                   "not a tinytrain device, or an incompatible firmware")
        return DeviceInfo(**{k: v for k, v in reply.items() if k in known})  # newer keys ignored

    def load_plan(self, plan: Plan, data: bytes,
                  progress: Callable[[int], None] | None = None,
                  signature: bytes | None = None) -> bool:
        """Uploads the plan unless the device already runs it (then its trained parameters are
        kept). Returns True when it uploaded. `signature` (PLAN.sig, tinyhost.plansign) goes
        with the plan to a device that takes only signed plans."""
        self.plan = plan
        info = self.info()
        if info.plan_loaded and info.plan_hash == plan_hash(data):
            return False
        missing = sorted({op.opcode for op in plan.ops} - set(info.ops))
        if info.ops and missing:  # the device would refuse it after the upload
            names = ", ".join(Opcode(o).name for o in missing)
            raise DeviceError(UNSUPPORTED_OP,
                              f"{self.name} (firmware {info.firmware}) does not run {names}, "
                              "which this plan uses; the reference executor (--port ref) does")
        self.check_fits(plan, info)
        self.client.upload_plan(data, self.chunk, progress, arena=plan.arena_size,
                                signature=signature if info.plan_signatures else None)
        return True

    def check_fits(self, plan: Plan, info: DeviceInfo) -> None:
        """Refuses, before a byte of the plan is sent, a plan whose arena and decoded tables
        exceed the device's arena (INFO arena_capacity): the same rule as the compiler's
        verdict (tinyhost.boards) and the device's own check at PLAN_COMMIT. The tables are
        the model of the board INFO names, or the fewest any known board needs."""
        model = board_for_info(info.board)
        tables = model.ram_tables(plan) if model else tables_lower_bound(plan)
        if plan.arena_size + tables > info.arena_capacity:
            over = plan.arena_size + tables - info.arena_capacity
            who = self.name if info.board in self.name else f"{self.name} ({info.board})"
            raise DeviceError(PLAN_ARENA, f"plan needs an arena of {plan.arena_size} bytes"
                                          f"{f' (+{tables} for its tables)' if tables else ''}, "
                                          f"{who} has {info.arena_capacity}: {over} bytes too "
                                          "many; not uploaded")

    def _need_plan(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("load_plan() first")
        return self.plan

    def train_step(self, x: np.ndarray, label: int, lr: float) -> StepReply:
        plan = self._need_plan()
        if not -2**31 <= label < 2**31:  # the device checks the class range itself
            raise ValueError(f"label {label} outside [0, {plan.num_classes})")
        sample = _sample_bytes(plan, x)
        if len(sample) > self.client.chunk_size(self.chunk):
            self.client.write_input(sample, self.chunk)
            sample = b""
        return self.client.train(sample, int(label), float(lr))

    def evaluate(self, x: np.ndarray) -> int:
        sample = _sample_bytes(self._need_plan(), x)
        if len(sample) > self.client.chunk_size(self.chunk):
            self.client.write_input(sample, self.chunk)
            sample = b""
        return self.client.evaluate(sample)

    def read_tensor(self, index: int) -> np.ndarray:
        t = self._need_plan().tensors[index]
        raw = self.client.read_tensor(index, t.nbytes, self.chunk)
        return np.frombuffer(raw, dtype=t.dtype.numpy).reshape(t.shape).copy()

    def write_tensor(self, index: int, value: np.ndarray) -> None:
        self.client.write_tensor(index, _tensor_bytes(self._need_plan(), index, value),
                                 self.chunk)

    def checkpoint(self) -> None:
        self.client.checkpoint()

    def reset(self) -> None:
        self.client.reset()

    def close(self) -> None:
        self.client.close()


class RefDevice:
    """The numpy reference executor behind the device interface (`--port ref`)."""

    def __init__(self) -> None:
        self.name = "ref"
        self.plan: Plan | None = None
        self.data = b""
        self.exec: RefExecutor | None = None

    def info(self) -> DeviceInfo:
        loaded = self.exec is not None
        return DeviceInfo(
            firmware=f"tinyhost {__version__} reference executor (numpy)", protocol=1,
            plan_format=PLAN_FORMAT_VERSION, board="ref", arena_capacity=0, plan_capacity=0,
            max_payload=0, cost_unit="none", plan_loaded=loaded,
            plan_hash=plan_hash(self.data) if loaded else b"",
            arena_used=self.plan.arena_size if self.plan else 0,
            steps=self.exec.steps if self.exec else 0, ops=[])

    def load_plan(self, plan: Plan, data: bytes,
                  progress: Callable[[int], None] | None = None,
                  signature: bytes | None = None) -> bool:
        if self.exec is not None and plan_hash(data) == plan_hash(self.data):
            return False
        self.plan, self.data, self.exec = plan, data, RefExecutor(plan)
        if progress:
            progress(len(data))
        return True

    def _need(self) -> RefExecutor:
        if self.exec is None:
            raise RuntimeError("load_plan() first")
        return self.exec

    def train_step(self, x: np.ndarray, label: int, lr: float) -> StepReply:
        ex = self._need()
        check_lr(lr)
        try:
            r = ex.train_step(x, int(label), lr)
        except NonFiniteStep as e:  # what the firmware answers: ERROR TT_ERR_NONFINITE
            raise DeviceError(NONFINITE, str(e)) from None
        return StepReply(r.loss, r.pred, 0, ex.steps)

    def evaluate(self, x: np.ndarray) -> int:
        return self._need().evaluate(x)

    def read_tensor(self, index: int) -> np.ndarray:
        return self._need().read_tensor(index)

    def write_tensor(self, index: int, value: np.ndarray) -> None:
        ex = self._need()
        ex.view(index)[...] = np.frombuffer(_tensor_bytes(ex.plan, index, value),
                                            ex.plan.tensors[index].dtype.numpy)

    def checkpoint(self) -> None:
        raise DeviceError(STORAGE, "CHECKPOINT: this device keeps no checkpoints")

    def reset(self) -> None:
        self._need().reset_parameters()

    def close(self) -> None:
        pass


def connect(port: str, key_file: str | None = None) -> SerialDevice | RefDevice:
    """`ref`, `sim`, a serial device path, or a pyserial URL. With key_file (tinyhost keygen's
    file) every request carries its MAC and every reply is checked (docs/security.md); `sim`
    then starts a simulated device provisioned with it, and `ref` (in-process) needs none."""
    if port == "ref":
        return RefDevice()
    key = read_key(key_file) if key_file is not None else None
    link = open_link(port, sim_key=key_file)
    try:
        return SerialDevice(DeviceClient(link, key))
    except BaseException:
        link.close()
        raise
