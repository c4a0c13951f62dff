"""Post-processing: raw YOLO heads (int8 NHWC + fix points) → Detections in source pixels.

Candidates are rejected on the raw int8 objectness (for a family without one, YOLOv8, the best raw class
logit) before any sigmoid: the confidence threshold becomes one integer per head, so the cost follows the
number of objects, not the number of outputs. The row layout and the box decode come from the family
(``families``: YOLOv5 v6/v7 ``Detect``, YOLOv3, YOLOX, YOLOv8's DFL); the early rejection, scores, selection
and NMS are shared and follow YOLOv5's ``non_max_suppression`` (single label per box, class-aware unless
agnostic), which Ultralytics' YOLOv8 selection equals once the objectness is taken as 1. The per-frame code calls
ndarray methods rather than numpy's module functions (``x.nonzero()[0]``, not ``np.flatnonzero(x)``): each of those
wrappers is one to three more Python calls, some twenty a frame.
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
    logits = _columns(n, first_class + 1)
    logits[:, :first_class] = raw[:, :first_class]
    width = raw.shape[1]  # the best logit taken flat: twice as fast as raw[rows, columns]
    logits[:, first_class] = raw.ravel().take(best + np.arange(first_class, n * width, width))
    logits *= np.asarray(scale, np.float32)
    out = _columns(n, 7)
    out[:, 0:4] = boxes(logits[:, :box_channels], grid_xy, anchor_wh, stride)
    out[:, 4] = sigmoid(logits[:, box_channels]) if objectness else 1.0
    out[:, 5] = sigmoid(logits[:, first_class])
    out[:, 6] = best
    return out


def _columns(n: int, width: int) -> np.ndarray:
    """An (n, width) float32 array stored column by column: element-wise numpy over a few columns of many rows then
    runs one loop per column instead of one per row (about twice as fast for the box arithmetic)."""
    return np.empty((width, n), np.float32).T


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre/size boxes to corner boxes."""
    half = xywh[:, 2:4] / 2
    xyxy = _columns(len(xywh), 4)
    np.subtract(xywh[:, 0:2], half, out=xyxy[:, 0:2])
    np.add(xywh[:, 0:2], half, out=xyxy[:, 2:4])
    return xyxy


MAX_NMS_PAIRS = 2_000_000
SWEEP_MARGIN = 1e-3  # below the IoU threshold, for the float32 rounding of the IoU and float64 of the sweep keys
TINY = np.finfo(np.float32).tiny
SPLIT_BOXES = 1024  # from this many candidates NMS settles the top fifth first ...
CROWD_PAIRS_PER_BOX = 16  # ... and from this many pairs per box below it
TOP_PART = 5  # the top fifth (all three measured, doc/performance.md)


def rank_order(score: np.ndarray) -> np.ndarray:
    """Indices by descending score, equal scores in index order: ``argsort(-score, kind="stable")`` for float32
    scores that are not NaN, as one sort of int64 keys (the score's bits made monotone, above the index), which
    takes half the time of a stable float sort."""
    n = len(score)
    shift = max(n - 1, 1).bit_length()
    bits = (np.asarray(score, np.float32) + np.float32(0)).view(np.int32).astype(np.int64)  # -0.0 becomes 0.0
    bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats in reverse: now the ints order as the floats
    key = ~bits << shift  # descending score
    key |= np.arange(n)
    key.sort()
    return key & ((1 << shift) - 1)


def iou_limit(iou_threshold: float) -> np.float32:
    """The largest float32 at or below the threshold: a float32 IoU is above it exactly when it is above the
    threshold itself, as torchvision compares (its float IoU against a double threshold; numpy would compare in
    float32, and 0.3 rounds up there)."""
    limit = np.float32(iou_threshold)
    return limit if float(limit) <= iou_threshold else np.nextafter(limit, np.float32(-np.inf))


