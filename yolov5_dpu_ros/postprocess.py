"""Post-processing: raw YOLOv5 heads (int8 NHWC + fix points) → Detections in source pixels.

Candidates are rejected on the raw int8 objectness before any sigmoid: the confidence threshold
becomes one integer per head, so the cost follows the number of objects, not the number of
outputs. Decode follows YOLOv5 v6/v7 ``Detect``; selection and NMS follow YOLOv5's
``non_max_suppression`` (single label per box, class-aware unless agnostic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .detections import Detections
from .model_meta import ModelMeta, match_heads
from .preprocess import Letterbox


@dataclass(frozen=True)
class PostprocessConfig:
    """Selection settings; validated here so a bad value is refused before it reaches a frame."""

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    classes: tuple[int, ...] | None = None
    agnostic: bool = False
    max_candidates: int = 30000

    def __post_init__(self) -> None:
        if not 0.0 < self.conf_threshold < 1.0:
            raise ValueError(f"conf_threshold must be in (0, 1), got {self.conf_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_detections < 1 or self.max_candidates < 1:
            raise ValueError(f"max_detections and max_candidates must be >= 1, got "
                             f"{self.max_detections} and {self.max_candidates}")
        if self.classes is not None and any(c < 0 for c in self.classes):
            raise ValueError(f"classes must be non-negative class indices, got {list(self.classes)}")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32."""
    return 1.0 / (1.0 + np.exp(-x, dtype=np.float32))


def raw_objectness_threshold(conf_threshold: float, fix_point: int | None) -> float:
    """Smallest raw head value that can still pass ``sigmoid(raw * 2**-fix_point) > conf``.

    For int8 heads this is an integer one LSB conservative, so the exact float test after decode
    decides every borderline case; for float heads (``fix_point=None``) a 1e-3 margin does the same.
    """
    logit = math.log(conf_threshold / (1.0 - conf_threshold))
    if fix_point is None:
        return logit - 1e-3
    return float(math.floor(logit * 2.0**fix_point))


def decode_rows(logits: np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray, stride: float) -> np.ndarray:
    """YOLOv5 box decode of rows of raw logits (N, 5 + nc) → (N, 5 + nc) xywh pixels, obj, cls."""
    p = sigmoid(logits)
    xy = (p[:, 0:2] * 2.0 - 0.5 + grid_xy) * stride
    wh = (p[:, 2:4] * 2.0) ** 2 * anchor_wh
    return np.concatenate((xy, wh, p[:, 4:]), axis=1)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre/size boxes to corner boxes."""
    half = xywh[:, 2:4] / 2
    return np.concatenate((xywh[:, 0:2] - half, xywh[:, 0:2] + half), axis=1)


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou_threshold: float,
        max_detections: int, agnostic: bool = False) -> np.ndarray:
    """Greedy NMS in descending score order; indices kept. A box is dropped when IoU > threshold."""
    order = np.argsort(-score, kind="stable")
    boxes = xyxy[order].astype(np.float64)
    if not agnostic:
        boxes += (class_id[order] * (float(np.abs(boxes).max(initial=0.0)) * 2 + 1))[:, None]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    remaining = np.arange(len(order))
    while remaining.size and len(keep) < max_detections:
        i = remaining[0]
        keep.append(i)
        rest = remaining[1:]
        b = boxes[rest]
        iw = np.minimum(boxes[i, 2], b[:, 2]) - np.maximum(boxes[i, 0], b[:, 0])
        ih = np.minimum(boxes[i, 3], b[:, 3]) - np.maximum(boxes[i, 1], b[:, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        remaining = rest[inter <= iou_threshold * (areas[i] + areas[rest] - inter)]
    return order[np.asarray(keep, dtype=np.intp)]


def select(pred: np.ndarray, config: PostprocessConfig) -> Detections:
    """YOLOv5 selection on decoded rows (N, 5 + nc): threshold, best class, filter, NMS (input pixels)."""
    pred = pred[pred[:, 4] > config.conf_threshold]
    if not len(pred):
        return Detections.empty()
    scores = pred[:, 5:] * pred[:, 4:5]
    class_id = scores.argmax(axis=1).astype(np.int32)
    score = scores[np.arange(len(scores)), class_id]
    keep = score > config.conf_threshold
    if config.classes is not None:
        keep &= np.isin(class_id, config.classes)
    xywh, score, class_id = pred[keep, :4], score[keep], class_id[keep]
    if len(score) > config.max_candidates:
        top = np.argsort(-score, kind="stable")[: config.max_candidates]
        xywh, score, class_id = xywh[top], score[top], class_id[top]
    xyxy = xywh_to_xyxy(xywh)
    kept = nms(xyxy, score, class_id, config.iou_threshold, config.max_detections, config.agnostic)
    return Detections(xyxy[kept].astype(np.float32), score[kept].astype(np.float32), class_id[kept])


@dataclass(frozen=True)
class _Head:
    stride: float
    width: int
    anchors: np.ndarray  # (na, 2) pixels
    fix_point: int | None


class Postprocessor:
    """Turns one frame's raw outputs into Detections; outputs may come in any order.

    ``fix_points`` gives one fix point per output for int8 heads, or None for float heads.
    """

    def __init__(self, meta: ModelMeta, output_shapes: Sequence[Sequence[int]],
                 fix_points: Sequence[int] | None) -> None:
        levels = match_heads(output_shapes, meta)
        anchors = meta.anchors_array()
        self.meta = meta
        self.no = 5 + meta.num_classes
        # visit outputs in stride order, as YOLOv5 concatenates them (this fixes the order of score ties)
        self._order = tuple(sorted(range(len(levels)), key=levels.__getitem__))
        self._heads = tuple(
            _Head(float(meta.strides[levels[i]]), meta.head_shape(levels[i])[2], anchors[levels[i]],
                  None if fix_points is None else int(fix_points[i]))
            for i in self._order
        )

    def candidates(self, outputs: Sequence[np.ndarray], conf_threshold: float) -> np.ndarray:
        """Decoded rows (N, 5 + nc) of every anchor whose raw objectness may pass the threshold."""
        na = self.meta.num_anchors
        parts = []
        for i, head in zip(self._order, self._heads):
            flat = outputs[i].reshape(-1, self.no)
            idx = np.flatnonzero(flat[:, 4] >= raw_objectness_threshold(conf_threshold, head.fix_point))
            if not idx.size:
                continue
            # YOLOv5 lists rows anchor-major (anchor, y, x); NHWC rows are (y, x, anchor)
            idx = idx[np.argsort((idx % na) * (len(flat) // na) + idx // na, kind="stable")]
            logits = flat[idx].astype(np.float32)
            if head.fix_point is not None:
                logits *= np.float32(2.0**-head.fix_point)
            cell = idx // na
            grid_xy = np.stack((cell % head.width, cell // head.width), axis=1).astype(np.float32)
            parts.append(decode_rows(logits, grid_xy, head.anchors[idx % na], head.stride))
        if not parts:
            return np.zeros((0, self.no), np.float32)
        return np.concatenate(parts)

    def __call__(self, outputs: Sequence[np.ndarray], letterbox: Letterbox,
                 config: PostprocessConfig) -> Detections:
        """Detections in source-image pixels for one frame."""
        found = select(self.candidates(outputs, config.conf_threshold), config)
        if not len(found):
            return found
        return Detections(letterbox.to_source(found.xyxy), found.score, found.class_id)
