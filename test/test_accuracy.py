"""The shipped demo model through the full int8 contract keeps its accuracy on held-out images."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.evaluate import evaluate
from yolov5_dpu_ros.backends import OnnxSpec
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

pytestmark = [pytest.mark.needs("onnxruntime"), pytest.mark.integration]

HELD_OUT = 240
DEMO_IMAGES = Path(__file__).resolve().parents[1] / "demo" / "images"


@pytest.fixture(scope="module")
def result():
    return evaluate(DEMO_ONNX, DEMO_META, HELD_OUT)


def test_int8_path_map50_at_least_090(result):
    assert result["int8"][0] >= 0.90


def test_int8_path_within_one_point_of_float(result):
    assert abs(result["int8"][0] - result["float"][0]) <= 0.01


def test_shipped_demo_images_give_the_drawn_objects():
    import cv2

    from demo.make_demo_inputs import DEMO_IMAGE_SIZES
    from demo.shapes import make_sample
    from yolov5_dpu_ros.core.metrics import MeanAP, match_by_class

    (detector,) = build_detectors(OnnxSpec(DEMO_ONNX), DEMO_META)
    found_total, drawn_total = 0, 0
    for i, size in enumerate(DEMO_IMAGE_SIZES):
        truth = make_sample(7, "demo", i, size)  # the generator's labels for the shipped image
        image = cv2.imread(str(DEMO_IMAGES / f"shapes_{i}.jpg"))
        assert image.shape[:2] == (size[1], size[0])
        found, _ = detector.detect(image)
        tp = match_by_class(found, truth.xyxy, truth.class_id, MeanAP(5).iou_thresholds[:1])
        found_total += int(tp.sum())
        drawn_total += len(truth.class_id)
    assert found_total / drawn_total >= 0.8
