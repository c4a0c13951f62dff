"""The ``compare --plot`` figure (matplotlib, an optional extra never needed on the board).

Top: detections per frame of both runs against time from the first header stamp, frames missing on
either side marked. Below: one latency histogram per stage, both runs, in labelled millisecond bins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

NEEDS_MATPLOTLIB = "--plot needs matplotlib: pip install 'yolov5_dpu_ros[plot]' (or pip install matplotlib)"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ValueError(NEEDS_MATPLOTLIB) from e
    return plt


def check_plot_path(path: Path) -> None:
    """Refuse a plot path no matplotlib writer knows, or whose folder is missing, before any work."""
    plt = _pyplot()
    known = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in known:
        raise ValueError(f"--plot {path}: no writer for '{path.suffix or 'no extension'}'; use one of "
                         f"{', '.join('.' + k for k in sorted(known))}")
    if not path.parent.is_dir():
        raise ValueError(f"--plot {path}: folder {path.parent} does not exist; create it first")


def plot_comparison(path: Path, times_s: Sequence[float], counts_a: Sequence[float], counts_b: Sequence[float],
                    latency_a: dict[str, list[float]], latency_b: dict[str, list[float]],
                    labels: tuple[str, str] = ("A", "B")) -> None:
    """Write the figure; ``counts_*`` hold NaN where that run has no frame at that stamp."""
    plt = _pyplot()
    stages = [s for s in dict.fromkeys([*latency_a, *latency_b])]
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, max(len(stages), 1), height_ratios=(1.2, 1))
    ax = fig.add_subplot(grid[0, :])
    t = np.asarray(times_s, float)
    for counts, label, style in ((counts_a, labels[0], "-"), (counts_b, labels[1], "--")):
        c = np.asarray(counts, float)
        ax.step(t, c, style, where="mid", label=f"{label}: detections", linewidth=1.4)
        missing = np.isnan(c)
        if missing.any():
            ax.plot(t[missing], np.zeros(missing.sum()), "x", markersize=7,
                    label=f"{label}: frame missing ({int(missing.sum())})")
    ax.set_xlabel("time from the first header stamp (s)")
    ax.set_ylabel("detections per frame")
    ax.set_title("detections per frame")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    for k, stage in enumerate(stages):
        h = fig.add_subplot(grid[1, k])
        values = [latency_a.get(stage, []), latency_b.get(stage, [])]
        both = [v for v in values if v]
        edges = np.histogram_bin_edges(np.concatenate(both), bins=20) if both else np.linspace(0, 1, 21)
        for v, label in zip(values, labels):
            if v:
                h.hist(v, bins=edges, alpha=0.55, label=f"{label} (median {np.median(v):.2f} ms)")
        h.set_xlabel(f"{stage} (ms)")
        h.set_ylabel("frames")
        h.set_title(f"{stage} latency")
        h.grid(alpha=0.3)
        h.legend(fontsize="small")
    if not stages:
        fig.add_subplot(grid[1, 0]).text(0.5, 0.5, "latency not recorded in these bags", ha="center")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_fleet_comparison(path: Path, ranked: Sequence[tuple[str, Any]], labels: tuple[str, str] = ("A", "B"),
                          rows: int = 40) -> None:
    """Write the per-bag figure of two replay runs: each bag's change (1 − F1 of B against A), most changed on top,
    with its precision and recall."""
    plt = _pyplot()
    shown = list(ranked[:rows])[::-1]
    fig, ax = plt.subplots(figsize=(11, 2 + 0.28 * max(len(shown), 1)), layout="constrained")
    y = np.arange(len(shown))
    ax.barh(y, [bag.change() for _, bag in shown], color="tab:red", alpha=0.6, label="change (1 − F1)")
    ax.plot([bag.precision() for _, bag in shown], y, "o", color="tab:blue", label="precision of B against A")
    ax.plot([bag.recall() for _, bag in shown], y, "s", color="tab:green", label="recall of B against A")
    ax.set_yticks(y, [rel for rel, _ in shown], fontsize="small")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("fraction")
    more = f" (the {rows} most changed of {len(ranked)})" if len(ranked) > rows else ""
    ax.set_title(f"{labels[1]} against {labels[0]}, per bag{more}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=100)
    plt.close(fig)
