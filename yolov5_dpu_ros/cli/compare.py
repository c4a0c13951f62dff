"""``yolov5-dpu compare``: two runs' detections, frame by frame (two bags) or bag by bag (two replay runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.cli.common import CliError
from yolov5_dpu_ros.cli.compare_plot import check_plot_path, plot_comparison, plot_fleet_comparison
from yolov5_dpu_ros.replay.bag_io import BagError, read_detections
from yolov5_dpu_ros.replay.comparison import Agreement, compare_fleets, compare_runs_of_frames, is_fleet_run

TABLE_ROWS = 40  # bags listed, most changed first


def register(commands: argparse._SubParsersAction) -> None:
    c = commands.add_parser("compare", help="compare two detection bags frame by frame, or two replay runs bag by bag",
                            description="Match the Detection2DArray of two runs by header stamp and frame_id; "
                                        "report precision/recall of B against A at an IoU, score deltas, missing "
                                        "frames; optionally plot per-frame counts and latencies. Given two "
                                        "`yolov5-dpu replay` run folders, pair their bags by relative path and "
                                        "report each bag and the total per class, the most changed bags first.")
    c.add_argument("a", type=Path, help="reference run (bag, or replay run folder)")
    c.add_argument("b", type=Path, help="run to compare (bag, or replay run folder)")
    c.add_argument("--topic", help="Detection2DArray topic (default: the only one in each bag)")
    c.add_argument("--iou", type=float, default=0.5, help="IoU for two boxes of one class to agree (default 0.5)")
    c.add_argument("--plot", type=Path, help="write a figure (.png, .pdf, .svg): detections per frame and latency "
                                             "histograms for two bags; each bag's change for two runs "
                                             "(needs matplotlib: .[plot])")
    c.set_defaults(run=run_compare)


def _totals(result: Agreement, iou: float) -> list[str]:
    deltas = result.score_deltas
    return [f"frames: A {result.frames_a}, B {result.frames_b}, matched by stamp "
            f"{result.frames_a - result.missing_in_b}, missing in B {result.missing_in_b}, missing in A "
            f"{result.missing_in_a}",
            f"detections: A {sum(result.n_a.values())}, B {sum(result.n_b.values())}, agreeing "
            f"{sum(result.tp.values())} (same class, IoU >= {iou})",
            f"precision of B against A: {result.precision():.4f}  recall: {result.recall():.4f}  "
            f"mean score delta (B - A): {np.mean(deltas) if deltas else 0.0:+.4f}  "
            f"mean |delta|: {np.mean(np.abs(deltas)) if deltas else 0.0:.4f}"]


def run_compare(args: argparse.Namespace) -> int:
    if args.plot:
        try:
            check_plot_path(args.plot)
        except ValueError as e:
            raise CliError(str(e)) from e
    fleets = [is_fleet_run(p) for p in (args.a, args.b)]
    if any(fleets) and not all(fleets):
        which = args.a if fleets[0] else args.b
        raise CliError(f"{which} is a replay run (it holds summary.jsonl) and the other is not: compare two bags or "
                       "two replay runs")
    try:
        return _compare_fleets(args) if all(fleets) else _compare_bags(args)
    except BagError as e:
        raise CliError(str(e)) from e


def _compare_bags(args: argparse.Namespace) -> int:
    a, b = read_detections(args.a, args.topic), read_detections(args.b, args.topic)
    print("\n".join(_totals(compare_runs_of_frames(a, b, args.iou), args.iou)))
    if args.plot:
        keys = sorted(set(a.frames) | set(b.frames))
        first = keys[0][0] if keys else 0
        counts_a, counts_b = ([len(run.frames[k][1]) if k in run.frames else float("nan") for k in keys]
                              for run in (a, b))
        plot_comparison(args.plot, [(k[0] - first) * 1e-9 for k in keys], counts_a, counts_b, a.latency_ms,
                        b.latency_ms, (f"A {args.a.name}", f"B {args.b.name}"))
        print(f"plot: {args.plot}")
    return 0


def _compare_fleets(args: argparse.Namespace) -> int:
    result = compare_fleets(args.a, args.b, args.iou, args.topic)
    ranked = result.most_changed()
    lines = [f"{'bag':<40} {'change':>7} {'prec':>7} {'recall':>7} {'dets A':>7} {'dets B':>7} {'miss B':>6} "
             f"{'miss A':>6}"]
    for rel, bag in ranked[:TABLE_ROWS]:
        lines.append(f"{rel[-40:]:<40} {bag.change():>7.4f} {bag.precision():>7.4f} {bag.recall():>7.4f} "
                     f"{sum(bag.n_a.values()):>7} {sum(bag.n_b.values()):>7} {bag.missing_in_b:>6} "
                     f"{bag.missing_in_a:>6}")
    if len(ranked) > TABLE_ROWS:
        lines.append(f"... {len(ranked) - TABLE_ROWS} more bags")
    labels = sorted({*result.total.n_a, *result.total.n_b})
    lines.append("per class: " + ", ".join(f"{x} P {result.total.precision(x):.4f} R {result.total.recall(x):.4f}"
                                           for x in labels))
    lines.append(f"bags compared: {len(result.bags)}")
    lines += _totals(result.total, args.iou)
    for side, rels in (("A", result.only_a), ("B", result.only_b)):
        if rels:
            lines.append(f"only in {side} ({len(rels)}): {', '.join(rels)}")
    print("\n".join(lines))
    if args.plot:
        plot_fleet_comparison(args.plot, ranked, (f"A {args.a.name}", f"B {args.b.name}"))
        print(f"plot: {args.plot}")
    return 0
