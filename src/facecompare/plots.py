"""PNG plots of an evaluation: ROC, DET, and genuine versus impostor score histograms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .evaluation import roc


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def probit(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile (DET-curve axes), by bisection on erf; no SciPy needed."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    lo, hi = np.full_like(p, -6.0), np.full_like(p, 6.0)
    cdf = np.vectorize(lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))), otypes=[np.float64])
    for _ in range(60):
        mid = (lo + hi) / 2
        below = cdf(mid) < p
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def write_plots(out: Path, distances: np.ndarray, same: np.ndarray, calibration,
                thresholds: tuple[float, ...] = (80, 90, 95, 99), title: str = "") -> list[Path]:
    """``roc.png``, ``det.png`` and ``histogram.png`` in ``out``; returns their paths."""
    plt = pyplot()
    out = Path(out)
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same).astype(bool)
    _, fmr, tmr = roc(d, y)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(np.maximum(fmr, 1e-5), tmr, lw=2)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false match rate (log)")
    ax.set_ylabel("true match rate")
    ax.set_title(f"ROC {title}".strip())
    ax.grid(True, which="both", alpha=0.3)
    paths.append(out / "roc.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    fnmr = 1 - tmr
    keep = (fmr > 0) & (fnmr > 0)
    ax.plot(probit(fmr[keep]), probit(fnmr[keep]), lw=2)
    ticks = np.array([1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    ax.set_xticks(probit(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks(probit(ticks))
    ax.set_yticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("false match rate")
    ax.set_ylabel("false non-match rate")
    ax.set_title(f"DET {title}".strip())
    ax.grid(True, alpha=0.3)
    paths.append(out / "det.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if calibration is None:  # a recognizer without a calibration: no Similarity scale to draw
        return paths
    fig, ax = plt.subplots(figsize=(7, 4.5))
    finite = np.isfinite(d)
    sims = np.array([calibration.similarity(x) for x in d[finite]])
    yy = y[finite]
    bins = np.linspace(0, 100, 51)
    ax.hist(sims[yy], bins=bins, alpha=0.6, label=f"genuine ({yy.sum()})", color="tab:green")
    ax.hist(sims[~yy], bins=bins, alpha=0.6, label=f"impostor ({(~yy).sum()})", color="tab:red")
    ax.set_yscale("log")
    for t in thresholds:
        ax.axvline(t, color="black", ls="--", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.7, f" {t:g}", fontsize=8)
    ax.set_xlabel("Similarity")
    ax.set_ylabel("pairs (log)")
    ax.set_title(f"Similarity of genuine and impostor pairs {title}".strip())
    ax.legend(loc="upper center")
    paths.append(out / "histogram.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