def _box_iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a with boxes b, element-wise, from their (5, n) rows x1, y1, x2, y2, area (float32, as torchvision
    computes it, no +1 pixel convention)."""
    # three temporaries, the rest in place: the arrays of a frame's pairs are its largest
    inter, ih, scratch = np.minimum(a[2], b[2]), np.minimum(a[3], b[3]), np.maximum(a[0], b[0])
    inter -= scratch
    ih -= np.maximum(a[1], b[1], out=scratch)
    np.maximum(inter, 0, out=inter)
    inter *= np.maximum(ih, 0, out=ih)
    union = np.add(a[4], b[4], out=ih)
    union -= inter  # 0 only for two boxes without area, whose overlap is 0 too: IoU 0
    return np.divide(inter, np.maximum(union, TINY, out=union), out=inter)


@dataclass(frozen=True)
class _Sweep:
    """A frame's candidates in rank order as the sweep sees them: corners and areas, bands, each box's key (band,
    then x1: the bands lie apart) and reach, and the boxes in key order. IoU > t needs an x overlap above t times either
    box's width (intersection <= overlap x the smaller height, union >= either area), so a partner that starts at or
    after a box's x1 starts before x1 + (1 - t) x its width: the reach, from a hair under t (``SWEEP_MARGIN``)."""

    boxes: np.ndarray  # (5, n) float32: x1, y1, x2, y2, area
    band: np.ndarray  # (n,) int32: the class, or 0 for class-agnostic NMS
    key: np.ndarray  # (n,) float64
    reach: np.ndarray  # (n,) float64: a partner's key lies below this
    by_key: np.ndarray  # (n,) the boxes in key order
    share: float  # the threshold less the margin
    span: float  # the keys of band b start at b x span

    @classmethod
    def build(cls, boxes: np.ndarray, band: np.ndarray, iou_threshold: float) -> _Sweep:
        """From the boxes' corner rows (their area row is filled in here)."""
        np.multiply(boxes[2] - boxes[0], boxes[3] - boxes[1], out=boxes[4])
        x1 = boxes[0].astype(np.float64)
        width = boxes[2].astype(np.float64) - x1
        x1 -= x1.min()
        span = float((x1 + width).max()) + 1.0  # more than any reach from its band's start
        share = iou_threshold - SWEEP_MARGIN
        key = band * span + x1
        reach = key + (1.0 - share) * width
        return cls(boxes, band, key, reach, key.argsort(), share, span)

    def windows(self, boxes: np.ndarray) -> np.ndarray:
        """For each of ``boxes`` (in key order) how many of the boxes after it may overlap it enough: those whose
        key lies below its reach. Each such pair is seen once, from the box whose key comes first."""
        return np.maximum(self.key.take(boxes).searchsorted(self.reach.take(boxes)) - np.arange(1, len(boxes) + 1),
                          0)

    def pairs_over(self, own: np.ndarray, start: np.ndarray, count: np.ndarray, pairs: int, partners: np.ndarray,
                   limit: np.float32) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of each box of ``own`` with its window ``partners[start:start + count]`` (``pairs`` in all) whose
        IoU is above ``limit``: the own box and the partner of each. The IoU runs window by window: each own box
        repeated, its partners read in a row."""
        mate = partners.take(np.arange(pairs) + (start - count.cumsum() + count).repeat(count))
        iou = _box_iou_pairs(self.boxes.take(own, axis=1).repeat(count, axis=1), self.boxes.take(mate, axis=1))
        over = (iou > limit).nonzero()[0]
        return own.repeat(count).take(over), mate.take(over)


def _kept_among(sweep: _Sweep, boxes: np.ndarray, count: np.ndarray, pairs: int, limit: np.float32,
                max_detections: int) -> np.ndarray:
    """Greedy NMS among ``boxes`` (in key order; ``count``: their windows, ``pairs`` in all): those kept, in rank
    order. The pairs above the limit decide in one pass: a box no other box ranked above overlaps is kept, what such
    a box overlaps is gone, the few others go in rank order."""
    if pairs > MAX_NMS_PAIRS:
        ranked = np.sort(boxes)
        return ranked.take(_greedy_nms(sweep.boxes.take(ranked, axis=1), sweep.band.take(ranked), limit,
                                       max_detections))
    i, j = sweep.pairs_over(boxes, np.arange(1, len(boxes) + 1), count, pairs, boxes, limit)
    lo, hi = np.minimum(i, j), np.maximum(i, j)  # rank lo suppresses rank hi
    suppressed = np.ones(len(sweep.key), bool)  # boxes not among these stay out of every decision below
    suppressed[boxes] = False
    root = ~suppressed  # no box ranked above overlaps it: kept whatever else happens
    root[hi] = False
    suppressed[hi.compress(root.take(lo))] = True  # ... and what a root overlaps is gone
    undecided = ~(root | suppressed)
    rest = undecided.nonzero()[0]
    if len(rest):  # in rank order: kept unless a kept box ranked above overlaps it
        theirs = undecided.take(lo).nonzero()[0]  # the pairs an undecided box may suppress by (few)
        lo, hi = lo.take(theirs), hi.take(theirs)
        by_lo = lo.argsort(kind="stable")
        lo, hi = lo.take(by_lo), hi.take(by_lo)
        for r in rest.tolist():
            if not suppressed[r]:
                root[r] = True
                suppressed[hi[lo.searchsorted(r):lo.searchsorted(r, side="right")]] = True
    return root.nonzero()[0]


def _overlapped(sweep: _Sweep, kept: np.ndarray, rest: np.ndarray, limit: np.float32) -> np.ndarray | None:
    """Which boxes of ``rest`` (in key order) a box of ``kept`` overlaps above the limit, as a bool over every box, or
    None when there are too many pairs to look at. A partner starting first starts less than its own reach before
    the kept box, and IoU > t needs its width below the kept box's over t: one window a kept box, from that far back
    (but not before its band; the whole band for a threshold at or below the margin) to the kept box's reach."""
    key, reach = sweep.key.take(kept), sweep.reach.take(kept)
    rest_key = sweep.key.take(rest)
    band_start = sweep.band.take(kept) * sweep.span
    back = key - (reach - key) / sweep.share if sweep.share > 0 else band_start
    start = rest_key.searchsorted(np.maximum(back, band_start))
    count = np.maximum(rest_key.searchsorted(reach) - start, 0)
    pairs = int(count.sum())
    if pairs > MAX_NMS_PAIRS:
        return None
    _, hit = sweep.pairs_over(kept, start, count, pairs, rest, limit)
    gone = np.zeros(len(sweep.key), bool)
    gone[hit] = True
    return gone


