"""``yolov5-dpu compare``: two runs' detection bags, frame by frame."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.cli.bag_io import BagError, read_detections
from yolov5_dpu_ros.cli.common import CliError
from yolov5_dpu_ros.cli.compare_plot import check_plot_path, plot_comparison
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.metrics import greedy_match


def register(commands: argparse._SubParsersAction) -> None:
    c = commands.add_parser("compare", help="compare two detection bags frame by frame",
                            description="Match the Detection2DArray of two runs by header stamp and frame_id; "
                                        "report precision/recall of B against A at an IoU, score deltas, missing "
                                        "frames; optionally plot per-frame counts and latencies.")
    c.add_argument("a", type=Path, help="reference run (bag)")
    c.add_argument("b", type=Path, help="run to compare (bag)")
    c.add_argument("--topic", help="Detection2DArray topic (default: the only one in each bag)")
    c.add_argument("--iou", type=float, default=0.5, help="IoU for two boxes of one class to agree (default 0.5)")
    c.add_argument("--plot", type=Path, help="write a figure (.png, .pdf, .svg) of detections per frame over time and "
                                             "latency histograms per stage (needs matplotlib: .[plot])")
    c.set_defaults(run=run_compare)


def _as_detections(frame, label_ids: dict) -> Detections:
    boxes, labels, scores = frame
    ids = np.array([label_ids.setdefault(lab, len(label_ids)) for lab in labels], np.int32)
    return Detections(boxes, scores, ids)


def run_compare(args: argparse.Namespace) -> int:
    if args.plot:
        try:
            check_plot_path(args.plot)
        except ValueError as e:
            raise CliError(str(e)) from e
    try:
        a, b = read_detections(args.a, args.topic), read_detections(args.b, args.topic)
    except BagError as e:
        raise CliError(str(e)) from e
    common = sorted(set(a.frames) & set(b.frames))
    label_ids: dict[str, int] = {}
    tp = n_a = n_b = 0
    deltas = []
    for key in common:
        ref, run = _as_detections(a.frames[key], label_ids), _as_detections(b.frames[key], label_ids)
        matched = greedy_match(run, ref.xyxy, ref.class_id, args.iou)
        tp += int((matched >= 0).sum())
        n_a, n_b = n_a + len(ref), n_b + len(run)
        deltas += (run.score[matched >= 0] - ref.score[matched[matched >= 0]]).tolist()
    precision = tp / n_b if n_b else 1.0
    recall = tp / n_a if n_a else 1.0
    print(f"frames: A {len(a.frames)}, B {len(b.frames)}, matched by stamp {len(common)}, "
          f"missing in B {len(set(a.frames) - set(b.frames))}, missing in A {len(set(b.frames) - set(a.frames))}")
    print(f"detections: A {n_a}, B {n_b}, agreeing {tp} (same class, IoU >= {args.iou})")
    print(f"precision of B against A: {precision:.4f}  recall: {recall:.4f}  "
          f"mean score delta (B - A): {np.mean(deltas) if deltas else 0.0:+.4f}  "
          f"mean |delta|: {np.mean(np.abs(deltas)) if deltas else 0.0:.4f}")
    if args.plot:
        keys = sorted(set(a.frames) | set(b.frames))
        first = keys[0][0] if keys else 0
        counts_a, counts_b = ([len(run.frames[k][1]) if k in run.frames else float("nan") for k in keys]
                              for run in (a, b))
        plot_comparison(args.plot, [(k[0] - first) * 1e-9 for k in keys], counts_a, counts_b, a.latency_ms,
                        b.latency_ms,
                        (f"A {args.a.name}", f"B {args.b.name}"))
        print(f"plot: {args.plot}")
    return 0
