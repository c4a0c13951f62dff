"""core.metrics against the official COCO evaluation (pycocotools' COCOeval: bbox, area "all", maxDets 100) on
random sets with misses, duplicates, class confusion, empty images and classes without ground truth: the
package's mAP@0.5 and mAP@0.5:0.95 must equal COCO's. ``yolov5-dpu compare``, the demo's accuracy table and
model_prep's float-vs-DPU check report these numbers."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.metrics import MeanAP

CLASSES = 6  # class 5 never has ground truth; class 4 gets predictions only in some seeds


def _random_set(seed: int, score_step: float = 0.0):
    """Images of ground truth and predictions: most objects found with jittered boxes (from tight to loose, so
    every IoU threshold matters), some missed, some found twice, some given the wrong class, false alarms, empty
    images; scores continuous, or rounded to ``score_step`` (ties, ranked as COCO ranks them: stably)."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(25):
        n_gt = 0 if index % 7 == 0 else int(rng.integers(1, 9))
        xy = rng.uniform(0, 500, (n_gt, 2))
        wh = rng.uniform(10, 120, (n_gt, 2))
        gt = np.column_stack([xy, xy + wh])
        gt_class = rng.integers(0, CLASSES - 1, n_gt)
        boxes, classes = [], []
        for box, cls, size in zip(gt, gt_class, wh):
            draw = rng.random()
            if draw < 0.15:
                continue  # missed
            copies = 2 if draw > 0.85 else 1  # a duplicate
            jitter = rng.uniform(0.01, 0.2)
            for _ in range(copies):
                boxes.append(box + rng.normal(0, jitter, 4) * np.concatenate([size, size]))
                classes.append(rng.integers(0, CLASSES) if rng.random() < 0.1 else cls)  # class confusion
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            start = rng.uniform(0, 500, 2)
            boxes.append(np.concatenate([start, start + rng.uniform(10, 80, 2)]))
            classes.append(rng.integers(0, CLASSES))
        scores = rng.random(len(boxes))
        scores = np.maximum(np.round(scores / score_step) * score_step, score_step) if score_step else scores
        pred = Detections(np.asarray(boxes, np.float32).reshape(-1, 4), scores.astype(np.float32),
                          np.asarray(classes, np.int32))
        images.append((gt, gt_class, pred))
    return images


def _coco(images):
    """COCOeval's AP per class and IoU threshold (NaN without ground truth), from its precision table (recall
    points x class, area "all", maxDets 100), and its summary mAP@0.5 and mAP@0.5:0.95."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image_id, (gt, gt_class, pred) in enumerate(images):
        for box, cls in zip(gt, gt_class):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls),
                                "bbox": [float(box[0]), float(box[1]), float(w), float(h)], "area": float(w * h),
                                "iscrowd": 0})
        for box, score, cls in zip(pred.xyxy.astype(np.float64), pred.score, pred.class_id):
            results.append({"image_id": image_id, "category_id": int(cls), "score": float(score),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    truth = COCO()
    truth.dataset = {"images": [{"id": i} for i in range(len(images))], "annotations": annotations,
                     "categories": [{"id": c} for c in range(CLASSES)]}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][:, :, :, 0, 2]  # (thresholds, recall points, classes)
    per_class = np.where((precision > -1).all(axis=1), precision.mean(axis=1), np.nan).T
    return per_class, (float(evaluation.stats[1]), float(evaluation.stats[0]))  # mAP@0.5, mAP@0.5:0.95


def _ours(images):
    meter = MeanAP(CLASSES)
    for gt, gt_class, pred in images:
        meter.add(pred, gt.astype(np.float32).astype(np.float64), gt_class)
    return meter.per_class(), meter.result()


@pytest.mark.needs("pycocotools")
@pytest.mark.parametrize("seed,score_step", [(seed, 0.0) for seed in range(6)] + [(6, 0.1), (7, 0.25)])
def test_map_equals_cocoeval(seed, score_step):
    """Every class's AP at every IoU threshold, and both summaries, equal COCO's."""
    images = _random_set(seed, score_step)
    images = [(gt.astype(np.float32).astype(np.float64), cls, pred) for gt, cls, pred in images]
    (ours_ap, ours), (coco_ap, coco) = _ours(images), _coco(images)
    assert 0.05 < coco[1] < coco[0] < 0.999  # a set where matching, classes and ranks all matter
    by_threshold = np.nanmean(coco_ap, axis=0)
    assert np.all(np.diff(by_threshold) < 0) or by_threshold[-1] == 0  # looser matches count at each step
    np.testing.assert_allclose(ours_ap, coco_ap, atol=1e-6)
    np.testing.assert_allclose(ours, coco, atol=1e-6)


def _iou_reference(a, b) -> float:
    """IoU of two xyxy boxes, written out (0 when the union is empty)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_box_iou_equals_the_written_out_rule_for_disjoint_touching_tiny_and_empty_boxes(dtype):
    from yolov5_dpu_ros.core.metrics import box_iou

    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [3, 3, 3, 3], [0, 0, 1, 1], [0, 0, 4, 2]], dtype)
    b = np.array([[20, 20, 30, 30], [10, 0, 20, 10], [3, 3, 3, 3], [0, 0, 1, 1], [1, 0, 3, 1], [0, 0, 2, 1]], dtype)
    got = box_iou(a, b)
    want = np.array([[_iou_reference(x, y) for y in b.tolist()] for x in a.tolist()])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 5, (30, 2))
    boxes = np.column_stack([xy, xy + rng.uniform(0, 1.5, (30, 2))])  # sides under a pixel, many disjoint
    np.testing.assert_allclose(box_iou(boxes, boxes[::-1]),
                               [[_iou_reference(x, y) for y in boxes[::-1]] for x in boxes], atol=1e-12)


