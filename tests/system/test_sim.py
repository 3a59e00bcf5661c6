"""The C runtime, as the simulated device on a pty over pyserial, against the reference executor,
and the link protocol's promises: refused plans name the problem and never replace a good plan,
a retransmitted request runs once, garbage gets a NAK, dead ports are reported quickly."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import cbor2
import numpy as np
import pytest

from tinyhost.compiler import compile_model
from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import connect
from tinyhost.link.client import DeviceError
from tinyhost.link.framing import Frame, FrameReader, Msg, decode_frame, encode_frame
from tinyhost.link.transport import LinkError, SimProcess
from tinyhost.params import pull_parameters
from tinyhost.plan import decode_plan, encode_plan, plan_hash

RTOL = 1e-5

CONV2D = """
def make_model():
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2),     # 0: 3x24x24 -> 16x12x12 (input > 1 payload)
        nn.ReLU(),                                    # 1
        nn.MaxPool2d(3, stride=2, padding=1),         # 2: -> 16x6x6
        nn.Conv2d(16, 16, 3, padding=1, groups=4),    # 3: grouped
        nn.ReLU(),                                    # 4
        nn.Conv2d(16, 16, (3, 1), padding=(1, 0), groups=16, bias=False),  # 5: depthwise
        nn.ReLU(),                                    # 6
        nn.AvgPool2d(3, stride=1, padding=1),         # 7
        nn.AdaptiveAvgPool2d(2),                      # 8: -> 16x2x2
        nn.Flatten(),                                 # 9
        nn.Linear(64, 5),                             # 10
    )
    return model, torch.randn(1, 3, 24, 24)
"""


@pytest.fixture
def sim(sim_binary):
    dev = connect("sim")
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def conv2d_spec(model_file) -> str:
    return model_file(CONV2D)


def assert_params_close(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert set(got) == set(ref)
    for name, r in ref.items():
        atol = RTOL * float(np.max(np.abs(r)))
        np.testing.assert_allclose(got[name], r, rtol=RTOL, atol=atol, err_msg=name)


def train_and_compare(plan, data, xs, labels, lr, dev) -> None:
    ref = connect("ref")
    assert dev.load_plan(plan, data) and ref.load_plan(plan, data)
    initial = pull_parameters(ref, plan)
    for k, (x, label) in enumerate(zip(xs, labels, strict=True)):
        a = dev.train_step(x, int(label), lr)
        b = ref.train_step(x, int(label), lr)
        assert a.step == b.step == k + 1
        assert a.pred == b.pred, f"step {k + 1}: pred {a.pred} != {b.pred}"
        np.testing.assert_allclose(a.loss, b.loss, rtol=RTOL, err_msg=f"loss at step {k + 1}")
    got, want = pull_parameters(dev, plan), pull_parameters(ref, plan)
    assert_params_close(got, want)
    for i in plan.trainable:
        name = plan.tensors[i].name
        assert not np.array_equal(want[name], initial[name]), f"{name} did not train"
    for i in set(plan.parameters) - set(plan.trainable):
        name = plan.tensors[i].name
        np.testing.assert_array_equal(got[name], initial[name], err_msg=name)
    assert dev.info().steps == len(xs)
    for x in xs:  # inference with the trained parameters
        assert dev.evaluate(x) == ref.evaluate(x)


def test_demo_sim_equals_ref(sim, demo_plan, demo_data) -> None:
    order = np.random.default_rng(0).permutation(len(demo_data.x_train))[:20]
    labels = demo_data.y_train[order]
    assert len(set(labels.tolist())) > 1
    train_and_compare(demo_plan.plan, demo_plan.data, demo_data.x_train[order], labels,
                      DEFAULT_LR, sim)


@pytest.mark.parametrize("update", ["full", "bias-only", "3,10.weight"])
def test_conv2d_sim_equals_ref(sim, conv2d_spec: str, update: str) -> None:
    result = compile_model(conv2d_spec, update=update)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((20, 3, 24, 24)).astype(np.float32)
    labels = rng.integers(0, 5, 20)
    train_and_compare(result.plan, result.data, xs, labels, 0.05, sim)


def test_eval_equals_ref(sim, demo_plan, demo_data) -> None:
    plan, data = demo_plan.plan, demo_plan.data
    ref = connect("ref")
    sim.load_plan(plan, data)
    ref.load_plan(plan, data)
    order = np.random.default_rng(2).permutation(len(demo_data.x_train))
    for i in order:
        sim.train_step(demo_data.x_train[i], int(demo_data.y_train[i]), DEFAULT_LR)
        ref.train_step(demo_data.x_train[i], int(demo_data.y_train[i]), DEFAULT_LR)
    got = [sim.evaluate(x) for x in demo_data.x_test]
    want = [ref.evaluate(x) for x in demo_data.x_test]
    assert got == want
    assert len(set(want)) > 1  # not a degenerate constant prediction
    assert sim.info().steps == len(order)  # evaluation does not train


def test_reset_restores_initial_parameters(sim, demo_plan, demo_data) -> None:
    plan = demo_plan.plan
    sim.load_plan(plan, demo_plan.data)
    for i in range(3):
        sim.train_step(demo_data.x_train[i], int(demo_data.y_train[i]), DEFAULT_LR)
    sim.reset()
    assert sim.info().steps == 0
    for i in plan.trainable:
        np.testing.assert_array_equal(sim.read_tensor(i), plan.constant(i))


# -- refused plans ---------------------------------------------------------------------------------
def test_plan_larger_than_arena_is_refused(sim_binary, demo_plan) -> None:
    proc = SimProcess(arena=4096)
    try:
        dev = connect(proc.path)
        try:
            assert dev.info().arena_capacity == 4096
            with pytest.raises(DeviceError) as ei:
                dev.load_plan(demo_plan.plan, demo_plan.data)
            msg = str(ei.value)
            assert str(demo_plan.plan.arena_size) in msg and "4096" in msg, msg
            assert not dev.info().plan_loaded
        finally:
            dev.close()
    finally:
        proc.close()


DEEP_MLP = """
def make_model():
    layers = [nn.Flatten()]
    for _ in range(30):
        layers += [nn.Linear(4, 4), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(4, 3)), torch.randn(1, 4)
