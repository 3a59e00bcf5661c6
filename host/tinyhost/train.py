"""On-device training driven from the host: stream samples, record what the device reports,
evaluate on the device after each epoch. No numerics happen here; the device does the training."""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyhost.datasets import Dataset
from tinyhost.device import NONFINITE, Device
from tinyhost.layout import check_shape
from tinyhost.link.client import DeviceError
from tinyhost.live import LiveView
from tinyhost.ops import Opcode
from tinyhost.plan import Plan, TensorKind
from tinyhost.progress import bar_off

CSV_FIELDS = ["step", "epoch", "sample", "label", "pred", "loss", "correct", "cost",
              "test_accuracy"]


@dataclass
class StepRecord:
    step: int
    epoch: int
    sample: int
    label: int
    pred: int
    loss: float
    cost: int
    test_accuracy: float | None = None


@dataclass
class TrainConfig:
    epochs: int
    lr: float
    seed: int = 0
    shuffle: bool = True
    max_steps: int | None = None  # stop after this many steps in all
    progress: bool = True
    start_step: int = 0         # resume: the device has made this many steps of this run already
    checkpoint_every: int = 0   # have the device save its state every N steps (and at the end)
    log: MetricsLog | None = None  # each step's row is written as training goes
    live: LiveView | None = None   # `train --live`: curves redrawn in the terminal (no bar then)
    # Loss blow-up: stop when the mean of the last `blowup_window` losses exceeds
    # `blowup_factor` x the reference loss: the first step's (taken before any update, so a run
    # that diverges at once cannot raise its own bar), at least ln(classes), a uniform guess's
    # loss (so a run starting near 0 loss is not stopped by ordinary noise). 0 disables it. A
    # NaN/inf loss or update stops training always (the device refuses it).
    blowup_factor: float = 4.0
    blowup_window: int = 20


@dataclass
class LossWatch:
    """The blow-up rule of TrainConfig, fed one loss per step."""
    factor: float
    window: int
    floor: float  # ln(classes)
    first: float | None = None
    recent: list[float] = field(default_factory=list)

    def add(self, loss: float) -> str | None:
        """None, or why the loss has blown up."""
        if self.factor <= 0 or self.window <= 0:
            return None
        if self.first is None:
            self.first = loss
        self.recent = (self.recent + [loss])[-self.window:]
        if len(self.recent) < self.window:
            return None
        ref = max(self.first, self.floor)
        mean = sum(self.recent) / self.window
        if mean > self.factor * ref:
            return (f"the loss blew up: the mean of the last {self.window} losses is {mean:.3g}, "
                    f"over {self.factor:g}x its reference {ref:.3g} (the first step's loss, at "
                    f"least ln(classes) = {self.floor:.3g})")
        return None


def describe_nonfinite(plan: Plan | None, message: str) -> str:
    """The device's TT_ERR_NONFINITE message (`op K (opcode N) failed: ...`) in words: which op
    and which tensor it would have written."""
    m = re.search(r"op (\d+) \(opcode", message)
    if plan is None or m is None or int(m.group(1)) >= len(plan.ops):
        return f"the device refused a non-finite value ({message})"
    op = plan.ops[int(m.group(1))]
    name = Opcode(op.opcode).name if op.opcode in Opcode._value2member_map_ else str(op.opcode)
    if op.opcode == Opcode.SOFTMAX_XENT_F32:
        return f"the loss is NaN or infinite (op {m.group(1)}, {name}); no update was applied"
    target = next((plan.tensors[i].name for i in op.inputs
                   if i >= 0 and plan.tensors[i].kind == TensorKind.PARAM_TRAINABLE), None)
    return (f"the device refused a NaN/infinite update (op {m.group(1)}, {name}"
            f"{f' of {target}' if target else ''}); that update was not applied")




@dataclass
class TrainResult:
    records: list[StepRecord] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # per epoch, during training
    test_accuracy: list[float] = field(default_factory=list)   # per epoch, on the device
    interrupted: str | None = None                             # why training stopped early
    diverged: bool = False  # stopped by a NaN/inf loss or update, or a loss blow-up

    @property
    def losses(self) -> list[float]:
        return [r.loss for r in self.records]

    @property
    def epoch_ends(self) -> list[int]:
        return [r.step for r in self.records if r.test_accuracy is not None]

    def summary(self) -> dict:
        last = self.records[-1] if self.records else None
        return {
            "steps": len(self.records),
            "epochs": len(self.train_accuracy),
            "final_loss": last.loss if last else None,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "interrupted": self.interrupted,
            "diverged": self.diverged,
        }


def check_dataset(plan: Plan, ds: Dataset) -> None:
    # the shape, not only the count: NHWC data in an NCHW plan has the same count (layout.py)
    check_shape(ds, plan.tensors[plan.bindings.input].shape)
    labels = np.concatenate([ds.y_train, ds.y_test])
    if labels.size and (labels.min() < 0 or labels.max() >= plan.num_classes):
        raise ValueError(f"dataset labels span {labels.min()}..{labels.max()}, the plan has "
                         f"{plan.num_classes} classes")


def evaluate(device: Device, x: np.ndarray, y: np.ndarray, desc: str = "eval",
             progress: bool = True) -> tuple[float, np.ndarray]:
    preds = np.array([device.evaluate(x[i]) for i in tqdm(range(len(x)), desc=desc, leave=False,
                                                          disable=bar_off(not progress),
                                                          unit="sample")],
                     dtype=np.int64)
    return (float(np.mean(preds == y)) if len(y) else 0.0), preds


