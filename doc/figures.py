"""Every figure of the documentation, drawn with matplotlib: the data path, the threads, the architecture, and the
benchmark plots read from the recorded results in ``bench/RESULTS*.md`` (never typed in here).

    python doc/figures.py [OUT]      # default doc/_generated; Sphinx runs it on every build
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

ROOT = Path(__file__).resolve().parents[1]
BOX = dict(boxstyle="round,pad=0.4", facecolor="#eef3fb", edgecolor="#3366aa")


def _chain(ax, steps: list[tuple[float, float, str]], arrows: list[tuple[int, int]]) -> None:
    """Labelled boxes at (x, y) and arrows between them (by index)."""
    for x, y, text in steps:
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=BOX)
    for a, b in arrows:
        (xa, ya, _), (xb, yb, _) = steps[a], steps[b]
        shrink = 16 if abs(xa - xb) < 0.1 else 38  # points: past the box's half width, or half height
        ax.annotate("", xy=(xb, yb), xytext=(xa, ya),
                    arrowprops=dict(arrowstyle="->", color="#555555", shrinkA=shrink, shrinkB=shrink))


def _diagram(path: Path, steps: list[tuple[float, float, str]], arrows: list[tuple[int, int]], size=(10, 3)) -> None:
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, size[1])
    ax.axis("off")
    _chain(ax, steps, arrows)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def data_path(path: Path) -> None:
    """Image → pre-processing → backend → post-processing → messages."""
    steps = [(1.0, 3.0, "sensor_msgs/Image\nor CompressedImage"), (3.6, 3.0, "letterbox, RGB/BGR,\nint8 × 2^fix_point"),
             (6.3, 3.0, "backend: DPU (VART)\nor ONNX Runtime"),
             (9.0, 3.0, "int8 heads: reject on\nraw scores, decode, NMS"),
             (9.0, 1.6, "boxes in source\npixels, track IDs"), (5.8, 1.6, "Detection2DArray,\nlabel_info, image"),
             (5.8, 0.4, "Detection3DArray\n(aligned depth, tf2)")]
    _diagram(path, steps, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6)], size=(10, 3.6))


def threads(path: Path) -> None:
    """Callbacks hand frames to a one-frame slot per camera; workers (one runner each) detect and publish."""
    steps = [(0.8, 2.4, "image callbacks\n(executor thread)"), (3.0, 2.4, "one-frame slot\nper camera (newest wins)"),
             (5.6, 3.2, "worker 1: decode, pre,\nDPU runner 1, post"),
             (5.6, 1.6, "worker N: decode, pre,\nDPU runner N, post"),
             (8.5, 2.4, "publish in each camera's\nframe order"), (3.0, 0.5, "diagnostics timer:\ncounts per window")]
    _diagram(path, steps, [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)], size=(10, 3.8))


def architecture(path: Path) -> None:
    """The subpackages as layers; each imports only those below it (lint-imports checks it in CI)."""
    steps = [(3.0, 4.4, "yolov5_dpu_ros.ros (rclpy node)  │  yolov5_dpu_ros.cli (yolov5-dpu)"),
             (3.0, 3.4, "yolov5_dpu_ros.replay (bags, fleet on Ray)"),
             (3.0, 2.4, "yolov5_dpu_ros.backends (onnx, dpu)"), (3.0, 1.4, "yolov5_dpu_ros.dpu (stacks, xmodel, "
                                                                      "verdict, board, doctor)"),
             (3.0, 0.4, "yolov5_dpu_ros.core (pre, post, families, tracking, depth, ...)"),
             (8.2, 2.4, "model_prep (host scripts)\nimported by nothing at run time")]
    _diagram(path, steps, [(0, 1), (1, 2), (2, 3), (3, 4)], size=(10, 5))


def _tables(path: Path) -> list[tuple[list[str], list[list[str]]]]:
    """The Markdown tables of a results file: (header, rows) each."""
    tables, header, rows = [], None, []
    for line in path.read_text().splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
        elif header is not None:
            tables.append((header, rows))
            header, rows = None, []
    return tables


def _number(text: str) -> float:
    return float(text.rstrip("x"))


def benchmarks(pre_path: Path, post_path: Path, results: Path = ROOT / "bench" / "RESULTS.md") -> None:
    """Pre-processing against its floor and post-processing time against the number of objects, as recorded."""
    tables = _tables(results)
    pre = next((h, r) for h, r in tables if "floor" in h)
    post = next((h, r) for h, r in tables if "K objects" in h)
    header, rows = pre
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = [f"{r[header.index('source')]} → {r[header.index('input')]}" for r in rows]
    ax.barh(labels, [_number(r[header.index("package / floor")]) for r in rows], color="#3366aa")
    ax.axvline(1.0, color="#888888", linewidth=1)
    ax.set_xlabel("pre-processing time / the resize alone (floor)")
    fig.savefig(pre_path, bbox_inches="tight")
    plt.close(fig)
    header, rows = post
    fig, ax = plt.subplots(figsize=(7, 3))
    for size, classes in sorted({(r[header.index("input")], r[header.index("classes")]) for r in rows}):
        picked = [r for r in rows if (r[header.index("input")], r[header.index("classes")]) == (size, classes)]
        ax.plot([int(r[header.index("K objects")]) for r in picked],
                [_number(r[header.index("this package")]) for r in picked], marker="o",
                label=f"{size} input, {classes} classes")
    ax.set_xlabel("objects in the frame (K)")
    ax.set_ylabel("post-processing ms (median)")
    ax.legend(fontsize=8)
    fig.savefig(post_path, bbox_inches="tight")
    plt.close(fig)


def write_figures(out: Path) -> list[Path]:
    """Every figure into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("data_path.svg", "threads.svg", "architecture.svg", "bench_preprocess.svg",
                                     "bench_postprocess.svg")]
    data_path(paths[0])
    threads(paths[1])
    architecture(paths[2])
    benchmarks(paths[3], paths[4])
    return paths


if __name__ == "__main__":
    for written in write_figures(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "_generated"):
        print(written)
