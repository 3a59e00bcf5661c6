"""An int8-friendly CNN for BasicMotions and the transfer setting that its on-device training is
measured in (bench/accuracy.py, docs/int8.md section 12).

The model uses only what `tinyhost compile --int8` quantizes and the fp32 compiler also lowers
once its BatchNorms are folded (`folded`): Conv1d + BatchNorm + ReLU, strided convs instead of
max pools (there is no int8 max pool), a global average pool and a Linear head; 6x100 in,
16x50 -> 32x25 -> 32x25 -> 32 features.

Transfer setting. The backbone is pretrained on the host, in fp32, on a coarser task than the
device's: the train split's four activities merged into "calm" (Standing, Walking) and "vigorous"
(Running, Badminton). The device then learns the four activities with a new head: features that
only had to tell calm from vigorous do not separate Standing from Walking or Running from
Badminton well, so a head alone is not enough and the sparse update has something to learn
(bench/accuracy.py, fp32, 10 seeds: 63.5% test accuracy with the head alone, 87.0% with the last
conv trained too, 97.5% with the last two). Pretraining sees the train split only; the test split
is used for nothing but the final accuracy.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

NUM_CHANNELS = 6
SERIES_LENGTH = 100
NUM_CLASSES = 4
WIDTH = 16
# Standing, Walking -> calm (0); Running, Badminton -> vigorous (1) (class indices of the bundled
# basicmotions.npz: Standing 0, Running 1, Walking 2, Badminton 3).
PRETEXT_LABELS = {0: 0, 2: 0, 1: 1, 3: 1}
PRETRAIN_EPOCHS = 30
DATA = Path(__file__).with_name("basicmotions.npz")
DEFAULT_LR = 0.05


def backbone() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(NUM_CHANNELS, WIDTH, 7, stride=2, padding=3), nn.BatchNorm1d(WIDTH), nn.ReLU(),
        nn.Conv1d(WIDTH, 2 * WIDTH, 5, stride=2, padding=2), nn.BatchNorm1d(2 * WIDTH), nn.ReLU(),
        nn.Conv1d(2 * WIDTH, 2 * WIDTH, 3, padding=1), nn.BatchNorm1d(2 * WIDTH), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten())


def standardized_data():  # -> tinyhost.datasets.Dataset
    """The bundled data standardized with the train split's statistics, as `tinyhost train` and
    `tinyhost compile --int8 --calib` prepare it."""
    from tinyhost.datasets import load_dataset, standardize
    return standardize(load_dataset(DATA))[0]


def pretrain(seed: int = 0, epochs: int = PRETRAIN_EPOCHS) -> nn.Sequential:
    """The backbone trained on the calm/vigorous task (train split only; fp32, Adam, batch 8),
    returned in eval mode."""
    ds = standardized_data()
    x = torch.from_numpy(ds.x_train)
    y = torch.tensor([PRETEXT_LABELS[int(c)] for c in ds.y_train])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend (and vary the sums)
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
            torch.manual_seed(seed)
            body = backbone()
            net = nn.Sequential(body, nn.Linear(2 * WIDTH, 2))
            opt = torch.optim.Adam(net.parameters(), 1e-2)
            for _ in range(epochs):
                for batch in torch.randperm(len(y)).split(8):
                    opt.zero_grad()
                    nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return body.eval()


def transfer_model(seed: int = 0) -> nn.Sequential:
    """The pretrained backbone with a new 4-class head (torch.nn.Linear's default init under
    `seed`), in eval mode: what the device starts from."""
    body = pretrain(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + seed)
        head = nn.Linear(2 * WIDTH, NUM_CLASSES)
    return nn.Sequential(*body, head).eval()


def folded(model: nn.Sequential) -> nn.Sequential:
    """The same function with every Conv1d + BatchNorm1d pair folded into one Conv1d (the fp32
    compiler has no BatchNorm), by the quantize pass's own folding."""
    from tinyhost.compiler.lower import fold_batchnorm
    layers = list(model)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        m = layers[i]
        bn = layers[i + 1] if i + 1 < len(layers) else None
        if (isinstance(m, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)
                and bn.running_mean is not None and bn.running_var is not None):
            def t(p: torch.Tensor | None) -> np.ndarray | None:
                return None if p is None else p.detach().numpy()
            w, b = fold_batchnorm(m.weight.detach().numpy(), t(m.bias), t(bn.weight), t(bn.bias),
                                  bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)
            padding = m.padding if isinstance(m.padding, str) else m.padding[0]
            conv = nn.Conv1d(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], padding,
                             groups=m.groups)
            conv.weight.data = torch.from_numpy(w)
            conv.bias = nn.Parameter(torch.from_numpy(b))
            out.append(conv)
            i += 2
        else:
            out.append(m)
            i += 1
    return nn.Sequential(*out).eval()


def example_input() -> torch.Tensor:
    return torch.zeros(1, NUM_CHANNELS, SERIES_LENGTH)


def make_model() -> tuple[nn.Module, torch.Tensor]:
    """For `tinyhost compile ...basicmotions_int8_model.py:make_model --int8 --calib ...`: the
    pretrained backbone (seed 0, pretrained on the spot: a few seconds) with a new head."""
    return transfer_model(0), example_input()


if __name__ == "__main__":  # pragma: no cover - a quick look at the pretrained model
    m = transfer_model(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    ds = standardized_data()
    with torch.no_grad():
        pred = m(torch.from_numpy(ds.x_test)).argmax(1).numpy()
    print(m, f"\nnew head, before training: test accuracy {np.mean(pred == ds.y_test):.1%}")
