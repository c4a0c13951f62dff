"""Tracking: accuracy on generated sequences with ground-truth identities, the tracker's cost per frame, and
post-processing with tracking's lower rejection threshold against today's.

    python bench/bench_tracking.py [--repeat 100] [--markdown bench/RESULTS_TRACKING.md]

Accuracy: ``mot_sequences.render`` (10 s at 30 Hz: constant and changing velocities, two stars crossing, one
object behind another, one leaving the frame and coming back) through the demo model, then the tracker on the
frames that remain when 0 %, 30 % or 60 % are dropped at random (3 seeds each, mean), fed the frames' stamps;
IDF1, MOTA and ID switches from motmetrics. Speed: ``Tracker.update`` with 20 and 100 objects moving between
frames; YOLOv5 640/80-class post-processing at K=50 with ``low_threshold`` 0.1 against without (same process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "test")]

from bench_families import MODELS  # noqa: E402
from bench_pipeline import median_ms  # noqa: E402
from heads import clustered_heads  # noqa: E402
from mot_sequences import detect_all, kept_frames, mot_scores, render, track  # noqa: E402
from report import emit, timing_arguments  # noqa: E402

from yolov5_dpu_ros.core.detections import Detections  # noqa: E402
from yolov5_dpu_ros.core.families import family as model_family  # noqa: E402
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor  # noqa: E402
from yolov5_dpu_ros.core.preprocess import letterbox_geometry  # noqa: E402
from yolov5_dpu_ros.core.tracking import Tracker  # noqa: E402

DROPS = (0.0, 0.3, 0.6)
SEEDS = 3


def accuracy() -> list[str]:
    frames = render()
    found = detect_all(frames)
    rows = ["| frames dropped | IDF1 | MOTA | ID switches |", "|---|---|---|---|"]
    for drop in DROPS:
        scores = [mot_scores(*track(frames, found, kept_frames(len(frames), drop, seed), Tracker()))
                  for seed in range(SEEDS)]
        mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        rows.append(f"| {drop:.0%} | {mean['idf1']:.3f} | {mean['mota']:.3f} | {mean['id_switches']:.1f} |")
    return rows


def moving_objects(n: int, frames: int, rng: np.random.Generator) -> list[Detections]:
    """``n`` boxes of 5 classes drifting across a 1280x720 image, one Detections per frame."""
    start = rng.uniform([0, 0], [1200, 650], (n, 2))
    velocity = rng.uniform(-4, 4, (n, 2))
    size = rng.uniform(20, 80, (n, 2))
    classes = (np.arange(n) % 5).astype(np.int32)
    out = []
    for f in range(frames):
        centre = start + f * velocity
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
        out.append(Detections(xyxy, np.full(n, 0.8, np.float32), classes))
    return out


def _stepper(sequence: list[Detections]):
    """One Tracker.update per call on the moving objects (frame after frame), after 30 frames that confirm them."""
    tracker = Tracker()
    for i, d in enumerate(sequence[:30]):
        tracker.update(i / 30, d)
    frame = iter(range(30, 10**9))

    def step() -> None:
        i = next(frame)
        tracker.update(i / 30, sequence[i % len(sequence)])

    return step


def tracker_speed(repeat: int) -> list[str]:
    rows = ["| objects | Tracker.update ms per frame (median) | target |", "|---|---|---|"]
    rng = np.random.default_rng(0)
    for n, target in ((20, 0.3), (100, 1.0)):
        sequence = moving_objects(n, 2000, rng)
        (ms,) = median_ms([_stepper(sequence)], repeat * 10)
        rows.append(f"| {n} | {ms:.3f} | <= {target} |")
    return rows


def postprocess_cost(repeat: int) -> list[str]:
    meta, fix_points = MODELS["yolov5"]
    post = Postprocessor(meta, meta.head_shapes, fix_points)
    letterbox = letterbox_geometry((1080, 1920), meta.input_hw, model_family("yolov5").contract)
    heads = clustered_heads(meta, np.random.default_rng(5), fix_points, 50)
    today, tracking = PostprocessConfig(), PostprocessConfig(conf_threshold=0.1)
    published = post(heads, letterbox, today)
    with_low = post(heads, letterbox, tracking)
    same = np.array_equal(with_low.xyxy[with_low.score > 0.25], published.xyxy)
    base, low = median_ms([lambda: post(heads, letterbox, today), lambda: post(heads, letterbox, tracking)], repeat)
    return ["| post-processing, YOLOv5 640, 80 classes, K=50 | ms (median) | ratio | published boxes unchanged |",
            "|---|---|---|---|",
            f"| today (conf 0.25) | {base:.3f} | 1.00x | |",
            f"| with tracking's low threshold 0.1 | {low:.3f} | {low / base:.2f}x (target <= 1.3x) | {same} |"]


def main() -> int:
    args = timing_arguments(__doc__)
    lines = ["# Tracking", "", "`python bench/bench_tracking.py` (sequence generator: `bench/mot_sequences.py`)", "",
             "## Accuracy (generated sequences, demo model, mean of 3 drop seeds)", "", *accuracy(), "",
             "## Tracker cost", "", *tracker_speed(args.repeat), "", "## Post-processing for tracking", "",
             *postprocess_cost(args.repeat)]
    return emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
