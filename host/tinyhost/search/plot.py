"""`search --plot`: the contributions in the paper's Figure 5 style, the chosen scheme marked."""
from __future__ import annotations

from tinyhost.search.contrib import RATIOS
from tinyhost.search.run import SearchResult


def plot_contributions(r: SearchResult, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, s = r.contributions, r.scheme
    fig, (ax_b, ax_w) = plt.subplots(1, 2, figsize=(12, 4.2),
                                     gridspec_kw={"width_ratios": [1, 2]})
    ks = sorted(c.bias)
    ax_b.plot([0, *ks], [0.0, *(c.bias[k] for k in ks)], "o-", color="tab:blue",
              label="measured")
    ax_b.axvline(s.n_bias_update, color="tab:red", ls="--",
                 label=f"chosen: last {s.n_bias_update}")
    ax_b.set_xlabel("biases updated (last k convs)")
    ax_b.set_ylabel("accuracy gain over head only (points)")
    ax_b.set_title("(a) bias updates")
    ax_b.legend(fontsize=8)
    chosen = dict(zip(s.manual_weight_idx, s.weight_update_ratio, strict=True))
    for j, ratio in enumerate(RATIOS):
        pts = sorted((i, g) for (i, q), g in c.weight.items() if q == ratio)
        if pts:
            ax_w.plot([p[0] + (j - 1.5) * 0.12 for p in pts], [p[1] for p in pts], "o",
                      ms=4, label=f"ratio {ratio:g}")
    for i, ratio in chosen.items():
        if (i, ratio) in c.weight:
            ax_w.plot([i], [c.weight[(i, ratio)]], "*", ms=15, mfc="none", mec="tab:red")
    ax_w.plot([], [], "*", ms=12, mfc="none", mec="tab:red", label="chosen")
    ax_w.axhline(0, color="grey", lw=0.6)
    ax_w.set_xlabel("conv index (network order)")
    ax_w.set_ylabel("accuracy gain over head only (points)")
    ax_w.set_title("(b) weight updates, per conv and channel ratio")
    ax_w.legend(fontsize=8, ncol=5)
    fig.suptitle(f"contribution analysis: {r.method}, memory {r.memory.bytes / 1024:.1f} KB, "
                 f"predicted gain {r.choice.gain:+.1f} points", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
