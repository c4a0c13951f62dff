"""YOLOv3 and YOLOX against their references: the DPU-PYNQ YOLOv3 notebook (pynq-dpu 2.5.1's sdist) and
Megvii's YOLOX 0.3.0 (its demo pre- and post-processing), each run from its own source (reference_sources)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import random_bgr
from heads import background, clustered_heads
from reference_sources import functions, notebook_source
from test_postprocess import assert_same_detections

from model_prep import inspect as inspect_step
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.families import family as model_family
from yolov5_dpu_ros.core.model_meta import load_meta, meta_from_dict, save_meta
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor, decode_rows
from yolov5_dpu_ros.core.preprocess import Preprocessor, letterbox_geometry, quantization_table

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "config" / "models"
SIZES = [(480, 640), (375, 500), (1080, 1920), (416, 416), (100, 50), (600, 200), (720, 1280), (333, 517)]


@pytest.fixture(scope="module")
def notebook(pynq_dpu_source):
    """The notebook's own functions: pre_process (with letterbox_image), _get_feats, evaluate and helpers."""
    source = notebook_source(pynq_dpu_source / "notebooks" / "dpu_yolov3.ipynb")
    names = ("letterbox_image", "pre_process", "_get_feats", "correct_boxes", "boxes_and_scores", "nms_boxes",
             "evaluate")
    return functions(source, names, {"np": np, "cv2": cv2})


@pytest.fixture(scope="module")
def yolox(yolox_source):
    """YOLOX's own preproc, demo_postprocess and numpy multiclass NMS."""
    namespace = {"np": np, "cv2": cv2}
    functions((yolox_source / "data" / "data_augment.py").read_text(), ("preproc",), namespace)
    names = ("nms", "multiclass_nms", "multiclass_nms_class_aware", "multiclass_nms_class_agnostic",
             "demo_postprocess")
    return functions((yolox_source / "utils" / "demo_utils.py").read_text(), names, namespace) | {
        "preproc": namespace["preproc"]}


@pytest.fixture(scope="module")
def v3_meta():
    return load_meta(PRESETS / "yolov3_voc_pynq_dpu.yaml").with_fix_points(7, (3, 3, 3))


@pytest.fixture(scope="module")
def x_meta():
    return load_meta(PRESETS / "yolox_nano_coco.yaml")


def test_the_presets(v3_meta, x_meta, pynq_dpu_source):
    voc = (pynq_dpu_source / "notebooks" / "img" / "voc_classes.txt").read_text().split()
    assert v3_meta.family == "yolov3" and v3_meta.names == tuple(voc) and v3_meta.head_shapes[2] == (1, 13, 13, 75)
    assert v3_meta.anchors_px[2] == ((116, 90), (156, 198), (373, 326))  # the largest anchors on 13x13
    assert x_meta.family == "yolox" and x_meta.num_anchors == 1 and x_meta.head_shapes[0] == (1, 52, 52, 85)
    assert x_meta.anchors_px == (((8, 8),), ((16, 16),), ((32, 32),))
    assert (x_meta.input_fix_point, x_meta.output_fix_points) == (-1, (2, 2, 2))


# --- pre-processing: pixels equal to each reference's -----------------------------------------------

@pytest.mark.parametrize("src_hw", SIZES)
def test_yolov3_letterbox_equals_the_notebook(notebook, src_hw):
    bgr = random_bgr(np.random.default_rng(sum(src_hw)), *src_hw)
    reference = notebook["pre_process"](bgr, (416, 416))[0]  # RGB float /255, pad 128
    pre = Preprocessor((416, 416), None, model_family("yolov3").contract)
    pre(bgr, "bgr8")
    np.testing.assert_array_equal(pre.buffer[0].astype(np.float32) / np.float32(255.0), reference)


@pytest.mark.parametrize("src_hw", SIZES)
def test_yolox_letterbox_equals_yolox_preproc(yolox, src_hw):
    bgr = random_bgr(np.random.default_rng(sum(src_hw) + 1), *src_hw)
    reference, ratio = yolox["preproc"](bgr, (416, 416))  # BGR float 0-255 CHW, pad 114 bottom/right
    pre = Preprocessor((416, 416), None, model_family("yolox").contract)
    letterbox = pre(bgr, "bgr8")
    np.testing.assert_array_equal(pre.buffer[0].transpose(2, 0, 1).astype(np.float32), reference)
    assert letterbox.gain == ratio and (letterbox.top, letterbox.left) == (0, 0)


def test_yolox_quantizes_0_255_pixels_with_the_models_negative_fix_point():
    table = quantization_table(-1, model_family("yolox").contract.scale).view(np.int8)
    np.testing.assert_array_equal(table, np.clip(np.floor(np.arange(256) / 2 + 0.5), -128, 127))  # half up


