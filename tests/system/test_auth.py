"""A simulated device provisioned with a key (issue 14 section 5, docs/security.md): without the
key, or with another one, a plan upload and a parameter read are refused with a clear error and
change nothing; a replayed request is refused, within its session and in a later one; with the
key, training gives the parameters an open device gives, bit for bit (and --port ref's, within
the tolerance every sim-vs-ref test uses)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cbor2
import numpy as np
import pytest

from tinyhost.device import SerialDevice, connect
from tinyhost.keys import new_key, write_key
from tinyhost.link.auth import ERR_AUTH
from tinyhost.link.client import AuthError, DeviceClient
from tinyhost.link.framing import FrameReader, Msg, decode_frame
from tinyhost.link.transport import SimProcess, open_link
from tinyhost.params import pull_parameters

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = str(REPO / "host/tinyhost/demo/basicmotions.npz")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    """The device's key file and another one."""
    paths = str(tmp_path / "device.key"), str(tmp_path / "other.key")
    for p in paths:
        write_key(p, new_key())
    return paths


@pytest.fixture
def keyed_sim(sim_binary, keys):
    sim = SimProcess(key=keys[0])
    yield sim
    sim.close()


def device(sim: SimProcess, key: str | None) -> SerialDevice:
    dev = connect(sim.path, key)
    assert isinstance(dev, SerialDevice)
    return dev


def train_some(dev, plan, data, steps: int = 6) -> None:
    for k in range(steps):
        dev.train_step(data.x_train[k], int(data.y_train[k]), 0.05)


@pytest.mark.parametrize("who", ["no key", "another key"])
def test_upload_and_parameter_read_refused_without_the_key(keyed_sim, keys, demo_plan,
                                                           demo_data, who: str) -> None:
    owner = device(keyed_sim, keys[0])
    assert owner.info().auth  # INFO stays open: it says a key is required
    owner.load_plan(demo_plan.plan, demo_plan.data)
    train_some(owner, demo_plan.plan, demo_data)
    before = pull_parameters(owner, demo_plan.plan)
    owner.close()

    stranger = device(keyed_sim, None if who == "no key" else keys[1])
    info = stranger.info()
    assert info.auth and info.steps == 6
    stranger.plan = demo_plan.plan
    hint = "pass --key FILE" if who == "no key" else "provisioned with"
    with pytest.raises(AuthError, match=f"device refused READ_TENSOR: .*{hint}") as e:
        stranger.read_tensor(demo_plan.plan.trainable[0])
    assert e.value.code == ERR_AUTH
    with pytest.raises(AuthError, match="device refused PLAN_BEGIN: bad key"):  # any plan
        stranger.client.upload_plan(demo_plan.data[:-1] + b"\0", stranger.chunk)
    with pytest.raises(AuthError, match="device refused (TRAIN|INPUT_CHUNK)"):
        stranger.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), 0.05)
    with pytest.raises(AuthError, match="device refused RESET"):
        stranger.reset()
    stranger.close()

    owner = device(keyed_sim, keys[0])
    info = owner.info()
    assert info.steps == 6 and info.plan_loaded
    owner.plan = demo_plan.plan
    after = pull_parameters(owner, demo_plan.plan)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    owner.close()


def test_key_for_an_open_device_is_refused(sim_binary, keys) -> None:
    sim = SimProcess()
    try:
        with pytest.raises(AuthError, match="not provisioned with a key"):
            connect(sim.path, keys[0])
    finally:
        sim.close()


def record_frames(client: DeviceClient) -> list[bytes]:
    """Every frame the client sends from now on, as written."""
    sent: list[bytes] = []
    write = client._send

    def send(data: bytes) -> None:
        if data.strip(b"\0"):
            sent.append(data)
        write(data)
    client._send = send  # type: ignore[method-assign]
    return sent


def reply_to(client: DeviceClient, raw: bytes) -> tuple[int, object]:
    """Sends raw bytes as they are and returns the reply frame's type and decoded payload."""
    client._send(raw)
    reader = FrameReader()
    for _ in range(500):
        for f in reader.feed(client._read()):
            frame = decode_frame(f)
            return frame.type, cbor2.loads(frame.payload) if frame.payload else None
    raise AssertionError("no reply")


