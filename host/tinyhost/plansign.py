"""Signed plans (docs/security.md): `tinyhost compile --sign-key K` writes PLAN.sig beside the
plan, the EdDSA signature of "TTPLAN1" | sha256(plan file) by K's signing key; a device that
trusts K's public key (its `sign-public-key` line: `tinyhost sim --key K`) takes only plans
whose PLAN_BEGIN carries such a signature.

The signature is Monocypher's EdDSA (crypto_eddsa_sign / crypto_eddsa_check: Ed25519's curve with
BLAKE2b as its hash), through the pymonocypher binding, the same C code the device runs; standard
Ed25519 (SHA-512) libraries such as PyNaCl would make signatures the device cannot check without
Monocypher's optional SHA-512 file. The signature is detached so the plan format does not change.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

DOMAIN = b"TTPLAN1"
SIG_SIZE = 64


class SigningUnavailable(ValueError):
    """pymonocypher, which signing needs, is not installed."""


def _monocypher() -> ModuleType:
    try:
        import monocypher
    except ImportError:
        raise SigningUnavailable("signing plans needs pymonocypher: pip install "
                                 "'tinyhost[sign]' (make setup installs it)") from None
    return monocypher


def new_signing_pair() -> tuple[bytes, bytes]:
    """(secret key, 64 bytes; public key, 32 bytes)."""
    secret, public = _monocypher().generate_signing_key_pair()
    return bytes(secret), bytes(public)


def signed_message(data: bytes) -> bytes:
    return DOMAIN + hashlib.sha256(data).digest()


def sign_plan(secret: bytes, data: bytes) -> bytes:
    return bytes(_monocypher().signature_sign(secret, signed_message(data)))


def check_plan(public: bytes, signature: bytes, data: bytes) -> bool:
    return bool(_monocypher().signature_check(signature, public, signed_message(data)))


def signature_path(plan_path: str | Path) -> Path:
    return Path(f"{plan_path}.sig")


def read_signature(plan_path: str | Path, data: bytes) -> bytes | None:
    """The plan's detached signature (PLAN.sig), or None when there is none. A file of the wrong
    size is an error; whether it verifies is the device's call."""
    path = signature_path(plan_path)
    if not path.is_file():
        return None
    sig = path.read_bytes()
    if len(sig) != SIG_SIZE:
        raise ValueError(f"{path} is not a plan signature ({len(sig)} bytes, not {SIG_SIZE})")
    return sig