def _kept(sweep: _Sweep, boxes: np.ndarray, limit: np.float32, max_detections: int) -> np.ndarray:
    """Greedy NMS among ``boxes`` (in key order): those kept, in rank order. From ``SPLIT_BOXES`` boxes on, or
    ``CROWD_PAIRS_PER_BOX`` pairs a box, their top fifth is settled first (the same way): greedy NMS decides a box by
    the boxes ranked above it alone, so what the top fifth keeps stays kept, a box below it that one of those
    overlaps is gone, and greedy NMS among the rest gives the others. Only pairs within the top fifth or with a box
    it keeps then get an IoU; an object's cluster of candidates is mostly pairs among boxes its best one suppresses
    (12 classes, 200 objects: 10k pairs of 53k)."""
    n = len(boxes)
    if n < max(SPLIT_BOXES, TOP_PART):
        count = sweep.windows(boxes)
        pairs = int(count.sum())
        if n < TOP_PART or pairs <= CROWD_PAIRS_PER_BOX * n:
            return _kept_among(sweep, boxes, count, pairs, limit, max_detections)
    top = boxes < np.partition(boxes, n // TOP_PART)[n // TOP_PART]
    kept = _kept(sweep, boxes.compress(top), limit, max_detections)
    if len(kept) >= max_detections:
        return kept
    rest = boxes.compress(~top)
    gone = _overlapped(sweep, kept, rest, limit)
    if gone is None:
        count = sweep.windows(boxes)
        return _kept_among(sweep, boxes, count, int(count.sum()), limit, max_detections)
    return np.concatenate((kept, _kept(sweep, rest.compress(~gone.take(rest)), limit, max_detections)))


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou_threshold: float,
        max_detections: int, agnostic: bool = False) -> np.ndarray:
    """Greedy NMS in descending score order; indices kept. A box is dropped when IoU > threshold.

    Only boxes whose x ranges overlap enough can suppress each other (``_Sweep``; classes are bands apart unless
    agnostic), so the IoU is computed for those pairs alone (``_kept``).
    """
    order = rank_order(score)
    n = len(order)
    if not n:
        return order
    boxes = np.empty((5, n), np.float32)
    boxes[:4] = xyxy.take(order, axis=0).T  # corners in rank order (rows taken, then turned: 3x faster than columns)
    band = np.zeros(n, np.int32) if agnostic else class_id.take(order)
    sweep = _Sweep.build(boxes, band, iou_threshold)
    kept = _kept(sweep, sweep.by_key, iou_limit(iou_threshold), max_detections)
    return order.take(kept[:max_detections])


def _greedy_nms(boxes: np.ndarray, band: np.ndarray, limit: np.float32, max_detections: int) -> np.ndarray:
    """Plain greedy NMS over rank-ordered boxes ((5, n) rows, as ``_Sweep`` has them), for the rare frame with too
    many overlapping pairs."""
    keep: list[int] = []
    remaining = np.arange(boxes.shape[1])
    while remaining.size and len(keep) < max_detections:
        first, rest = remaining[0], remaining[1:]
        keep.append(first)
        iou = _box_iou_pairs(boxes[:, first:first + 1], boxes.take(rest, axis=1))
        remaining = rest[(iou <= limit) | (band[rest] != band[first])]
    return np.asarray(keep, dtype=np.intp)