def train(device: Device, ds: Dataset, cfg: TrainConfig) -> TrainResult:
    """Trains until done, a step limit, Ctrl-C or a link failure; whatever was recorded is in the
    result either way (`interrupted` says why it stopped early). A resumed run (start_step) draws
    the same sample order and skips what the device has done."""
    result = TrainResult()
    rng = np.random.default_rng(cfg.seed)
    total = len(ds.x_train) * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    bar = tqdm(total=total, initial=min(cfg.start_step, total), desc="training", unit="step",
               disable=bar_off(not cfg.progress or cfg.live is not None))
    plan: Plan | None = getattr(device, "plan", None)
    watch = LossWatch(cfg.blowup_factor, cfg.blowup_window,
                      math.log(plan.num_classes) if plan and plan.num_classes > 1 else 0.0)
    step = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            order = rng.permutation(len(ds.x_train)) if cfg.shuffle else np.arange(len(ds.x_train))
            correct = seen = 0
            loss_sum = 0.0
            for position, i in enumerate(order):
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    break
                if step < cfg.start_step:  # done before the checkpoint the device resumed from
                    step += 1
                    continue
                label = int(ds.y_train[i])
                try:
                    reply = device.train_step(ds.x_train[i], label, cfg.lr)
                except DeviceError as e:
                    if e.code != NONFINITE:
                        raise
                    result.diverged = True
                    result.interrupted = (f"step {step + 1} (epoch {epoch}): "
                                          f"{describe_nonfinite(plan, e.message)}")
                    break
                step += 1
                seen += 1
                correct += int(reply.pred == label)
                loss_sum += reply.loss
                result.records.append(StepRecord(step, epoch, int(i), label, reply.pred,
                                                 reply.loss, reply.cost))
                if cfg.log:  # the epoch's last row waits for its test accuracy
                    last = position == len(order) - 1 or (cfg.max_steps is not None
                                                          and step >= cfg.max_steps)
                    cfg.log.add(result.records[-1], hold=last)
                if cfg.live:
                    cfg.live.step(step, reply.loss, reply.pred == label)
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.4f}",
                                acc=f"{correct / seen:.1%}")
                blowup = watch.add(reply.loss) if math.isfinite(reply.loss) else "the loss is NaN"
                if blowup:
                    result.diverged = True
                    result.interrupted = f"step {step} (epoch {epoch}): {blowup}"
                    break
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    if not _checkpoint(device, result):  # after the blow-up check: good steps
                        break
            if result.diverged or result.interrupted:
                break
            if seen == 0:
                if step < total:
                    continue  # an epoch the resumed device had finished
                break
            result.train_accuracy.append(correct / seen)
            test_acc, _ = evaluate(device, ds.x_test, ds.y_test, f"epoch {epoch} test",
                                   cfg.progress and not cfg.live)
            result.test_accuracy.append(test_acc)
            result.records[-1].test_accuracy = test_acc
            if cfg.log:
                cfg.log.flush()
            if cfg.live:
                cfg.live.epoch(epoch, test_acc)
            elif cfg.progress:
                bar.write(f"epoch {epoch}: mean loss {loss_sum / seen:.4f}, train accuracy "
                          f"{correct / seen:.1%}, test accuracy (on device) {test_acc:.1%}")
    except KeyboardInterrupt:
        result.interrupted = "interrupted by the user"
    except OSError as e:  # the link failed: keep what was recorded
        result.interrupted = f"link failure: {e}"
    finally:
        bar.close()
        if cfg.live:
            cfg.live.close()
        if cfg.log:
            cfg.log.flush()
    # The steps since the last checkpoint (also after Ctrl-C); not a diverged state, which would
    # overwrite the last good checkpoint a --resume can go back to.
    if (cfg.checkpoint_every and result.records and not result.diverged
            and result.records[-1].step % cfg.checkpoint_every):
        _checkpoint(device, result)
    return result


def _checkpoint(device: Device, result: TrainResult) -> bool:
    """Has the device save its state; a failure stops training and says why (what was trained
    is still pulled by the caller)."""
    try:
        device.checkpoint()
    except (OSError, DeviceError) as e:
        result.interrupted = result.interrupted or f"checkpoint failed: {e}"
        return False
    return True


class MetricsLog:
    """The per-step CSV, written as training goes (a killed run keeps its rows): each row is
    flushed at once, except an epoch's last, which waits for the epoch's test accuracy. On
    resume (`keep_until`), rows past the step the device resumed from are dropped first: they
    are trained again."""

    def __init__(self, path: str | Path, keep_until: int | None = None) -> None:
        self.path = Path(path)
        kept: list[list[str]] = []
        if keep_until is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= keep_until]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(CSV_FIELDS)
        self.writer.writerows(kept)
        self.pending: StepRecord | None = None

    def add(self, record: StepRecord, hold: bool = False) -> None:
        """Writes the row now, or with hold keeps it until the next flush (or add)."""
        self.flush()
        self.pending = record
        if not hold:
            self.flush()

    def flush(self) -> None:
        if self.pending is not None:
            self.writer.writerow(_row(self.pending))
            self.pending = None
        self.file.flush()

    def close(self) -> None:
        self.flush()
        self.file.close()


def _row(r: StepRecord) -> list:
    return [r.step, r.epoch, r.sample, r.label, r.pred, f"{r.loss:.9g}", int(r.pred == r.label),
            r.cost, "" if r.test_accuracy is None else f"{r.test_accuracy:.6f}"]