"""


def test_plan_that_fits_can_replace_a_loaded_plan(sim_binary, demo_plan, model_file) -> None:
    """Plan B (small arena, large tables) fits an empty device whose arena holds exactly the demo
    plan A. With A loaded, B is refused (its check must not overwrite A's parameters); following
    the refusal's advice must then make B loadable."""
    deep = compile_model(model_file(DEEP_MLP))
    a, b = demo_plan, deep
    probe = connect("sim")
    try:
        probe.load_plan(a.plan, a.data)
        a_tables = probe.info().arena_used - a.plan.arena_size
        probe.load_plan(b.plan, b.data)
        b_used = probe.info().arena_used
    finally:
        probe.close()
    capacity = a.plan.arena_size + a_tables
    assert b_used < capacity  # B fits this device on its own
    proc = SimProcess(arena=capacity)
    dev = connect(proc.path)
    try:
        dev.load_plan(a.plan, a.data)
        try:
            dev.load_plan(b.plan, b.data)
            return  # the device replaced A directly: fine
        except DeviceError as e:
            advice = str(e)
        assert "reset" in advice, advice
        dev.reset()
        dev.load_plan(b.plan, b.data)  # as advised
        assert dev.info().plan_hash == plan_hash(b.data)
    finally:
        dev.close()
        proc.close()


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


def bad_plans(data: bytes) -> list[tuple[str, bytes, tuple[str, ...]]]:
    """(what, plan file, words its refusal must contain)"""
    _, body, digest = cbor2.loads(data)
    body_at = data.index(body)
    plan = decode_plan(data)
    outside = decode_plan(data)
    outside.tensors[outside.bindings.logits].arena_offset = outside.arena_size - 4
    too_big = decode_plan(data)
    too_big.arena_size = 300_000
    return [
        ("flipped byte in the tables", _flip(data, body_at + 60), ("hash", "corrupt")),
        ("flipped byte in the blob", _flip(data, len(data) - 40 - 200), ("hash", "corrupt")),
        ("truncated", data[:len(data) // 2], ("truncated",)),
        ("truncated by one byte", data[:-1], ("truncated",)),
        ("other version", cbor2.dumps([2, body, digest]), ("version 2", "version 1")),
        ("tensor outside the arena", encode_plan(outside), ("outside", str(plan.arena_size))),
        ("arena larger than the device's", encode_plan(too_big), ("300000", "262144")),
    ]


def test_bad_upload_keeps_the_good_plan(sim, demo_plan, demo_data) -> None:
    plan, data = demo_plan.plan, demo_plan.data
    ref = connect("ref")
    sim.load_plan(plan, data)
    ref.load_plan(plan, data)
    xs, ys = demo_data.x_train, demo_data.y_train
    for i in range(5):
        sim.train_step(xs[i], int(ys[i]), DEFAULT_LR)
        ref.train_step(xs[i], int(ys[i]), DEFAULT_LR)
    before = pull_parameters(sim, plan)
    for what, bad, words in bad_plans(data):
        with pytest.raises(DeviceError) as ei:
            sim.client.upload_plan(bad, sim.chunk)  # the transfer hash is right: sha256(bad)
        msg = str(ei.value)
        assert all(w in msg for w in words), f"{what}: {msg}"
        info = sim.info()
        assert info.plan_loaded and info.plan_hash == plan_hash(data), what
        assert info.steps == 5, what
        after = pull_parameters(sim, plan)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=f"{what}: {name}")
    # The good plan still trains, from where it was.
    a = sim.train_step(xs[5], int(ys[5]), DEFAULT_LR)
    b = ref.train_step(xs[5], int(ys[5]), DEFAULT_LR)
    assert a.step == 6 and a.pred == b.pred
    np.testing.assert_allclose(a.loss, b.loss, rtol=RTOL)
    assert_params_close(pull_parameters(sim, plan), pull_parameters(ref, plan))


def test_transfer_hash_mismatch_is_refused(sim, demo_plan) -> None:
    """PLAN_BEGIN announces sha256 of the good file; the chunks carry a corrupted one."""
    client = sim.client
    data = demo_plan.data
    bad = _flip(data, len(data) // 3)
    import hashlib
    client.request(Msg.PLAN_BEGIN, [len(data), hashlib.sha256(data).digest()])
    for off in range(0, len(bad), sim.chunk):
        client.request(Msg.PLAN_CHUNK, [off, bad[off:off + sim.chunk]])
    with pytest.raises(DeviceError, match="sha256"):
        client.request(Msg.PLAN_COMMIT, [])
    assert not sim.info().plan_loaded


# -- the link --------------------------------------------------------------------------------------
class RawLink:
    """Frames straight from the pyserial port, bypassing the client."""

    def __init__(self, port) -> None:
        self.port = port
        self.reader = FrameReader()
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read_frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.pending and time.monotonic() < deadline:
            self.pending += self.reader.feed(self.port.read(max(1, self.port.in_waiting)))
        assert self.pending, "no frame from the device"
        return decode_frame(self.pending.pop(0))

    def assert_silent(self, wait: float = 0.3) -> None:
        time.sleep(wait)
        self.pending += self.reader.feed(self.port.read(self.port.in_waiting))
        assert not self.pending, f"unexpected frames: {self.pending}"


def test_retransmitted_train_runs_once(sim, demo_plan, demo_data) -> None:
    plan, data = demo_plan.plan, demo_plan.data
    ref = connect("ref")
    sim.load_plan(plan, data)
    ref.load_plan(plan, data)
    raw = RawLink(sim.client.link.port)
    x, label = demo_data.x_train[0], int(demo_data.y_train[0])
    sample = np.ascontiguousarray(x, np.float32).tobytes()
    steps = sim.info().steps

    seq = (sim.client.seq + 1) & 0xFF
    sim.client.seq = seq  # the client's next request uses another number
    frame = encode_frame(Msg.TRAIN, seq, cbor2.dumps([label, DEFAULT_LR, sample]))
    raw.write(frame)
    first = raw.read_frame()
    raw.write(frame)  # the reply was "lost": the host sends the same request again
    second = raw.read_frame()
    assert first.type == second.type == Msg.STEP
    assert first.seq == second.seq == seq
    assert first.payload == second.payload
    loss, pred, _, step = cbor2.loads(first.payload)
    assert step == steps + 1
    assert sim.info().steps == steps + 1

    # Both copies arriving back to back (the device was slow, the host resent) also run once.
    seq2 = (sim.client.seq + 1) & 0xFF  # after the HELLO of sim.info()
    sim.client.seq = seq2
    frame2 = encode_frame(Msg.TRAIN, seq2, cbor2.dumps([label, DEFAULT_LR, sample]))
    raw.write(frame2 + frame2)
    r1, r2 = raw.read_frame(), raw.read_frame()
    assert r1.payload == r2.payload and cbor2.loads(r1.payload)[3] == steps + 2
    raw.assert_silent()
    assert sim.info().steps == steps + 2

    # The parameters are those of exactly two steps.
    want = ref.train_step(x, label, DEFAULT_LR)
    np.testing.assert_allclose(loss, want.loss, rtol=RTOL)
    ref.train_step(x, label, DEFAULT_LR)
    assert_params_close(pull_parameters(sim, plan), pull_parameters(ref, plan))


def test_reused_or_old_sequence_numbers_are_refused(sim, demo_plan, demo_data) -> None:
    """Another sample under the last request's number is not a retransmission, and an older
    number is a stale request: both are refused with an error, neither trains."""
    sim.load_plan(demo_plan.plan, demo_plan.data)
    raw = RawLink(sim.client.link.port)
    x = [np.ascontiguousarray(demo_data.x_train[i], np.float32).tobytes() for i in (0, 1)]
    label = int(demo_data.y_train[0])
    steps = sim.info().steps
    seq = (sim.client.seq + 1) & 0xFF
    sim.client.seq = seq
    raw.write(encode_frame(Msg.TRAIN, seq, cbor2.dumps([label, DEFAULT_LR, x[0]])))
    assert raw.read_frame().type == Msg.STEP
    for number in (seq, (seq - 3) & 0xFF):
        raw.write(encode_frame(Msg.TRAIN, number, cbor2.dumps([label, DEFAULT_LR, x[1]])))
        reply = raw.read_frame()
        assert reply.type == Msg.ERROR and reply.seq == number
        code, message = cbor2.loads(reply.payload)
        assert code == -10 and "stale sequence number" in message
    assert sim.info().steps == steps + 1


@pytest.mark.parametrize("garbage", [
    b"\x05abcdefgh\x00",                                       # COBS-valid, CRC wrong
    b"\x01\x01\x01\x00",                                       # too short
    b"\x09\x06\x01\x80\x00",                                   # bad COBS (code past the end)
    encode_frame(Msg.HELLO, 3, b"")[:-3] + b"\x7f\x7f\x00",     # corrupted CRC
    b"\xff" * 9000 + b"\x00",                                  # longer than any frame
], ids=["crc", "short", "cobs", "bad-crc", "overflow"])
def test_garbage_gets_nak_and_link_survives(sim, demo_plan, demo_data, garbage: bytes) -> None:
    sim.load_plan(demo_plan.plan, demo_plan.data)
    raw = RawLink(sim.client.link.port)
    raw.write(b"\x00\x00")  # empty frames are line noise: no answer
    raw.assert_silent(0.1)
    raw.write(garbage)
    assert raw.read_frame().type == Msg.NAK
    raw.assert_silent(0.1)
    assert sim.info().plan_loaded
    reply = sim.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), DEFAULT_LR)
    assert reply.step == 1


def test_missing_port_fails_fast() -> None:
    t0 = time.monotonic()
    with pytest.raises(LinkError) as ei:
        connect("/dev/does-not-exist")
    assert time.monotonic() - t0 < 2
    assert "/dev/does-not-exist" in str(ei.value)


def test_silent_port_reported_within_seconds() -> None:
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "tinyhost.cli", "info", "--port", name],
                              capture_output=True, text=True, timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 10
    assert "no answer" in proc.stderr and name in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()][-1].startswith("error: ")


@pytest.mark.parametrize("label", [4, -1, 1000, 2**31])
def test_label_outside_classes(sim, demo_plan, demo_data, label: int) -> None:
    plan = demo_plan.plan
    sim.load_plan(plan, demo_plan.data)
    before = pull_parameters(sim, plan)
    # The device checks the class range; a label no int32 can carry is refused before sending.
    with pytest.raises(DeviceError if label < 2**31 else ValueError) as ei:
        sim.train_step(demo_data.x_train[0], label, DEFAULT_LR)
    msg = str(ei.value)
    assert f"label {label}" in msg and "[0, 4)" in msg, msg
    assert sim.info().steps == 0
    after = pull_parameters(sim, plan)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert sim.train_step(demo_data.x_train[0], 1, DEFAULT_LR).step == 1