# --- decode: relative error <= 1e-4 against the references ---------------------------------------

def _rows_by_level(meta, heads):
    """Every row of every head, in stride order, with its grid cell and anchor (the decode's inputs)."""
    out = []
    for level, head in enumerate(heads):
        _, gh, gw, _ = head.shape
        na, no = meta.num_anchors, 5 + meta.num_classes
        y, x, a = np.meshgrid(np.arange(gh), np.arange(gw), np.arange(na), indexing="ij")
        grid = np.column_stack((x.ravel(), y.ravel())).astype(np.float32)
        out.append((head.reshape(-1, no), grid, meta.anchors_array()[level][a.ravel()], meta.strides[level]))
    return out


def test_yolov3_decode_equals_the_notebook(notebook, v3_meta):
    heads = background(v3_meta, np.random.default_rng(3), obj_mean=0.0)
    anchors = np.asarray(v3_meta.anchors_px, np.float32).reshape(-1, 2)  # the notebook's 9 anchors, small first
    for level, (rows, grid, anchor, stride) in enumerate(_rows_by_level(v3_meta, heads)):
        ours = decode_rows(rows, 1.0, grid, anchor, stride, model_family("yolov3").boxes)
        xy, wh, obj, cls = notebook["_get_feats"](heads[level], anchors[3 * level:3 * level + 3], 20, (416, 416))
        ref_xywh = np.concatenate((xy * 416, wh * 416), -1).reshape(-1, 4)
        np.testing.assert_allclose(ours[:, :4], ref_xywh, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours[:, 4], obj.reshape(-1), rtol=1e-4)
        best = cls.reshape(-1, 20).max(axis=1)
        np.testing.assert_allclose(ours[:, 5], best, rtol=1e-4)


def test_yolox_decode_equals_demo_postprocess(yolox, x_meta):
    heads = background(x_meta, np.random.default_rng(4), obj_mean=0.0)
    flat = np.concatenate([h.reshape(1, -1, 85) for h in heads], axis=1).astype(np.float64)
    reference = yolox["demo_postprocess"](flat.copy(), (416, 416))[0]
    ours = np.concatenate([decode_rows(rows, 1.0, grid, anchor, stride, model_family("yolox").boxes)
                           for rows, grid, anchor, stride in _rows_by_level(x_meta, heads)])
    np.testing.assert_allclose(ours[:, :4], reference[:, :4], rtol=1e-4, atol=1e-3)


# --- final detections 1:1 -------------------------------------------------------------------------

def _notebook_detections(notebook, heads, src_hw):
    """The notebook's evaluate (score 0.2, per-class NMS at 0.55) on float heads, largest stride first as
    its runner lists them; its boxes come as (top, left, bottom, right) in source pixels."""
    outputs = heads[::-1]
    anchors = np.array([10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326],
                       np.float32).reshape(-1, 2)
    boxes, scores, classes = notebook["evaluate"](outputs, src_hw, [str(i) for i in range(20)], anchors)
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]
    h, w = src_hw
    xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
    return Detections(xyxy, np.asarray(scores, np.float32), np.asarray(classes, np.int32))


