"""NMS's own parts against their definitions: the rank order, the width-tiered sweep for crowds, both paths against
torchvision's rule (``test_postprocess._reference_nms``, exact fractions)."""

from __future__ import annotations

import numpy as np
import pytest
from heads import clustered_heads
from props import given, settings, st
from test_postprocess import _reference_nms, make_meta

from yolov5_dpu_ros.core import postprocess
from yolov5_dpu_ros.core.postprocess import Postprocessor, nms, rank_order, xywh_to_xyxy

_SCORES = st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, -1.0, np.inf, -np.inf, 1e-45, -1e-45])
                   | st.floats(allow_nan=False, width=32), max_size=300)


@settings(max_examples=300, deadline=None)
@given(_SCORES)
def test_rank_order_is_the_stable_descending_argsort(scores):
    """Property: for any float32 scores without NaN (ties, both zeros, negatives, infinities, subnormals) the order
    is numpy's stable argsort of -score: descending, equal scores by index."""
    score = np.array(scores, np.float32)
    np.testing.assert_array_equal(rank_order(score), np.argsort(-score, kind="stable"))


@pytest.fixture(params=["plain", "tiers"])
def sweep(request, monkeypatch):
    """Each test below runs with every frame swept plainly and with every frame swept in width tiers (the crowd
    path), whatever the number of pairs per box would choose."""
    monkeypatch.setattr(postprocess, "CROWD_PAIRS_PER_BOX", -1 if request.param == "tiers" else 10**9)
    return request.param


@pytest.mark.parametrize("threshold", [0.25, 0.375, 0.5, 0.75])
def test_boxes_of_neighbouring_widths_suppress_each_other_right_above_the_threshold(threshold, sweep):
    """IoU > t needs widths within a factor 1/t, so the crowd path pairs a width tier only with itself and its
    neighbours. Two geometries put the pair across tiers, in 1/256 px steps around the threshold (every IoU exact
    in binary): a narrow box nested at the right end of a wide one that starts first (IoU = narrow / 64), and a
    narrow box starting a pixel before a wide one that ends at 64 (IoU = (narrow - 1) / 64); NMS keeps what the
    reference keeps."""
    for step in range(-4, 5):
        w = 64 * threshold + step / 256
        v = 64 * threshold + 1 + step / 256
        xyxy = np.array([[0, 0, 64, 8], [64 - w, 0, 64, 8], [0, 20, v, 28], [1, 20, 64, 28]], np.float32)
        score = np.array([0.9, 0.8, 0.6, 0.7], np.float32)  # the wide ones first; the second pair's narrow box last
        classes = np.zeros(4, np.int32)
        kept = sorted(nms(xyxy, score, classes, threshold, 100).tolist())
        assert kept == sorted(_reference_nms(xyxy, score, classes, threshold)), (threshold, step)


@pytest.mark.parametrize("threshold", [0.3, 0.45, 0.7, 0.1])
def test_an_iou_equal_to_the_threshold_in_float32_is_compared_as_torchvision_compares_it(threshold):
    """torchvision compares its float32 IoU with the threshold as a double: an IoU that rounds to float32(t) is
    above t where float32(t) > t (0.3, 0.1) and not where float32(t) < t (0.45, 0.7). Two boxes, the second nested
    at the start of the first, whose float32 IoU (width ratio) is exactly float32(t)."""
    limit = np.float32(threshold)
    second = np.float32(64) * limit  # exact: a power of two times a float32
    xyxy = np.array([[0, 0, 64, 8], [0, 0, second, 8]], np.float32)
    iou = (xyxy[1, 2] - xyxy[1, 0]) * np.float32(8) / (np.float32(64) * np.float32(8))
    assert iou == limit
    suppressed = float(iou) > threshold  # the double comparison
    kept = nms(xyxy, np.float32([0.9, 0.8]), np.zeros(2, np.int32), threshold, 10).tolist()
    assert kept == ([0] if suppressed else [0, 1])