def test_replayed_requests_are_refused(keyed_sim, keys, demo_plan, demo_data) -> None:
    dev = device(keyed_sim, keys[0])
    dev.load_plan(demo_plan.plan, demo_plan.data)
    sent = record_frames(dev.client)
    x, y = demo_data.x_train[0], int(demo_data.y_train[0])
    dev.train_step(x, y, 0.05)
    first = sent[-1]
    dev.train_step(demo_data.x_train[1], int(demo_data.y_train[1]), 0.05)

    # In its session (no HELLO since): the MAC verifies, the counter is old.
    rtype, payload = reply_to(dev.client, first)
    assert rtype == Msg.ERROR and payload[0] == ERR_AUTH and \
        payload[1].startswith("replayed request"), payload
    # In a later session (after HELLO, a new nonce): the MAC no longer verifies.
    assert dev.info().steps == 2  # HELLO: a new session
    rtype, payload = reply_to(dev.client, first)
    assert rtype == Msg.ERROR and payload[0] == ERR_AUTH and payload[1].startswith("bad key")
    assert dev.info().steps == 2  # neither replay trained
    dev.close()


def test_retransmission_still_works_under_a_key(keyed_sim, keys, demo_plan, demo_data) -> None:
    """The host's resend of its last request (a lost reply) is not a replay: the device answers
    it from its kept reply, or runs a READ_TENSOR again, as on an open device."""
    dev = device(keyed_sim, keys[0])
    dev.load_plan(demo_plan.plan, demo_plan.data)
    sent = record_frames(dev.client)
    step = dev.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), 0.05)
    rtype, payload = reply_to(dev.client, sent[-1])
    assert rtype == Msg.STEP and payload[0] == pytest.approx(step.loss, rel=1e-6)
    index = demo_plan.plan.trainable[0]
    raw = dev.client.read_tensor(index, 16, dev.chunk)
    rtype, payload = reply_to(dev.client, sent[-1])
    assert rtype == Msg.TENSOR
    assert dev.info().steps == 1 and raw
    dev.close()


def tinyhost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinyhost.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_keyed_training_equals_the_open_device_and_ref(sim_binary, demo_plan_file,
                                                      tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    r = tinyhost("keygen", "-o", str(key))
    assert r.returncode == 0 and key.is_file(), r.stderr
    params = {}
    for name, extra in (("keyed", ["--key", str(key)]), ("open", []), ("ref", [])):
        out = tmp_path / f"{name}.npz"
        r = tinyhost("train", "--port", "ref" if name == "ref" else "sim", *extra,
                     "--plan", str(demo_plan_file), "--data", DEMO_DATA, "--seed", "7",
                     "--steps", "30", "--epochs", "1", "--save-params", str(out), "--json")
        assert r.returncode == 0, r.stderr
        with np.load(out) as f:
            params[name] = dict(f)
    assert len(params["keyed"]) == 6
    for name, a in params["keyed"].items():
        np.testing.assert_array_equal(a, params["open"][name], err_msg=name)
        scale = float(np.max(np.abs(a)))  # the sim-vs-ref tolerance of test_ports_agree
        np.testing.assert_allclose(a, params["ref"][name], rtol=0, atol=1e-5 * scale,
                                   err_msg=name)


def test_cli_says_what_was_refused(sim_binary, keys, demo_plan_file, tmp_path: Path) -> None:
    sim = SimProcess(key=keys[0])
    try:
        r = tinyhost("pull", "--port", sim.path, "--plan", str(demo_plan_file), "-o",
                     str(tmp_path / "p.npz"))
        assert r.returncode == 2
        r = tinyhost("train", "--port", sim.path, "--plan", str(demo_plan_file), "--data",
                     DEMO_DATA, "--steps", "3", "--epochs", "1")
        assert r.returncode == 2 and "error: device refused PLAN_BEGIN: bad key" in r.stderr, \
            r.stderr
        assert "pass --key FILE" in r.stderr and "Traceback" not in r.stderr
        r = tinyhost("info", "--port", sim.path)
        assert r.returncode == 0 and "authorization: required" in r.stdout
        r = tinyhost("info", "--port", sim.path, "--key", str(tmp_path / "missing.key"))
        assert r.returncode == 2 and "cannot read key file" in r.stderr
    finally:
        sim.close()
    link = open_link("sim", sim_key=keys[0])  # --port sim --key: a provisioned one-shot sim
    try:
        assert DeviceClient(link).hello().get("auth") is True
    finally:
        link.close()


@pytest.mark.usefixtures("qemu_ready")  # tests/system/conftest.py
def test_qemu_provisioned_by_key_file(keys, demo_plan, demo_data) -> None:
    """The Cortex-M4F firmware in QEMU provisioned with `--port qemu --key FILE` (semihosting
    `--key HEX`): the owner trains and reads parameters like an open device does, a host without
    the key is refused before anything runs."""
    plan, data = demo_plan.plan, demo_plan.data
    open_dev = connect("qemu")
    owner = connect("qemu", keys[0])
    try:
        assert owner.info().auth and not open_dev.info().auth
        for dev in (owner, open_dev):
            assert dev.load_plan(plan, data)
            train_some(dev, plan, demo_data, steps=3)
        got, want = pull_parameters(owner, plan), pull_parameters(open_dev, plan)
        for name, w in want.items():
            np.testing.assert_array_equal(got[name], w, err_msg=name)

        assert isinstance(owner, SerialDevice)
        stranger = SerialDevice(DeviceClient(owner.client.link))  # same port, no key
        stranger.plan = plan
        with pytest.raises(AuthError, match="device refused READ_TENSOR"):
            stranger.read_tensor(plan.trainable[0])
        with pytest.raises(AuthError, match="device refused TRAIN"):
            stranger.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), 0.05)
        assert owner.info().steps == 3
    finally:
        owner.close()
        open_dev.close()