def _yolox_detections(yolox, heads, ratio, src_hw, config):
    """YOLOX's demo path on float heads: sigmoid on objectness and classes (the DPU model returns logits),
    demo_postprocess, boxes / ratio, class-aware numpy NMS."""
    flat = np.concatenate([h.reshape(1, -1, 85) for h in heads], axis=1)
    flat[..., 4:] = 1 / (1 + np.exp(-flat[..., 4:]))
    out = yolox["demo_postprocess"](flat, (416, 416))[0]
    xywh = out[:, :4]
    xyxy = np.concatenate((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1) / ratio
    dets = yolox["multiclass_nms"](xyxy, out[:, 4:5] * out[:, 5:], config.iou_threshold, config.conf_threshold,
                                   class_agnostic=False)
    if dets is None:
        return Detections.empty()
    h, w = src_hw
    boxes = np.clip(dets[:, :4], 0, [w, h, w, h]).astype(np.float32)
    return Detections(boxes, dets[:, 4].astype(np.float32), dets[:, 5].astype(np.int32))


FAMILY_SOURCES = [(480, 640), (375, 500), (416, 416), (624, 832)]  # letterbox scales exact in both references
V3_CONFIG = PostprocessConfig(conf_threshold=0.2, iou_threshold=0.55)  # the notebook's
X_CONFIG = PostprocessConfig(conf_threshold=0.3, iou_threshold=0.45)


def _family_case(meta, seed):
    """Float heads with 0-20 objects, a source size and its letterbox. Float logits: int8 heads give exact
    score ties, which the references (numpy argsort, reversed) and this package break differently."""
    rng = np.random.default_rng(seed)
    heads = clustered_heads(meta, rng, None, [0, 3, 8, 20][seed % 4])
    src_hw = FAMILY_SOURCES[seed % len(FAMILY_SOURCES)]
    return heads, src_hw, letterbox_geometry(src_hw, meta.input_hw, model_family(meta.family).contract)


@pytest.mark.parametrize("seed", range(24))
def test_yolov3_detections_equal_the_notebook(notebook, v3_meta, seed):
    heads, src_hw, letterbox = _family_case(v3_meta, 100 + seed)
    ours = Postprocessor(v3_meta, v3_meta.head_shapes, None)(heads, letterbox, V3_CONFIG)
    assert_same_detections(ours, _notebook_detections(notebook, heads, src_hw))


@pytest.mark.parametrize("seed", range(24))
def test_yolox_detections_equal_yolox(yolox, x_meta, seed):
    heads, src_hw, letterbox = _family_case(x_meta, 200 + seed)
    order = [2, 1, 0]  # the runner lists the 13x13 head first: outputs are matched by shape
    ours = Postprocessor(x_meta, [x_meta.head_shapes[i] for i in order], None)(
        [heads[i] for i in order], letterbox, X_CONFIG)
    assert_same_detections(ours, _yolox_detections(yolox, heads, letterbox.gain, src_hw, X_CONFIG))


@pytest.mark.parametrize("family", ["yolov3", "yolox"])
@pytest.mark.parametrize("seed", range(12))
def test_int8_early_rejection_changes_nothing(v3_meta, x_meta, family, seed):
    """The int8 path (rejection on raw objectness, fix points) gives what the float path gives on the
    same dequantized heads, for every family."""
    meta = v3_meta if family == "yolov3" else x_meta
    fix_points = (3, 3, 4) if family == "yolov3" else meta.output_fix_points
    heads = clustered_heads(meta, np.random.default_rng(300 + seed), fix_points, [3, 8, 20][seed % 3])
    letterbox = letterbox_geometry((480, 640), meta.input_hw, model_family(meta.family).contract)
    config = V3_CONFIG if family == "yolov3" else X_CONFIG
    int8 = Postprocessor(meta, meta.head_shapes, fix_points)(heads, letterbox, config)
    floats = [h.astype(np.float32) * np.float32(2.0**-fp) for h, fp in zip(heads, fix_points)]
    reference = Postprocessor(meta, meta.head_shapes, None)(floats, letterbox, config)
    np.testing.assert_array_equal(int8.class_id, reference.class_id)
    np.testing.assert_allclose(int8.xyxy, reference.xyxy, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(int8.score, reference.score, rtol=1e-6)


# --- the real YOLOX fixtures -----------------------------------------------------------------------

def test_inspect_writes_the_yolox_fixtures_fix_points_into_the_preset(real_xmodels, tmp_path, capsys):
    preset = tmp_path / "yolox.yaml"
    shutil.copy(PRESETS / "yolox_nano_coco.yaml", preset)
    save_meta(load_meta(preset).with_fix_points(0, None), preset)
    assert inspect_step.main([str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), "--meta", str(preset),
                              "--write"]) == 0
    out = capsys.readouterr().out
    assert "outputs → strides [8, 16, 32]" in out  # VART order: 52x52 first
    assert load_meta(preset) == load_meta(PRESETS / "yolox_nano_coco.yaml")


def test_yolox_needs_no_anchors_but_refuses_several():
    base = {"family": "yolox", "input_size": [416, 416], "strides": [8, 16, 32], "names": ["a"],
            "input_fix_point": -1}
    assert meta_from_dict(base).anchors_px == (((8.0, 8.0),), ((16.0, 16.0),), ((32.0, 32.0),))
    with pytest.raises(ValueError, match="anchor-free"):
        meta_from_dict({**base, "anchors": [[10, 13, 16, 30]] * 3})
    with pytest.raises(ValueError, match="'family' must be one of"):
        meta_from_dict({**base, "family": "yolo11"})


@pytest.mark.parametrize("name", ["yolov5", "yolov3"])
def test_anchor_based_families_need_their_anchors_given(name):
    """Only an anchor-free family implies its priors; an anchor-based one without anchors is refused, never
    decoded with cell-sized priors."""
    assert model_family(name).default_anchors((8, 16, 32)) is None
    with pytest.raises(ValueError, match="anchors"):
        meta_from_dict({"family": name, "input_size": [320, 320], "strides": [8, 16, 32], "names": ["a"],
                        "input_fix_point": 7})
