"""The loss curve people look at: per-step loss with its running mean, and accuracy per epoch."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_training(losses: list[float], epoch_ends: list[int], train_acc: list[float],
                  test_acc: list[float], path: str | Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, len(losses) + 1)
    ax_loss.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="step loss")
    window = max(1, min(len(losses) // 10, 40))
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax_loss.plot(steps[window - 1:], smooth, color="tab:blue", label=f"mean of {window}")
    for end in epoch_ends:
        ax_loss.axvline(end, color="grey", linewidth=0.5, alpha=0.5)
    ax_loss.set_xlabel("training step (one sample)")
    ax_loss.set_ylabel("loss (on device)")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.set_title("loss")
    epochs = np.arange(1, len(train_acc) + 1)
    ax_acc.plot(epochs, np.array(train_acc) * 100, "o-", label="train (during the epoch)")
    if test_acc:
        ax_acc.plot(epochs[:len(test_acc)], np.array(test_acc) * 100, "s-",
                    label="test (on device, after the epoch)")
    ax_acc.set_ylim(0, 105)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy %")
    ax_acc.legend(loc="lower right")
    ax_acc.set_title("accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
