"""The demo model: a small 1-D CNN for BasicMotions (6 sensor channels x 100 steps, 4 activities).

Built only from layers the device runtime implements (Conv1d, ReLU, MaxPool1d, AdaptiveAvgPool1d(1),
Flatten, Linear) and small: 3,412 parameters and ~131k multiply-accumulates per sample forward
(a 16x100 float activation is the largest buffer). Inputs are expected standardized
per channel with the training-split statistics (`tinyhost.datasets.standardize`).
"""
from __future__ import annotations

import torch
from torch import nn

NUM_CHANNELS = 6
SERIES_LENGTH = 100
NUM_CLASSES = 4

# Measured in PyTorch exactly as the device trains (batch size 1, plain SGD without momentum,
# cross-entropy, samples reshuffled every epoch, standardized bundled data, float32); accuracy on
# the 40 test series, 30 shuffle seeds with this init (make_model()) and 30 (init, shuffle) seed
# pairs:
#  - lr 0.05: 100% for all 60 runs from epoch 10 on (worst run: 75% at epoch 7, 97.5% at epoch 8);
#    at DEFAULT_EPOCHS every run is at 100%. The 75% plateau of early epochs is all of Standing
#    still predicted as Walking (seen in the confusion matrix).
#  - lr 0.03 needs 13 epochs for 100% everywhere, lr 0.07 needs 8; lr 0.1 still ends at 100% but
#    swings (down to 75%) on the way. 0.05 sits in the middle of the stable range.
# DEFAULT_EPOCHS leaves two epochs of margin over the slowest measured run.
DEFAULT_LR = 0.05
DEFAULT_EPOCHS = 12


def make_model(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The demo model with a deterministic init, and an example input of shape (1, 6, 100)."""
    # fork_rng: seeding must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            # A 7-step kernel (0.7 s at 10 Hz) sees a whole stride/swing; pooling by 4 keeps the
            # second conv (the costlier one) at 25 steps.
            nn.Conv1d(NUM_CHANNELS, 16, kernel_size=7, padding=3),
            nn.ReLU(),
            nn.MaxPool1d(4),
            nn.Conv1d(16, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            # Global average: the activity is the same all over the 10 s window.
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(32, NUM_CLASSES),
        )
        example = torch.randn(1, NUM_CHANNELS, SERIES_LENGTH)
    return model, example
