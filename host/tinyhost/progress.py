"""One rule for every progress bar (tqdm's `disable`)."""
from __future__ import annotations


def bar_off(quiet: bool) -> bool | None:
    """tqdm's `disable` for a bar: off when asked (--json, --live), and otherwise shown only on a
    terminal (None: tqdm checks), so a log file or CI output gets no carriage-return spam."""
    return True if quiet else None
