"""Generated multi-object sequences with ground-truth identities, for the tracker's accuracy (bench_tracking.py,
test/test_tracking.py).

Demo shapes move over a cluttered background at 30 Hz: constant and changing velocities, two objects of one
class crossing, one passing behind another (occlusion), one leaving the frame and coming back. Frames can be
dropped at random (the node replaces frames when busy, the middleware loses some): the stamps of the frames
that remain tell the tracker how much time passed. IDF1/MOTA/ID switches come from ``motmetrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from demo.shapes import NAMES, _background, _draw

FPS = 30.0
SIZE_WH = (320, 240)


@dataclass(frozen=True)
class Mover:
    """One object: its class, radius, colour and position (x, y) at time t seconds."""

    kind: str
    radius: float
    color: tuple[int, int, int]
    path: Callable[[float], tuple[float, float]]


@dataclass(frozen=True)
class Frame:
    """One rendered frame with its stamp and ground truth: identity → xyxy box (objects at least half inside)."""

    stamp: float
    image: np.ndarray
    truth: dict[int, tuple[float, float, float, float]]


def movers() -> list[Mover]:
    """The scene's objects (identities are their list positions)."""
    w, h = SIZE_WH

    def bounce(t: float) -> tuple[float, float]:  # out of the frame on the right for about 0.6 s from ~5.6 s
        turn = (w + 15 - 40) / 50  # it turns back 15 px beyond the edge
        return (40 + 50 * t if t < turn else w + 15 - 50 * (t - turn)), 200.0

    return [
        Mover("circle", 18, (40, 40, 220), lambda t: (20 + 28 * t, 60.0)),  # constant velocity, left to right
        Mover("square", 20, (220, 60, 40), lambda t: (w - 20 - 28 * t, 75.0)),  # crosses the circle
        Mover("triangle", 20, (40, 200, 60),  # changing velocity, back and forth across the others' paths
              lambda t: (160 + 120 * math.sin(0.9 * t), 165 + 8 * math.cos(1.7 * t))),
        Mover("star", 19, (200, 200, 40), lambda t: (30 + 26 * t, 150 - 8 * t)),  # two stars crossing
        Mover("star", 19, (40, 200, 200), lambda t: (290 - 26 * t, 90 + 8 * t)),
        Mover("cross", 18, (200, 40, 200), bounce),
    ]


def render(seconds: float = 10.0, seed: int = 0, noise: float = 3.0) -> list[Frame]:
    """The sequence at 30 Hz: every frame's image and ground truth."""
    w, h = SIZE_WH
    rng = np.random.default_rng(seed)
    scene = _background(rng, w, h)
    objects = movers()
    frames = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        image = scene.copy()
        mask = np.zeros((h, w), np.uint8)
        truth = {}
        for identity, m in enumerate(objects):
            x, y = m.path(t)
            box = _draw(image, mask, m.kind, x, y, m.radius, 0.3 * identity, m.color, None)
            clipped = np.clip(box, 0, [w, h, w, h])
            area = max(0.0, (box[2] - box[0]) * (box[3] - box[1]))
            inside = max(0.0, (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]))
            if area and inside >= 0.5 * area:
                truth[identity] = tuple(float(v) for v in clipped)
        image = np.clip(image.astype(np.int16) + rng.normal(0, noise, image.shape).astype(np.int16), 0, 255)
        frames.append(Frame(t, image.astype(np.uint8), truth))
    return frames


def kept_frames(count: int, drop: float, seed: int = 0) -> np.ndarray:
    """Indices of the frames that reach the tracker when ``drop`` of them are lost at random."""
    keep = np.random.default_rng(seed).random(count) >= drop
    keep[0] = True
    return np.flatnonzero(keep)


def class_of(kind: str) -> int:
    return NAMES.index(kind)


def _iou(a, b) -> float:
    """IoU of two xyxy boxes, written here independently of the package's own."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mot_scores(truth: list[dict], hypotheses: list[dict], min_iou: float = 0.5) -> dict[str, float]:
    """IDF1, MOTA and ID switches (motmetrics) of per-frame hypotheses {track id: xyxy} against the truth."""
    import motmetrics as mm

    accumulator = mm.MOTAccumulator(auto_id=True)
    for gt, hyp in zip(truth, hypotheses):
        distances = np.array([[1 - _iou(g, h) if _iou(g, h) >= min_iou else np.nan for h in hyp.values()]
                              for g in gt.values()]).reshape(len(gt), len(hyp))
        accumulator.update(list(gt), list(hyp), distances)
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1", "mota", "num_switches"], name="run")
    return {"idf1": float(summary["idf1"].iloc[0]), "mota": float(summary["mota"].iloc[0]),
            "id_switches": float(summary["num_switches"].iloc[0])}


def detect_all(frames: list[Frame], low_threshold: float = 0.1) -> list[tuple]:
    """The demo model's (published, low) detections of every frame, once (drops only skip frames)."""
    from yolov5_dpu_ros.backends import OnnxSpec
    from yolov5_dpu_ros.core.postprocess import PostprocessConfig
    from yolov5_dpu_ros.core.workers import build_detectors
    from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

    (detector,) = build_detectors(OnnxSpec(DEMO_ONNX), DEMO_META, config=PostprocessConfig(low_threshold=low_threshold))
    try:
        return [detector.detect_split(f.image)[:2] for f in frames]
    finally:
        detector.close()


def track(frames: list[Frame], found: list[tuple], kept: np.ndarray, tracker) -> tuple[list[dict], list[dict]]:
    """Truth and confirmed-track hypotheses {id: xyxy} of the kept frames, the tracker fed their stamps."""
    truth, hypotheses = [], []
    for i in kept.tolist():
        published, low = found[i]
        ids = tracker.update(frames[i].stamp, published, low).ids
        truth.append(frames[i].truth)
        hypotheses.append({int(k): tuple(float(v) for v in box) for k, box in zip(ids, published.xyxy) if k >= 0})
    return truth, hypotheses
