"""Post-processing: raw YOLO heads (int8 NHWC + fix points) → Detections in source pixels.

Candidates are rejected on the raw int8 objectness (for a family without one, YOLOv8, the best raw class
logit) before any sigmoid: the confidence threshold becomes one integer per head, so the cost follows the
number of objects, not the number of outputs. The row layout and the box decode come from the family
(``families``: YOLOv5 v6/v7 ``Detect``, YOLOv3, YOLOX, YOLOv8's DFL); the early rejection, scores, selection
and NMS are shared and follow YOLOv5's ``non_max_suppression`` (single label per box, class-aware unless
agnostic), which Ultralytics' YOLOv8 selection equals once the objectness is taken as 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from yolov5_dpu_ros.core import validate
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.families import family, sigmoid, yolov5_boxes
from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads
from yolov5_dpu_ros.core.preprocess import Letterbox


@dataclass(frozen=True)
class PostprocessConfig:
    """Selection settings; validated here so a bad value is refused before it reaches a frame."""

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    classes: tuple[int, ...] | None = None
    agnostic: bool = False
    max_candidates: int = 30000
    low_threshold: float | None = None  # also keep detections down to this score (tracking's second stage)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the checked, plain-Python values
        set_(self, "conf_threshold", validate.real(self.conf_threshold, "conf_threshold", 0.0, 1.0, True, True))
        set_(self, "iou_threshold", validate.real(self.iou_threshold, "iou_threshold", 0.0, 1.0, open_low=True))
        set_(self, "max_detections", validate.integer(self.max_detections, "max_detections", 1))
        set_(self, "max_candidates", validate.integer(self.max_candidates, "max_candidates", 1))
        if not isinstance(self.agnostic, (bool, np.bool_)):
            raise ValueError(f"agnostic must be true or false, got {self.agnostic!r}")
        set_(self, "agnostic", bool(self.agnostic))
        if self.classes is not None:
            if isinstance(self.classes, (str, bytes)) or not hasattr(self.classes, "__iter__"):
                raise ValueError(f"classes must be a list of class indices, got {self.classes!r}")
            set_(self, "classes", tuple(validate.integer(c, "classes[]", 0) for c in self.classes))
        if self.low_threshold is not None:
            set_(self, "low_threshold", validate.real(self.low_threshold, "track_low_threshold", 0.0,
                                                      self.conf_threshold, True, True))


def raw_objectness_threshold(conf_threshold: float, fix_point: int | None) -> float:
    """Smallest raw head value (objectness, or the best class logit) that can still pass
    ``sigmoid(raw * 2**-fix_point) > conf``.

    For int8 heads this is an integer one LSB conservative, so the exact float test after decode
    decides every borderline case; for float heads (``fix_point=None``) a 1e-3 margin does the same.
    """
    logit = math.log(conf_threshold / (1.0 - conf_threshold))
    if fix_point is None:
        return logit - 1e-3
    return float(math.floor(logit * 2.0**fix_point))


def decode_rows(raw: np.ndarray, scale: float | np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray,
                stride: float | np.ndarray, boxes=yolov5_boxes, box_channels: int = 4,
                objectness: bool = True) -> np.ndarray:
    """Decode raw head rows (N, box_channels + objectness + nc), int8 or float, with logit = raw * scale, by the
    family's ``boxes``.

    ``scale`` and ``stride`` are scalars, or (N, 1) columns when the rows come from several heads.
    Returns (N, 7) float32: x, y, w, h in input pixels, objectness (1 for a family without), probability of
    the best class, best class index. The score is sigmoid(objectness) * sigmoid(class), or sigmoid(class);
    the best class is the argmax of the raw class logits (sigmoid is monotonic), so only the score columns of
    a row go through the sigmoid.
    """
    n, first_class = len(raw), box_channels + int(objectness)
    best = raw[:, first_class:].astype(np.float32, copy=False).argmax(axis=1)  # numpy's float argmax is SIMD
    logits = np.empty((n, first_class + 1), np.float32)
    logits[:, :first_class] = raw[:, :first_class]
    logits[:, first_class] = raw[np.arange(n), first_class + best]
    logits *= np.asarray(scale, np.float32)
    out = np.empty((n, 7), np.float32)
    out[:, 0:4] = boxes(logits[:, :box_channels], grid_xy, anchor_wh, stride)
    out[:, 4] = sigmoid(logits[:, box_channels]) if objectness else 1.0
    out[:, 5] = sigmoid(logits[:, first_class])
    out[:, 6] = best
    return out


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre/size boxes to corner boxes."""
    half = xywh[:, 2:4] / 2
    return np.concatenate((xywh[:, 0:2] - half, xywh[:, 0:2] + half), axis=1)


