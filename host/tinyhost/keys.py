"""Device keys (`tinyhost keygen`, `--key FILE`): the secret a provisioned device and its owner
share for the link's MACs (docs/security.md).

The file is text, so it can be read, diffed and pasted into a build (the bare-metal CMake option
TT_AN386_KEY_FILE, the simulated device's --key read the same line):

    # tinytrain device key: keep this file secret (docs/security.md)
    mac-key = <64 hex digits: 32 random bytes>

and, from `tinyhost keygen --sign`, an EdDSA pair for signing plans (tinyhost.plansign):

    sign-secret-key = <128 hex digits>   (compile --sign-key uses it; never give it to a device)
    sign-public-key = <64 hex digits>    (a device given this file takes only plans it checks)
"""
from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from tinyhost.link.auth import KEY_SIZE

HEADER = ("# tinytrain device key (tinyhost keygen): keep this file secret; anyone who has it can\n"
          "# train, read and replace the plan of a device provisioned with it (docs/security.md)\n")
_LINE = re.compile(r"^\s*mac-key\s*=\s*([0-9A-Fa-f]*)\s*$", re.MULTILINE)
_SIGN = re.compile(r"^\s*sign-secret-key\s*=\s*([0-9A-Fa-f]*)\s*$", re.MULTILINE)


class KeyFileError(ValueError):
    """A key file that cannot be read or is not one."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def write_key(path: str | Path, key: bytes, force: bool = False,
              signing: tuple[bytes, bytes] | None = None) -> None:
    """Writes the key file, readable by its owner only; refuses to overwrite one unless force
    (a lost key locks its devices out: they must be provisioned again)."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"a key is {KEY_SIZE} bytes, not {len(key)}")
    p = Path(path)
    if p.exists() and not force:
        raise KeyFileError(f"{p} exists: a device provisioned with it would be locked out; "
                           "pass --force to replace it")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(p, flags, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(HEADER + f"mac-key = {key.hex()}\n")
        if signing is not None:
            secret, public = signing
            f.write(f"sign-secret-key = {secret.hex()}\nsign-public-key = {public.hex()}\n")
    os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def _read_key_file(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from None


def read_key(path: str | Path) -> bytes:
    """The key of a key file, with an error that names the file and what is wrong."""
    text = _read_key_file(path)
    m = _LINE.search(text)
    if m is None:
        raise KeyFileError(f"{path} is not a tinytrain key file: no line `mac-key = <64 hex "
                           "digits>` (write one with `tinyhost keygen -o FILE`)")
    if len(m.group(1)) != 2 * KEY_SIZE:
        raise KeyFileError(f"{path}: mac-key has {len(m.group(1))} hex digits, a key has "
                           f"{2 * KEY_SIZE}")
    return bytes.fromhex(m.group(1))


def read_signing_key(path: str | Path) -> bytes:
    """The plan-signing secret key of a key file written by `tinyhost keygen --sign`."""
    text = _read_key_file(path)
    m = _SIGN.search(text)
    if m is None or len(m.group(1)) != 128:
        raise KeyFileError(f"{path} has no line `sign-secret-key = <128 hex digits>`: write a "
                           "signing key with `tinyhost keygen --sign -o FILE`")
    return bytes.fromhex(m.group(1))
