"""NMS's own parts against their definitions: the rank order, the top fifth settled first, both against torchvision's
rule (``test_postprocess._reference_nms``, exact fractions) and against NMS over the whole frame at once."""

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


@pytest.fixture(params=["whole", "split"])
def sweep(request, monkeypatch):
    """Each test below runs with NMS over each frame at once and with every frame split, down to a few boxes (the
    top fifth first, then what it keeps against the rest), whatever the number of candidates would choose."""
    monkeypatch.setattr(postprocess, "SPLIT_BOXES", 10**9 if request.param == "whole" else 1)
    monkeypatch.setattr(postprocess, "CROWD_PAIRS_PER_BOX", 10**9)
    return request.param


_FAR = [[300 + 40 * i, 300, 310 + 40 * i, 310] for i in range(6)]  # ranked last, overlapping nothing: a top fifth of 2


@pytest.mark.parametrize("threshold", [0.25, 0.375, 0.5, 0.75])
def test_a_kept_box_suppresses_a_wider_box_that_starts_first_right_above_the_threshold(threshold, sweep):
    """A box kept in the top fifth reaches back for partners that start before it as far as IoU > t allows (their
    width below its own over t). Two pairs, in 1/256 px steps around the threshold (every IoU exact in binary): a
    narrow box kept at the right end of a wide one that starts at 0 (IoU = narrow / 64), and a wide box kept a pixel
    after a narrow one (IoU = (narrow - 1) / 64); NMS keeps what the reference keeps."""
    for step in range(-4, 5):
        w = 64 * threshold + step / 256
        v = 64 * threshold + 1 + step / 256
        xyxy = np.array([[64 - w, 0, 64, 8], [1, 20, 64, 28], [0, 0, 64, 8], [0, 20, v, 28]] + _FAR, np.float32)
        score = np.linspace(0.9, 0.1, 10, dtype=np.float32)  # the kept ones first
        classes = np.zeros(10, np.int32)
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
def test_both_ways_equal_the_reference_rule_on_boxes_of_every_size(seed, sweep):
    """Random boxes from 1/8 px to the whole frame on a 1/8-pixel grid (widths and overlaps that often sit exactly
    on a window's edge or the threshold), three classes, and class-agnostic."""
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


def test_classes_stay_apart_when_a_kept_box_reaches_back(sweep):
    """A kept box's reach back ends at its band's start: a box of class 0 where a kept box of class 1 lies (IoU 1;
    class 0's band ends less than that reach before class 1's) is not suppressed by it, whichever way NMS runs;
    class-agnostic it is."""
    xyxy = np.array([[0, 0, 60, 10], [0, 0, 60, 10]] + [[0, 100 + 20 * i, 10, 110 + 20 * i] for i in range(3)],
                    np.float32)
    score = np.linspace(0.9, 0.5, 5, dtype=np.float32)
    classes = np.int32([1, 0, 1, 1, 1])
    assert nms(xyxy, score, classes, 0.45, 10).tolist() == [0, 1, 2, 3, 4]
    assert nms(xyxy, score, classes, 0.45, 10, agnostic=True).tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("threshold", [1e-4, 1e-3, 2e-3])
def test_a_threshold_near_zero_reaches_back_over_the_whole_band(threshold, sweep, monkeypatch):
    """A kept box's reach back comes from the threshold less the sweep's margin: at or below the margin there is no
    bound on a partner's width (any overlap may then suppress) and it reaches back to its band's start; just above
    it, very far. Overlapping boxes of one size and of widely different sizes give what plain greedy NMS gives."""
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
    frame the split is most for) against the plain greedy loop."""
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


_GRID = st.integers(0, 24).map(lambda v: v / 4)  # quarter pixels: exact IoUs, many on the threshold or equal


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_GRID, _GRID, _GRID, _GRID, st.integers(0, 5), st.integers(0, 2)), max_size=30),
       st.sampled_from([0.1, 0.25, 0.375, 0.45, 0.5, 0.7, 0.75]), st.integers(1, 30), st.booleans())
def test_split_nms_keeps_what_the_reference_keeps(boxes, threshold, max_detections, agnostic):
    """Property: for any boxes (points, lines, nested, equal), scores with ties, classes, thresholds and a cut at
    max_detections, NMS split down to a few boxes keeps what NMS over the whole frame keeps; for a threshold that
    float32 holds exactly, that is the reference rule's first max_detections boxes. (Where it does not, an IoU that
    equals the threshold on this grid, 0.7 say, is kept by torchvision's float32 IoU and suppressed by the exact
    reference: test_an_iou_equal_to_the_threshold_in_float32_is_compared_as_torchvision_compares_it pins that.)"""
    xyxy = np.array([(x, y, x + w, y + h) for x, y, w, h, _, _ in boxes], np.float32).reshape(-1, 4)
    score = np.array([s for *_, s, _ in boxes], np.float32) / 5
    classes = np.array([c for *_, c in boxes], np.int32)
    got, default = {}, (postprocess.SPLIT_BOXES, postprocess.CROWD_PAIRS_PER_BOX)
    for split in (10**9, 1):
        postprocess.SPLIT_BOXES, postprocess.CROWD_PAIRS_PER_BOX = split, 10**9
        try:
            got[split] = nms(xyxy, score, classes, threshold, max_detections, agnostic).tolist()
        finally:
            postprocess.SPLIT_BOXES, postprocess.CROWD_PAIRS_PER_BOX = default
    assert got[1] == got[10**9]
    if float(np.float32(threshold)) == threshold:
        bands = np.zeros(len(boxes), np.int32) if agnostic else classes
        assert got[1] == _reference_nms(xyxy, score, bands, threshold)[:max_detections]


def test_no_pass_looks_at_more_pairs_than_the_cap(monkeypatch):
    """MAX_NMS_PAIRS bounds the memory of a frame's pair arrays on every path: the top fifth's, a kept box's reach
    over the rest, the rest's. With a low cap the crowd frame of one class takes the plain greedy loop where a pass
    would exceed it, and keeps what it keeps uncapped."""
    meta = make_meta(nc=1, size=(640, 640))
    heads = clustered_heads(meta, np.random.default_rng(50), [4, 4, 3], 50)
    rows = Postprocessor(meta, meta.head_shapes, [4, 4, 3]).candidates(heads, 0.25)
    xyxy, score, classes = xywh_to_xyxy(rows[:, :4]), rows[:, 5] * rows[:, 4], rows[:, 6].astype(np.int32)
    uncapped = nms(xyxy, score, classes, 0.45, 300)
    looked, pairs_over = [], postprocess._Sweep.pairs_over

    def counted(self, own, start, count, pairs, partners, limit):
        assert pairs == count.sum()
        looked.append(pairs)
        return pairs_over(self, own, start, count, pairs, partners, limit)

    monkeypatch.setattr(postprocess._Sweep, "pairs_over", counted)
    monkeypatch.setattr(postprocess, "SPLIT_BOXES", 100)
    monkeypatch.setattr(postprocess, "MAX_NMS_PAIRS", 2000)
    np.testing.assert_array_equal(nms(xyxy, score, classes, 0.45, 300), uncapped)
    assert looked and max(looked) <= 2000 and len(score) > 400