MAX_NMS_PAIRS = 2_000_000
SWEEP_MARGIN = 1e-3  # below the IoU threshold, for the float32 rounding of the IoU and float64 of the class offsets


def _box_iou_pairs(boxes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """IoU of boxes[i] with boxes[j], element-wise (xyxy, no +1 pixel convention, as torchvision)."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    iw = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j])
    ih = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = area[i] + area[j] - inter  # 0 only for two boxes without area, whose overlap is 0 too: IoU 0
    return inter / np.maximum(union, np.finfo(union.dtype).tiny)


def _x_overlapping_pairs(x_ranges: np.ndarray, min_overlap: float) -> tuple[np.ndarray, np.ndarray] | None:
    """All index pairs whose (x1, x2) ranges overlap by more than ``min_overlap`` times the width of the one that
    starts first, by a sweep over x1; None when there are too many."""
    n = len(x_ranges)
    by_x1 = np.argsort(x_ranges[:, 0])
    x1, x2 = x_ranges[by_x1, 0], x_ranges[by_x1, 1]
    ends = np.searchsorted(x1, x2 - min_overlap * (x2 - x1), side="left")
    count = np.maximum(ends - np.arange(n) - 1, 0)
    total = int(count.sum())
    if total > MAX_NMS_PAIRS:
        return None
    first = np.repeat(np.arange(n), count)
    step = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return by_x1[first], by_x1[first + 1 + step]


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou_threshold: float,
        max_detections: int, agnostic: bool = False) -> np.ndarray:
    """Greedy NMS in descending score order; indices kept. A box is dropped when IoU > threshold.

    Only boxes whose x ranges overlap enough can suppress each other, so the IoU is computed for those pairs alone
    (classes are moved apart along x for the sweep unless agnostic, which also keeps pairs to one class), then one
    pass in score order keeps each box no kept box suppressed. Enough: IoU > t needs an x overlap above t times
    either box's width (intersection <= overlap x the smaller height, union >= either area), so pairs overlapping
    by no more than a hair under t times the first box's width are never looked at.
    """
    order = np.argsort(-score, kind="stable")
    boxes = xyxy[order]
    x_ranges = boxes[:, 0::2].astype(np.float64)
    if not agnostic and len(boxes):
        x_ranges += (class_id[order] * (float(x_ranges.max() - x_ranges.min()) + 1.0))[:, None]
    pairs = _x_overlapping_pairs(x_ranges, iou_threshold - SWEEP_MARGIN)
    if pairs is None:
        classes = np.zeros(len(order), np.int32) if agnostic else class_id[order]
        return order[_greedy_nms(boxes, classes, iou_threshold, max_detections)]
    i, j = pairs
    over = _box_iou_pairs(boxes, i, j) > iou_threshold
    lo, hi = np.minimum(i[over], j[over]), np.maximum(i[over], j[over])  # rank lo suppresses rank hi
    n = len(boxes)
    root = np.ones(n, bool)  # no box ranked above overlaps it: kept whatever else happens
    root[hi] = False
    suppressed = np.zeros(n, bool)
    suppressed[hi[root[lo]]] = True  # ... and what a root overlaps is gone
    undecided = np.flatnonzero(~root & ~suppressed)
    if undecided.size:  # the rest in rank order: kept unless a kept box ranked above overlaps it
        by_lo = np.argsort(lo.astype(np.min_scalar_type(n)), kind="stable")  # radix sort on small ints
        suppresses = hi[by_lo]
        starts = np.concatenate(([0], np.cumsum(np.bincount(lo, minlength=n))))
        for r in undecided.tolist():
            if not suppressed[r]:
                root[r] = True
                suppressed[suppresses[starts[r]:starts[r + 1]]] = True
    return order[np.flatnonzero(root)[:max_detections]]


def _greedy_nms(boxes: np.ndarray, classes: np.ndarray, iou_threshold: float, max_detections: int) -> np.ndarray:
    """Plain greedy NMS over rank-ordered boxes, for the rare frame with too many overlapping pairs."""
    keep: list[int] = []
    remaining = np.arange(len(boxes))
    while remaining.size and len(keep) < max_detections:
        first, rest = remaining[0], remaining[1:]
        keep.append(first)
        iou = _box_iou_pairs(boxes, np.full(len(rest), first), rest)
        remaining = rest[(iou <= iou_threshold) | (classes[rest] != classes[first])]
    return np.asarray(keep, dtype=np.intp)


def select(rows: np.ndarray, config: PostprocessConfig) -> Detections:
    """YOLOv5 selection on decoded rows (N, 7): thresholds, class filter, NMS; boxes in input pixels.

    YOLOv5 first drops objectness <= conf, then score = objectness * class probability <= conf; the
    second test implies the first (the product never exceeds objectness), so one test does both.
    """
    score = rows[:, 5] * rows[:, 4]
    keep = score > config.conf_threshold
    if config.classes is not None:
        keep &= np.isin(rows[:, 6], config.classes)
    rows, score = rows[keep], score[keep]
    if len(score) > config.max_candidates:
        top = np.argsort(-score, kind="stable")[: config.max_candidates]
        rows, score = rows[top], score[top]
    xyxy = xywh_to_xyxy(rows[:, :4])
    class_id = rows[:, 6].astype(np.int32)
    kept = nms(xyxy, score, class_id, config.iou_threshold, config.max_detections, config.agnostic)
    return Detections(xyxy[kept], score[kept], class_id[kept])


@dataclass(frozen=True)
class _Level:
    """Per-row constants of one stride level in NHWC row order (y, x, anchor), computed once, and its outputs:
    one (the whole row) or, with split heads, the box part and the class part."""

    outputs: tuple[int, ...]  # indices into the frame's outputs, in part order
    stride: float
    scales: tuple[float, ...] | None  # 2**-fix_point of each part; None for float heads
    threshold_fix_point: int | None  # the fix point of the output holding the scores
    rank: np.ndarray  # (rows,) YOLOv5's anchor-major position of each row, for its tie order
    cell_anchor: np.ndarray  # (rows, 4) float32: cell x, cell y, anchor w, anchor h (pixels)

    @classmethod
    def build(cls, outputs: tuple[int, ...], shape: Sequence[int], stride: float, anchors: np.ndarray,
              fix_points: tuple[int, ...] | None) -> _Level:
        _, h, w, _ = shape
        na = len(anchors)
        y, x, a = np.meshgrid(np.arange(h), np.arange(w), np.arange(na), indexing="ij")
        rank = (a * (h * w) + y * w + x).ravel().astype(np.min_scalar_type(h * w * na))  # small ints sort by radix
        cell_anchor = np.column_stack((x.ravel(), y.ravel(), anchors[a.ravel()])).astype(np.float32)
        scales = None if fix_points is None else tuple(2.0**-fp for fp in fix_points)
        return cls(outputs, stride, scales, None if fix_points is None else fix_points[-1], rank, cell_anchor)


class Postprocessor:
    """Turns one frame's raw outputs into Detections; outputs may come in any order.

    ``fix_points`` gives one fix point per output for int8 heads, or None for float heads; ``output_names``
    decides a YOLOv8 stride's box and class outputs where their shapes cannot (``match_heads``).
    """

    def __init__(self, meta: ModelMeta, output_shapes: Sequence[Sequence[int]],
                 fix_points: Sequence[int] | None, output_names: Sequence[str] | None = None) -> None:
        heads = match_heads(output_shapes, meta, output_names)
        anchors = meta.anchors_array()
        fam = family(meta.family)
        self._boxes, self._objectness = fam.boxes, fam.objectness
        self._box_channels = fam.box_channels(meta.reg_max)
        self._parts = tuple(c // meta.num_anchors for c in meta.parts)  # channels of one anchor's row, per part
        # visit levels in stride order, as YOLOv5 concatenates them (this fixes the order of score ties), and each
        # level's outputs in part order (box, classes)
        by_head = sorted(range(len(heads)), key=heads.__getitem__)
        levels = [tuple(by_head[i:i + len(self._parts)]) for i in range(0, len(by_head), len(self._parts))]
        self._levels = tuple(
            _Level.build(outs, output_shapes[outs[0]], float(meta.strides[meta.head_level(heads[outs[0]])]),
                         anchors[meta.head_level(heads[outs[0]])],
                         None if fix_points is None else tuple(int(fix_points[i]) for i in outs))
            for outs in levels
        )
        # each level's rows scale (1 where the parts were dequantised while gathered) and stride, for the decode
        split = len(self._parts) > 1
        self._scale_stride = np.array([[1.0 if split or lv.scales is None else lv.scales[0], lv.stride]
                                       for lv in self._levels], np.float32)

    def _rows(self, outputs: Sequence[np.ndarray], level: _Level) -> tuple[np.ndarray, ...]:
        """The level's outputs as (rows, channels) views, in part order."""
        return tuple(outputs[i].reshape(-1, c) for i, c in zip(level.outputs, self._parts))

    def candidates(self, outputs: Sequence[np.ndarray], conf_threshold: float) -> np.ndarray:
        """Decoded rows (N, 7) of every anchor whose raw objectness (or best class logit) may pass the threshold."""
        box, split = self._box_channels, len(self._parts) > 1
        picked, raws = [], []
        for level in self._levels:
            parts = self._rows(outputs, level)
            scored = parts[1] if split else parts[0][:, box:]  # objectness (where the family has it), classes
            scores = scored[:, 0] if self._objectness else scored.max(axis=1)
            idx = np.flatnonzero(scores >= raw_objectness_threshold(conf_threshold, level.threshold_fix_point))
            idx = idx[np.argsort(level.rank[idx], kind="stable")]
            picked.append(idx)
            if split:  # parts with their own fix points: dequantised here, so the decode scales by 1
                raws.append(np.concatenate([np.multiply(part[idx], s, dtype=np.float32) for part, s in
                                            zip(parts, level.scales or (1.0,) * len(parts))], axis=1))
            else:
                raws.append(parts[0][idx])
        counts = [len(idx) for idx in picked]
        if not sum(counts):
            return np.zeros((0, 7), np.float32)
        raw = np.concatenate(raws)
        consts = np.concatenate([level.cell_anchor[idx] for level, idx in zip(self._levels, picked)])
        per_row = np.repeat(self._scale_stride, counts, axis=0)
        return decode_rows(raw, per_row[:, :1], consts[:, :2], consts[:, 2:], per_row[:, 1:], self._boxes,
                           box, self._objectness)

    def __call__(self, outputs: Sequence[np.ndarray], letterbox: Letterbox,
                 config: PostprocessConfig) -> Detections:
        """Detections in source-image pixels for one frame."""
        found = select(self.candidates(outputs, config.conf_threshold), config)
        if not len(found):
            return found
        return Detections(letterbox.to_source(found.xyxy), found.score, found.class_id)
