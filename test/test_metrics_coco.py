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


def _random_set(seed: int):
    """Images of ground truth and predictions: most objects found with jittered boxes, some missed, some found
    twice, some given the wrong class, false alarms, empty images; scores continuous (no ties)."""
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
            for _ in range(copies):
                boxes.append(box + rng.normal(0, 0.08, 4) * np.concatenate([size, size]))
                classes.append(rng.integers(0, CLASSES) if rng.random() < 0.1 else cls)  # class confusion
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            start = rng.uniform(0, 500, 2)
            boxes.append(np.concatenate([start, start + rng.uniform(10, 80, 2)]))
            classes.append(rng.integers(0, CLASSES))
        pred = Detections(np.asarray(boxes, np.float32).reshape(-1, 4), rng.random(len(boxes)).astype(np.float32),
                          np.asarray(classes, np.int32))
        images.append((gt, gt_class, pred))
    return images


def _coco(images) -> tuple[float, float]:
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
    return float(evaluation.stats[1]), float(evaluation.stats[0])  # mAP@0.5, mAP@0.5:0.95


def _ours(images) -> tuple[float, float]:
    meter = MeanAP(CLASSES)
    for gt, gt_class, pred in images:
        meter.add(pred, gt.astype(np.float32).astype(np.float64), gt_class)
    return meter.result()


@pytest.mark.needs("pycocotools")
@pytest.mark.parametrize("seed", range(6))
def test_map_equals_cocoeval(seed):
    images = _random_set(seed)
    images = [(gt.astype(np.float32).astype(np.float64), cls, pred) for gt, cls, pred in images]
    ours, coco = _ours(images), _coco(images)
    assert 0.05 < coco[1] < coco[0] < 0.999  # a set where matching, classes and ranks all matter
    np.testing.assert_allclose(ours, coco, atol=1e-6)
