"""ONNX backend contract and the Detector end to end, on a ReLU yolov5n exported by the fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_bgr
from test_postprocess import assert_same_detections, reference_detections

from yolov5_dpu_ros.backends import OnnxSpec, allocate_outputs
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.model_meta import save_meta
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.core.preprocess import Preprocessor
from yolov5_dpu_ros.core.workers import build_detectors


def test_onnx_backend_honours_the_int8_contract(test_model):
    onnx_path, meta, torch_model = test_model
    import torch

    backend = OnnxSpec(onnx_path, 1).open(meta, 1)
    assert backend.input_spec.shape == (1, 320, 320, 3) and backend.input_spec.fix_point == 7
    assert [s.shape for s in backend.output_specs] == list(meta.head_shapes)
    pre = Preprocessor(meta.input_hw, 7)
    pre(random_bgr(np.random.default_rng(0), 480, 640))
    outputs = allocate_outputs(backend.output_specs)
    backend.run(pre.buffer, outputs)

    x = torch.from_numpy(pre.buffer.astype(np.float32) / 128.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        raw = torch_model(x)
    for out, spec, ref in zip(outputs, backend.output_specs, raw):
        expected = np.clip(np.rint(ref.permute(0, 2, 3, 1).numpy() * 2.0**spec.fix_point), -128, 127)
        assert out.dtype == np.int8
        # float differences between torch and onnxruntime may move a value across a rounding edge
        assert np.abs(out.astype(int) - expected).max() <= 1
        assert (out == expected).mean() > 0.99
        assert np.unique(out).size > 20  # real content, not a constant


def test_detector_equals_reference_on_its_own_heads(test_model, yolo_ref):
    onnx_path, meta, _ = test_model
    detector = Detector(OnnxSpec(onnx_path).open(meta, 1), meta, PostprocessConfig(conf_threshold=0.05))
    image = random_bgr(np.random.default_rng(1), 480, 640)
    found, timings = detector.detect(image)
    assert timings.preprocess_ms > 0 and timings.inference_ms > 0 and timings.postprocess_ms > 0
    pre = Preprocessor(meta.input_hw, meta.input_fix_point)
    letterbox = pre(image)
    heads = allocate_outputs(detector.backend.output_specs)
    detector.backend.run(pre.buffer, heads)
    ref = reference_detections(yolo_ref, meta, heads, meta.output_fix_points, letterbox, detector.config)
    assert len(ref) > 0
    assert_same_detections(found, ref)


def test_thresholds_and_class_filter_change_while_running(test_model):
    onnx_path, meta, _ = test_model
    (detector,) = build_detectors(OnnxSpec(onnx_path), onnx_path.with_suffix(".yaml"),
                                  config=PostprocessConfig(conf_threshold=0.02, max_detections=1000))
    image = random_bgr(np.random.default_rng(2), 480, 640)
    many, _ = detector.detect(image)
    assert len(many) > 5
    keep = int(many.class_id[0])
    detector.update(classes=(keep,))
    only, _ = detector.detect(image)
    assert len(only) and set(only.class_id.tolist()) == {keep}
    detector.update(classes=None, conf_threshold=0.9)
    assert len(detector.detect(image)[0]) < len(many)
    with pytest.raises(ValueError, match="conf_threshold"):
        detector.update(conf_threshold=2.0)
    assert detector.config.conf_threshold == 0.9  # the bad value left the old config in place


def test_mismatched_metadata_is_refused(test_model, tmp_path):
    onnx_path, meta, _ = test_model
    with pytest.raises(ValueError, match="expected one input of shape"):
        OnnxSpec(onnx_path).open(meta.__class__(**{**meta.__dict__, "input_hw": (640, 640)}), 1)
    fewer = meta.__class__(**{**meta.__dict__, "names": meta.names[:12]})
    with pytest.raises(ValueError, match="matches no head"):
        OnnxSpec(onnx_path).open(fewer, 1)
    with pytest.raises(ValueError, match="output_fix_points"):
        OnnxSpec(onnx_path).open(meta.with_fix_points(7, None), 1)
    with pytest.raises(ValueError, match="not found"):
        OnnxSpec(tmp_path / "missing.onnx").open(meta, 1)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX"):
        OnnxSpec(tmp_path / "junk.onnx").open(meta, 1)
    save_meta(meta, tmp_path / "m.yaml")
