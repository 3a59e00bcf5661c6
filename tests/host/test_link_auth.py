"""The link's MAC layout on the host (tinyhost.link.auth) and key files (tinyhost.keys): the tags
equal the device's (the same known answers as tests/c/test_auth.c, where Monocypher computes
them), a reply's tag is checked, and a bad key file is a clear error."""
from __future__ import annotations

import hashlib
import stat
import struct

import pytest

from tinyhost.keys import KeyFileError, new_key, read_key, write_key
from tinyhost.link.auth import ReplyNotAuthentic, Session, tag

KEY = bytes(range(32))
NONCE = bytes(range(100, 116))


def test_tags_equal_monocypher_known_answers() -> None:
    # tests/c/test_auth.c checks the same hex strings against Monocypher's crypto_blake2b_keyed.
    assert tag(KEY, b"Q", NONCE, 0x01020304, 6, 0xFE, bytes(range(200))).hex() == \
        "e8fa9c54e11836e00665b060df817e7a"
    assert tag(KEY, b"R", NONCE, 7, 0x86, 9, b"").hex() == "903e4b80d48612628d8714b74ae8f2ee"
    assert hashlib.blake2b(b"abc", key=KEY, digest_size=16).hexdigest() == \
        "1a64be47e4729d951c302ee543f97cf3"


def test_tag_is_blake2b_over_the_documented_layout() -> None:
    payload = b"\x83\x01\xfa\x3c\x23\xd7\x0a\x40"
    want = hashlib.blake2b(b"Q" + NONCE + struct.pack("<I", 5) + bytes((6, 42)) + payload,
                           key=KEY, digest_size=16).digest()
    assert tag(KEY, b"Q", NONCE, 5, 6, 42, payload) == want


def test_session_seals_with_rising_counters_and_checks_replies() -> None:
    s = Session(KEY, NONCE)
    sealed, counter = s.seal(6, 42, b"abc")
    assert counter == 1 and sealed[:3] == b"abc"
    assert sealed[3:7] == struct.pack("<I", 1)
    assert sealed[7:] == tag(KEY, b"Q", NONCE, 1, 6, 42, b"abc")
    assert s.seal(6, 43, b"abc")[1] == 2
    reply = b"\x80" + tag(KEY, b"R", NONCE, 1, 0x80, 42, b"\x80")
    assert s.open(1, 0x80, 42, reply) == b"\x80"
    for bad in (reply[:-1] + bytes([reply[-1] ^ 1]),  # a flipped tag bit
                b"\x81" + reply[1:],                    # another payload
                reply[:8]):                              # too short to hold a tag
        with pytest.raises(ReplyNotAuthentic):
            s.open(1, 0x80, 42, bad)
    with pytest.raises(ReplyNotAuthentic):  # the tag of another request's counter
        s.open(2, 0x80, 42, reply)


def test_key_file_round_trip_and_permissions(tmp_path) -> None:
    key = new_key()
    assert len(key) == 32 and key != new_key()
    path = tmp_path / "device.key"
    write_key(path, key)
    assert read_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "mac-key = " + key.hex() in path.read_text()
    with pytest.raises(KeyFileError, match="exists"):
        write_key(path, new_key())
    write_key(path, key[::-1], force=True)
    assert read_key(path) == key[::-1]


@pytest.mark.parametrize("text, said", [
    ("", "not a tinytrain key file"),
    ("mac-key = 0011\n", "has 4 hex digits"),
    ("mac-key = " + "ab" * 33 + "\n", "has 66 hex digits"),
    ("mac-key = xyz\n", "not a tinytrain key file"),
])
def test_bad_key_files_are_named(tmp_path, text: str, said: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=said):
        read_key(path)
    with pytest.raises(KeyFileError, match="cannot read key file"):
        read_key(tmp_path / "missing.key")


def test_plan_signatures_and_signing_key_files(tmp_path) -> None:
    pytest.importorskip("monocypher", reason="pip install 'tinyhost[sign]' (make setup does)")
    from tinyhost.keys import read_signing_key
    from tinyhost.plansign import check_plan, new_signing_pair, read_signature, sign_plan

    secret, public = new_signing_pair()
    assert (len(secret), len(public)) == (64, 32)
    data = b"a plan's bytes"
    sig = sign_plan(secret, data)
    assert len(sig) == 64 and check_plan(public, sig, data)
    assert not check_plan(public, sig, data + b"!")
    assert not check_plan(new_signing_pair()[1], sig, data)

    path = tmp_path / "author.key"
    write_key(path, new_key(), signing=(secret, public))
    assert read_signing_key(path) == secret
    assert f"sign-public-key = {public.hex()}" in path.read_text()
    plain = tmp_path / "plain.key"
    write_key(plain, new_key())
    with pytest.raises(KeyFileError, match="keygen --sign"):
        read_signing_key(plain)

    plan = tmp_path / "p.ttp"
    assert read_signature(plan, data) is None
    (tmp_path / "p.ttp.sig").write_bytes(sig)
    assert read_signature(plan, data) == sig
    (tmp_path / "p.ttp.sig").write_bytes(sig[:10])
    with pytest.raises(ValueError, match="not a plan signature"):
        read_signature(plan, data)