def test_mean_ap_of_nothing_is_nan_and_a_class_never_predicted_scores_zero():
    empty = MeanAP(3)
    assert np.isnan(empty.per_class()).all() and all(np.isnan(v) for v in empty.result())
    meter = MeanAP(3)
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    meter.add(Detections(gt[:1].astype(np.float32), np.array([0.9], np.float32), np.array([0], np.int32)),
              gt, np.array([0.0, 1.0]))  # classes as a label file's floats; class 1 is never predicted
    ap = meter.per_class()
    assert ap[0].tolist() == [1.0] * 10 and ap[1].tolist() == [0.0] * 10 and np.isnan(ap[2]).all()
    assert meter.result() == (0.5, 0.5)


def test_mean_ap_uses_its_own_iou_thresholds():
    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    pred = Detections(np.array([[0.0, 0.0, 10.0, 6.0]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32))  # IoU 0.6
    meter = MeanAP(1, iou_thresholds=np.array([0.5, 0.7]))
    meter.add(pred, gt, np.array([0]))
    assert meter.per_class().tolist() == [[1.0, 0.0]] and meter.result() == (1.0, 0.5)


def _greedy_reference(boxes, scores, classes, gt, gt_class, threshold):
    """The matching rule written out: by descending score (ties in input order) each prediction takes the
    unmatched ground truth of its class with the highest IoU (the first on a tie), if that IoU reaches the
    threshold; -1 otherwise."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    matched, taken = [-1] * len(scores), set()
    for i in order:
        best, best_iou = -1, -1.0
        for j in range(len(gt)):
            iou = _iou_reference(boxes[i], gt[j]) if classes[i] == gt_class[j] else 0.0
            if j not in taken and iou > best_iou:
                best, best_iou = j, iou
        if best >= 0 and best_iou >= threshold:
            matched[i] = best
            taken.add(best)
    return matched


@pytest.mark.parametrize("seed", range(4))
def test_greedy_match_equals_the_written_out_rule(seed):
    from yolov5_dpu_ros.core.metrics import greedy_match

    for gt, gt_class, pred in _random_set(seed, score_step=0.2):
        for threshold in (0.3, 0.5, 0.75):
            got = greedy_match(pred, gt, gt_class, threshold)
            assert got.dtype == np.int64
            assert got.tolist() == _greedy_reference(pred.xyxy.astype(np.float64).tolist(), pred.score.tolist(),
                                                     pred.class_id.tolist(), gt.tolist(), gt_class.tolist(),
                                                     threshold)


def test_greedy_match_at_exactly_the_threshold_and_with_nothing_to_match():
    from yolov5_dpu_ros.core.metrics import greedy_match

    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    half = Detections(np.array([[0.0, 0.0, 10.0, 5.0]], np.float32), np.array([0.9], np.float32),
                      np.array([2], np.int32))  # IoU exactly 0.5
    assert greedy_match(half, gt, np.array([2]), 0.5).tolist() == [0]  # an IoU at the threshold matches
    assert greedy_match(half, gt, np.array([1]), 0.5).tolist() == [-1]  # another class never does
    assert greedy_match(half, np.zeros((0, 4)), np.zeros(0, np.int64), 0.5).tolist() == [-1]
    none = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
    assert greedy_match(none, gt, np.array([2]), 0.5).tolist() == []