@pytest.mark.parametrize("seed", range(4))
def test_both_sweeps_equal_the_reference_rule_on_boxes_of_every_size(seed, sweep):
    """Random boxes from 1/8 px to the whole frame on a 1/8-pixel grid (widths and overlaps that often sit exactly
    on a tier's edge or the threshold), three classes, and class-agnostic."""
    rng = np.random.default_rng(seed)
    n = 80
    x1, y1 = rng.integers(0, 400, n) / 8, rng.integers(0, 400, n) / 8
    w = np.exp2(rng.uniform(-3, 8, n)).round(3)
    xyxy = np.column_stack([x1, y1, x1 + w, y1 + rng.integers(1, 300, n) / 8]).astype(np.float32)
    score = rng.permutation(n).astype(np.float32) / n
    classes = rng.integers(0, 3, n).astype(np.int32)
    for threshold in (0.25, 0.45, 0.5, 0.75):
        got = sorted(nms(xyxy, score, classes, threshold, 1000).tolist())
        assert got == sorted(_reference_nms(xyxy, score, classes, threshold)), threshold
        agnostic = sorted(nms(xyxy, score, classes, threshold, 1000, agnostic=True).tolist())
        assert agnostic == sorted(_reference_nms(xyxy, score, np.zeros(n, np.int32), threshold)), threshold


def test_classes_stay_apart_when_bands_are_split_by_width(sweep):
    """Each class is a band of width tiers with a free tier on either side: a box of class 1 nested in a box of class 0
    (IoU 0.5; the two widths of the frame, one tier apart: class 0's top tier next to class 1's lowest without the
    free tiers) is not suppressed by it, whichever sweep runs; class-agnostic it is."""
    xyxy = np.array([[0, 0, 60, 10], [30, 0, 60, 10]], np.float32)  # widths 60 and 30
    score = np.array([0.9, 0.8], np.float32)
    assert nms(xyxy, score, np.int32([0, 1]), 0.45, 10).tolist() == [0, 1]
    assert nms(xyxy, score, np.int32([0, 1]), 0.45, 10, agnostic=True).tolist() == [0]


@pytest.mark.parametrize("threshold", [1e-4, 1e-3, 2e-3])
def test_a_threshold_near_zero_sweeps_without_tiers_where_they_cannot_be_made(threshold, sweep, monkeypatch):
    """Width tiers come from the threshold less the sweep's margin: at or below the margin there are none to make
    (any overlap may then suppress), and NMS sweeps plainly instead of failing; just above it, with very wide tiers.
    Overlapping boxes of one size and of widely different sizes give what plain greedy NMS gives."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 50, (40, 2))
    xyxy = np.column_stack([xy, xy + np.exp2(rng.uniform(1, 6, (40, 2)))]).astype(np.float32)
    score, classes = rng.permutation(40).astype(np.float32) / 40, np.zeros(40, np.int32)
    swept = nms(xyxy, score, classes, threshold, 100)
    monkeypatch.setattr(postprocess, "MAX_NMS_PAIRS", 0)
    np.testing.assert_array_equal(swept, nms(xyxy, score, classes, threshold, 100))


@pytest.mark.parametrize("path", ["sweep", "greedy"])
def test_boxes_without_area_suppress_nothing_and_raise_no_warning(path, sweep, monkeypatch):
    """Points and lines (a clip to the image can make them) have IoU 0 with everything, 0 / 0 for two of them, as
    torchvision has it: each is kept, and no 0 / 0 is ever divided (numpy would warn on every such frame)."""
    import warnings

    xyxy = np.float32([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 0], [0, 0, 10, 0], [0, 0, 10, 10], [1, 1, 9, 9],
                       [2, 3, 2, 8]])
    score, classes = np.float32([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]), np.zeros(7, np.int32)
    if path == "greedy":
        monkeypatch.setattr(postprocess, "MAX_NMS_PAIRS", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = nms(xyxy, score, classes, 0.45, 10).tolist()
    assert kept == _reference_nms(xyxy, score, classes, 0.45) == [0, 1, 2, 3, 4, 6]


def test_a_crowd_of_one_class_gives_what_plain_greedy_nms_gives(sweep, monkeypatch):
    """200 objects of one class from YOLOv5 heads (about 2,300 candidates, some 190 x-overlapping pairs per box: the
    frame the tiers are for) against the plain greedy loop."""
    meta = make_meta(nc=1, size=(640, 640))
    heads = clustered_heads(meta, np.random.default_rng(200), [4, 4, 3], 200)
    rows = Postprocessor(meta, meta.head_shapes, [4, 4, 3]).candidates(heads, 0.25)
    score = rows[:, 5] * rows[:, 4]
    rows, score = rows[score > 0.25], score[score > 0.25]
    xyxy, classes = xywh_to_xyxy(rows[:, :4]), rows[:, 6].astype(np.int32)
    swept = nms(xyxy, score, classes, 0.45, 300)
    monkeypatch.setattr(postprocess, "MAX_NMS_PAIRS", 0)
    greedy = nms(xyxy, score, classes, 0.45, 300)
    assert len(score) > 2000 and len(swept) > 150
    np.testing.assert_array_equal(swept, greedy)
