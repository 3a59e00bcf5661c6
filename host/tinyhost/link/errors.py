"""What every transport shares: the link's error type and where the repository's builds are.

Its own module so that the transports (transport.py, qemu.py) import it and not each other."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


class LinkError(OSError):
    """The port cannot be opened or the device does not answer."""