def select(rows: np.ndarray, config: PostprocessConfig) -> Detections:
    """YOLOv5 selection on decoded rows (N, 7): thresholds, class filter, NMS; boxes in input pixels.

    YOLOv5 first drops objectness <= conf, then score = objectness * class probability <= conf; the
    second test implies the first (the product never exceeds objectness), so one test does both.
    """
    score = rows[:, 5] * rows[:, 4]
    passed = score > config.conf_threshold
    if config.classes is not None:
        passed &= np.isin(rows[:, 6], config.classes)
    keep = passed.nonzero()[0]
    if len(keep) > config.max_candidates:
        keep = keep.take(rank_order(score.take(keep))[: config.max_candidates])
    picked = rows.T.take(keep, axis=1).T  # column by column, as the decode gave them (see _columns)
    score = score.take(keep)
    xyxy = xywh_to_xyxy(picked[:, :4])
    class_id = picked[:, 6].astype(np.int32)
    kept = nms(xyxy, score, class_id, config.iou_threshold, config.max_detections, config.agnostic)
    return Detections(xyxy.take(kept, axis=0), score.take(kept), class_id.take(kept))


@dataclass(frozen=True)
class _Level:
    """Per-row constants of one stride level in NHWC row order (y, x, anchor), computed once, and its outputs:
    one (the whole row) or, with split heads, the box part and the class part."""

    outputs: tuple[int, ...]  # indices into the frame's outputs, in part order
    scales: tuple[float, ...] | None  # 2**-fix_point of each part; None for float heads
    threshold_fix_point: int | None  # the fix point of the output holding the scores
    order: np.ndarray  # (rows,) the row at each place of YOLOv5's anchor-major order (a, y, x), its order of ties
    decode: np.ndarray  # (6, rows) float32: cell x, cell y, anchor w, anchor h (pixels), scale, stride

    @classmethod
    def build(cls, outputs: tuple[int, ...], shape: Sequence[int], stride: float, anchors: np.ndarray,
              fix_points: tuple[int, ...] | None, split: bool) -> _Level:
        """``split``: the parts are dequantised while gathered, so the decode scales the rows by 1."""
        _, h, w, _ = shape
        na = len(anchors)
        y, x, a = np.meshgrid(np.arange(h), np.arange(w), np.arange(na), indexing="ij")
        order = np.arange(h * w * na).reshape(h * w, na).T.ravel()
        scales = None if fix_points is None else tuple(2.0**-fp for fp in fix_points)
        scale = 1.0 if split or scales is None else scales[0]
        decode = np.vstack((x.ravel(), y.ravel(), anchors[a.ravel()].T, np.full((2, order.size), [[scale], [stride]])))
        return cls(outputs, scales, None if fix_points is None else fix_points[-1], order,
                   decode.astype(np.float32))


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
        self._anchors = meta.num_anchors
        self._parts = tuple(c // meta.num_anchors for c in meta.parts)  # channels of one anchor's row, per part
        # visit levels in stride order, as YOLOv5 concatenates them (this fixes the order of score ties), and each
        # level's outputs in part order (box, classes)
        by_head = sorted(range(len(heads)), key=heads.__getitem__)
        levels = [tuple(by_head[i:i + len(self._parts)]) for i in range(0, len(by_head), len(self._parts))]
        self._levels = tuple(
            _Level.build(outs, output_shapes[outs[0]], float(meta.strides[meta.head_level(heads[outs[0]])]),
                         anchors[meta.head_level(heads[outs[0]])],
                         None if fix_points is None else tuple(int(fix_points[i]) for i in outs), len(self._parts) > 1)
            for outs in levels
        )

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
            threshold = raw_objectness_threshold(conf_threshold, level.threshold_fix_point)
            # compared in YOLOv5's order (anchor, then cell), so the candidates come out in its order of score ties
            passed = np.greater_equal(scores.reshape(-1, self._anchors).T, threshold, order="C")
            idx = level.order.take(passed.ravel().nonzero()[0])
            picked.append(level.decode.take(idx, axis=1))
            if split:  # parts with their own fix points: dequantised here, so the decode scales by 1
                raws.append(np.concatenate([np.multiply(part.take(idx, axis=0), s, dtype=np.float32) for part, s in
                                            zip(parts, level.scales or (1.0,) * len(parts))], axis=1))
            else:
                raws.append(parts[0].take(idx, axis=0))
        raw = np.concatenate(raws)
        if not len(raw):
            return np.zeros((0, 7), np.float32)
        consts = np.concatenate(picked, axis=1).T  # (N, 6), column by column (see _columns)
        return decode_rows(raw, consts[:, 4:5], consts[:, 0:2], consts[:, 2:4], consts[:, 5:6], self._boxes,
                           box, self._objectness)

    def __call__(self, outputs: Sequence[np.ndarray], letterbox: Letterbox,
                 config: PostprocessConfig) -> Detections:
        """Detections in source-image pixels for one frame."""
        found = select(self.candidates(outputs, config.conf_threshold), config)
        if not len(found):
            return found
        return Detections(letterbox.to_source(found.xyxy), found.score, found.class_id)