@pytest.mark.parametrize("faults", ["rate=0.01,seed=3", "dup=0.01,drop=0.005,seed=5"])
def test_provisioned_device_on_a_noisy_wire(keys, demo_plan, demo_data, faults: str,
                                            monkeypatch) -> None:
    """Resends, duplicates and the window of INPUT_CHUNKs under MACs: a provisioned sim behind a
    fault-injecting wire trains, evaluates and reads back exactly what an open one on a clean
    wire does (a byte-for-byte retransmission is not taken for a replay, and no corrupted reply
    is taken for an authentic one)."""
    from tinyhost.link.transport import FAULTS_ENV

    def run(key: str | None) -> tuple[list, dict]:
        dev = connect("sim", key)
        try:
            dev.load_plan(demo_plan.plan, demo_plan.data)
            steps = [dev.train_step(demo_data.x_train[k], int(demo_data.y_train[k]), 0.05)
                     for k in range(8)]
            preds = [dev.evaluate(x) for x in demo_data.x_test[:4]]
            out = [(s.loss, s.pred, s.step) for s in steps] + preds
            return out, pull_parameters(dev, demo_plan.plan)
        finally:
            dev.close()

    monkeypatch.delenv(FAULTS_ENV, raising=False)
    clean, clean_params = run(None)
    monkeypatch.setenv(FAULTS_ENV, faults)
    noisy, params = run(keys[0])
    assert noisy == clean
    for name, value in clean_params.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)


def test_signed_plans(sim_binary, demo_plan, demo_plan_file, tmp_path: Path) -> None:
    """A device given a key file with a signing pair (keygen --sign) takes only plans signed with
    it: unsigned, signed by another key, or changed after signing, PLAN_BEGIN is refused before
    a byte of the plan is sent; `compile --sign-key` writes PLAN.sig, which `train` sends."""
    pytest.importorskip("monocypher", reason="pip install 'tinyhost[sign]' (make setup does)")
    from tinyhost.plansign import new_signing_pair, sign_plan

    author, other = tmp_path / "author.key", tmp_path / "other.key"
    write_key(author, new_key(), signing=new_signing_pair())
    other_pair = new_signing_pair()
    data = demo_plan.data
    sim = SimProcess(key=str(author))
    try:
        dev = device(sim, str(author))
        assert dev.info().plan_signatures
        changed = data[:-1] + bytes([data[-1] ^ 1])
        from tinyhost.keys import read_signing_key
        cases = [(None, "unsigned plan"),
                 (sign_plan(other_pair[0], data), "plan signature does not verify"),
                 (sign_plan(read_signing_key(author), changed), "plan signature does not verify")]
        for signature, said in cases:
            with pytest.raises(AuthError, match=f"device refused PLAN_BEGIN: {said}.*--sign-key"):
                dev.load_plan(demo_plan.plan, data, signature=signature)
        assert not dev.info().plan_loaded
        assert dev.load_plan(demo_plan.plan, data,
                             signature=sign_plan(read_signing_key(author), data))
        assert dev.info().plan_loaded
        dev.close()

        r = tinyhost("train", "--port", sim.path, "--key", str(author), "--plan",
                     str(demo_plan_file), "--data", DEMO_DATA, "--steps", "2", "--epochs", "1")
        assert r.returncode == 0, r.stderr  # the device runs this plan already: no upload
        plan = tmp_path / "signed.ttp"
        write_key(other, new_key(), signing=other_pair)
        for key, ok in ((other, False), (author, True)):
            r = tinyhost("compile", f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model",
                         "--lr", "0.01", "-o", str(plan), "--sign-key", str(key))
            assert r.returncode == 0 and Path(f"{plan}.sig").stat().st_size == 64, r.stderr
            r = tinyhost("train", "--port", sim.path, "--key", str(author), "--plan", str(plan),
                         "--data", DEMO_DATA, "--steps", "2", "--epochs", "1")
            assert (r.returncode == 0) == ok, r.stderr
            assert ok or "device refused PLAN_BEGIN: plan signature does not verify" in r.stderr
    finally:
        sim.close()
