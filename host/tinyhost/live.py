"""`tinyhost train --live`: the loss and accuracy curves redrawn in the terminal as training goes.

A terminal view (plotext) rather than a window or a web page: whoever trains over a serial port
is in a terminal, often over SSH on the machine the board is plugged into, where no window can
open. The view is redrawn in place (cursor home, no scrolling) at most every `interval` seconds,
so a fast sim does not spend its time drawing."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import plotext as plt

HOME, CLEAR_BELOW, HIDE, SHOW = "\x1b[H", "\x1b[J", "\x1b[?25l", "\x1b[?25h"


@dataclass
class LiveView:
    total_steps: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    interval: float = 0.5     # seconds between redraws at most
    window: int = 20          # steps the running loss and accuracy average over
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    running_loss: list[float] = field(default_factory=list)
    running_acc: list[float] = field(default_factory=list)
    test_steps: list[int] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    _hits: list[int] = field(default_factory=list)
    _drawn: float = 0.0
    _started: bool = False

    def step(self, step: int, loss: float, correct: bool) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self._hits.append(int(correct))
        recent = self.losses[-self.window:]
        self.running_loss.append(sum(recent) / len(recent))
        hits = self._hits[-self.window:]
        self.running_acc.append(sum(hits) / len(hits))
        if time.monotonic() - self._drawn >= self.interval:
            self.draw()

    def epoch(self, epoch: int, test_accuracy: float) -> None:
        self.test_steps.append(self.steps[-1] if self.steps else 0)
        self.test_acc.append(test_accuracy)
        self.draw()

    def frame(self, width: int, height: int) -> str:
        """The view as text (ANSI colours) of width x height characters: two charts, each drawn
        as a figure of its own (plotext 5's subplots keep state from one build to the next)."""
        half = max(height // 2, 8)
        top = max(self.total_steps, 1)
        step = self.steps[-1] if self.steps else 0
        loss = f"{self.running_loss[-1]:.4f}" if self.running_loss else "-"
        plt.clear_figure()
        plt.plotsize(width, half)
        plt.title(f"step {step}/{self.total_steps}   loss (mean of the last {self.window}): {loss}")
        if self.steps:
            plt.plot(self.steps, self.losses, label="loss per step", color="gray")
            plt.plot(self.steps, self.running_loss, label="running mean", color="red")
        plt.xlim(0, top)
        losses = str(plt.build())
        plt.clear_figure()
        plt.plotsize(width, height - half)
        test = f"{self.test_acc[-1]:.1%}" if self.test_acc else "after the first epoch"
        plt.title(f"accuracy: test (on device) {test}")
        if self.steps:
            plt.plot(self.steps, self.running_acc, label="train (running)", color="blue")
        if self.test_steps:
            plt.plot(self.test_steps, self.test_acc, label="test (per epoch)", color="green",
                     marker="dot")
        plt.xlim(0, top)
        plt.ylim(0, 1)
        return losses + "\n" + str(plt.build())

    def draw(self) -> None:
        size = shutil.get_terminal_size((100, 30))
        text = self.frame(size.columns, size.lines - 1)
        prefix = (HIDE + HOME + CLEAR_BELOW) if not self._started else HOME
        self._started = True
        self.out.write(prefix + text + "\n")
        self.out.flush()
        self._drawn = time.monotonic()

    def close(self) -> None:
        if self._started:
            self.draw()
            self.out.write(SHOW)
            self.out.flush()
