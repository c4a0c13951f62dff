"""Detection accuracy: box IoU, matching, and COCO-style mAP@0.5 and mAP@0.5:0.95 (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.postprocess import PostprocessConfig

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
EVAL_CONFIG = PostprocessConfig(conf_threshold=0.001, iou_threshold=0.6, max_detections=300)  # as YOLOv5's val


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, (len(a), len(b))."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def greedy_match(pred: Detections, gt_xyxy: np.ndarray, gt_class: np.ndarray, iou_threshold: float,
                 iou: np.ndarray | None = None) -> np.ndarray:
    """For each prediction the index of the ground truth it matches, or -1: in descending score order
    each prediction takes the unmatched ground truth of its class with the highest IoU, if that IoU
    reaches the threshold."""
    matched = np.full(len(pred), -1, np.int64)
    if not len(pred) or not len(gt_xyxy):
        return matched
    if iou is None:
        iou = class_iou(pred, gt_xyxy, gt_class)
    taken = np.zeros(len(gt_xyxy), bool)
    for i in np.argsort(-pred.score, kind="stable"):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            matched[i] = j
    return matched


def class_iou(pred: Detections, gt_xyxy: np.ndarray, gt_class: np.ndarray) -> np.ndarray:
    """IoU of predictions with ground truth, 0 where the classes differ."""
    iou = box_iou(pred.xyxy.astype(np.float64), np.asarray(gt_xyxy, np.float64))
    iou[pred.class_id[:, None] != np.asarray(gt_class)[None, :]] = 0.0
    return iou


def match_by_class(pred: Detections, gt_xyxy: np.ndarray, gt_class: np.ndarray,
                   iou_thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """True positives (N, T) of the predictions at each IoU threshold (see greedy_match)."""
    tp = np.zeros((len(pred), len(iou_thresholds)), bool)
    if not len(pred) or not len(gt_xyxy):
        return tp
    iou = class_iou(pred, gt_xyxy, gt_class)
    for t, thr in enumerate(iou_thresholds):
        tp[:, t] = greedy_match(pred, gt_xyxy, gt_class, thr, iou) >= 0
    return tp


def average_precision(tp: np.ndarray, score: np.ndarray, n_gt: int) -> np.ndarray:
    """COCO 101-point interpolated AP for one class, one value per IoU threshold."""
    if n_gt == 0:
        return np.full(tp.shape[1], np.nan)
    if not len(score):
        return np.zeros(tp.shape[1])
    order = np.argsort(-score, kind="stable")
    tps = np.cumsum(tp[order], axis=0)
    fps = np.cumsum(~tp[order], axis=0)
    recall = tps / n_gt
    precision = tps / (tps + fps)
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    points = np.linspace(0, 1, 101)
    ap = np.empty(tp.shape[1])
    for t in range(tp.shape[1]):
        idx = np.searchsorted(recall[:, t], points, side="left")
        ap[t] = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1), t], 0.0).mean()
    return ap


@dataclass
class MeanAP:
    """Accumulates predictions and ground truth over images; ``result`` gives mAP per threshold."""

    num_classes: int
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    _tp: list = field(default_factory=list)
    _score: list = field(default_factory=list)
    _class: list = field(default_factory=list)
    _gt_count: np.ndarray | None = None

    def add(self, pred: Detections, gt_xyxy: np.ndarray, gt_class: np.ndarray) -> None:
        """One image: its predictions and its ground-truth boxes (xyxy pixels) and classes."""
        self._tp.append(match_by_class(pred, gt_xyxy, gt_class, self.iou_thresholds))
        self._score.append(pred.score)
        self._class.append(pred.class_id)
        counts = np.bincount(np.asarray(gt_class, np.int64), minlength=self.num_classes)[: self.num_classes]
        self._gt_count = counts if self._gt_count is None else self._gt_count + counts

    def per_class(self) -> np.ndarray:
        """AP (classes, thresholds); NaN for classes without ground truth."""
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, len(self.iou_thresholds)), bool)
        score = np.concatenate(self._score) if self._score else np.zeros(0)
        cls = np.concatenate(self._class) if self._class else np.zeros(0, np.int32)
        gt = self._gt_count if self._gt_count is not None else np.zeros(self.num_classes, np.int64)
        return np.array([average_precision(tp[cls == c], score[cls == c], int(gt[c]))
                         for c in range(self.num_classes)])

    def result(self) -> tuple[float, float]:
        """(mAP@0.5, mAP@0.5:0.95) over the classes that have ground truth."""
        ap = self.per_class()
        return float(np.nanmean(ap[:, 0])), float(np.nanmean(ap.mean(axis=1)))
