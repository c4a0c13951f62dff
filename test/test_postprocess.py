"""Post-processing against the YOLOv5 reference: decode, selection + NMS, mapping back, early rejection."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from heads import clustered_heads, random_heads
from props import given, settings, st

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.model_meta import meta_from_dict
from yolov5_dpu_ros.core.postprocess import (
    PostprocessConfig,
    Postprocessor,
    decode_rows,
    nms,
    raw_objectness_threshold,
    select,
    sigmoid,
)
from yolov5_dpu_ros.core.preprocess import letterbox_geometry

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
# camera resolutions whose letterbox scale is exact, where YOLOv5's uniform-gain mapping is exact too
SOURCES = [(480, 640), (720, 1280), (1080, 1920), (240, 320), (768, 1024), (600, 800), (960, 1280), (640, 640)]


def make_meta(nc=80, size=(320, 320)):
    return meta_from_dict({"input_size": list(size), "strides": [8, 16, 32], "anchors": ANCHORS,
                           "names": [f"c{i}" for i in range(nc)], "input_fix_point": 7,
                           "output_fix_points": [4, 4, 4]})


def reference_detect(ref, meta):
    """YOLOv5's own Detect layer with identity convs, so it decodes given raw heads."""
    import torch

    det = ref.Detect(meta.num_classes, ANCHORS, ch=(1, 1, 1))
    det.m = torch.nn.ModuleList(torch.nn.Identity() for _ in range(3))
    det.stride = torch.tensor([8.0, 16.0, 32.0])
    det.anchors /= det.stride.view(-1, 1, 1)
    return det.eval()


@contextlib.contextmanager
def stable_torch_argsort():
    """YOLOv5 sorts scores with torch's argsort, whose order of equal scores is unspecified (unstable on
    large tensors). Int8 heads give many equal scores, so the reference is made to break ties stably,
    i.e. first in YOLOv5's own row order, which is the order this package keeps."""
    import torch

    original = torch.Tensor.argsort

    def stable(self, dim=-1, descending=False):
        return torch.sort(self, dim=dim, descending=descending, stable=True)[1]

    torch.Tensor.argsort = stable
    try:
        yield
    finally:
        torch.Tensor.argsort = original


def reference_detections(ref, meta, heads, fix_points, letterbox, cfg: PostprocessConfig):
    """YOLOv5 Detect decode → non_max_suppression → scale_boxes, on int8 heads in stride order."""
    import torch

    x = [torch.from_numpy(h.astype(np.float32) * np.float32(2.0**-fp)).permute(0, 3, 1, 2).contiguous()
         for h, fp in zip(heads, fix_points)]
    with torch.no_grad(), stable_torch_argsort():
        z, _ = reference_detect(ref, meta)(x)
        out = ref.non_max_suppression(z, cfg.conf_threshold, cfg.iou_threshold,
                                      classes=None if cfg.classes is None else list(cfg.classes),
                                      agnostic=cfg.agnostic, max_det=cfg.max_detections)[0]
        boxes = ref.scale_boxes(meta.input_hw, out[:, :4].clone(), letterbox.src_hw,
                                ratio_pad=((letterbox.gain, letterbox.gain), (letterbox.left, letterbox.top)))
    return Detections(boxes.numpy().astype(np.float32), out[:, 4].numpy().astype(np.float32),
                      out[:, 5].numpy().astype(np.int32))


def iou_matrix(a, b):
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-12)


def assert_same_detections(ours: Detections, ref: Detections, min_iou=0.99, score_tol=1e-4):
    """1:1 match: same count, and each reference box has its own match of the same class."""
    assert len(ours) == len(ref), f"{len(ours)} detections, reference {len(ref)}"
    if not len(ref):
        return
    iou = iou_matrix(ref.xyxy, ours.xyxy)
    # boxes clipped flat against the image edge have no area: compare those by their corners
    close = np.abs(ref.xyxy[:, None, :] - ours.xyxy[None, :, :]).max(axis=2) <= 0.05
    iou = np.where(close, 1.0, iou)
    iou[ref.class_id[:, None] != ours.class_id[None, :]] = -1
    used = set()
    for i in np.argsort(-ref.score, kind="stable"):
        j = int(np.argmax(np.where([k in used for k in range(len(ours))], -1, iou[i])))
        assert iou[i, j] >= min_iou, f"reference box {ref.xyxy[i]} (class {ref.class_id[i]}) has no match"
        assert abs(ours.score[j] - ref.score[i]) <= score_tol
        used.add(j)


def _cases():
    """≥100 generated cases: (seed, kind, n_objects, config, source size)."""
    cases = []
    for seed in range(40):
        cases.append((seed, "clustered", [3, 10, 30, 60][seed % 4], PostprocessConfig(), SOURCES[seed % 8]))
    for seed in range(40, 65):
        cases.append((seed, "random", 0, PostprocessConfig(conf_threshold=0.3 + 0.02 * (seed % 5)),
                      SOURCES[seed % 8]))
    for seed in range(65, 75):
        cases.append((seed, "clustered", 0, PostprocessConfig(), SOURCES[seed % 8]))  # nothing there
    for seed in range(75, 90):
        cases.append((seed, "clustered", 80, PostprocessConfig(max_detections=1 + seed % 20), SOURCES[seed % 8]))
    for seed in range(90, 105):
        cases.append((seed, "border", 20, PostprocessConfig(), SOURCES[seed % 8]))
    for seed in range(105, 115):
        cases.append((seed, "clustered", 40, PostprocessConfig(agnostic=True, iou_threshold=0.3), SOURCES[seed % 8]))
    for seed in range(115, 125):
        cases.append((seed, "clustered", 40, PostprocessConfig(classes=tuple(range(0, 80, 3))), SOURCES[seed % 8]))
    return cases


CASES = _cases()


def _heads(meta, seed, kind, n, fix_points):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return random_heads(meta, rng, fix_points)
    return clustered_heads(meta, rng, fix_points, n, border=kind == "border")


def test_case_count():
    assert len(CASES) >= 100


@pytest.mark.parametrize("seed,kind,n,cfg,src_hw", CASES)
def test_detections_match_yolov5(yolo_ref, seed, kind, n, cfg, src_hw):
    meta = make_meta()
    fps = [4, 4, 3] if seed % 2 else [3, 4, 5]
    heads = _heads(meta, seed, kind, n, fps)
    letterbox = letterbox_geometry(src_hw, meta.input_hw)
    ref = reference_detections(yolo_ref, meta, heads, fps, letterbox, cfg)
    ours = Postprocessor(meta, [h.shape for h in heads], fps)(heads, letterbox, cfg)
    assert_same_detections(ours, ref)
    if n >= 10 and kind != "random" and cfg.classes is None:
        assert len(ref) > 0  # the case exercises something
    if cfg.max_detections < 300 and n >= 80:
        assert len(ours) == cfg.max_detections
    assert (ours.xyxy >= 0).all() and (ours.xyxy[:, 2] <= src_hw[1]).all() and (ours.xyxy[:, 3] <= src_hw[0]).all()


def test_border_cases_are_clipped(yolo_ref):
    meta = make_meta()
    clipped = 0
    for seed in range(90, 105):
        heads = _heads(meta, seed, "border", 20, [3, 4, 5])
        letterbox = letterbox_geometry((480, 640), meta.input_hw)
        det = Postprocessor(meta, [h.shape for h in heads], [3, 4, 5])(heads, letterbox, PostprocessConfig())
        clipped += int(((det.xyxy[:, 0] == 0) | (det.xyxy[:, 2] == 640)).sum())
    assert clipped > 10


def test_decode_equals_yolov5_detect(yolo_ref):
    import torch

    meta = make_meta(nc=12)
    rng = np.random.default_rng(7)
    heads = [rng.normal(0, 3, s).astype(np.float32) for s in meta.head_shapes]
    with torch.no_grad():
        z, _ = reference_detect(yolo_ref, meta)([torch.from_numpy(h).permute(0, 3, 1, 2).contiguous() for h in heads])
    ours = []
    anchors = meta.anchors_array()
    for level, h in enumerate(heads):
        _, gh, gw, _ = h.shape
        rows = h.reshape(gh, gw, 3, 17).transpose(2, 0, 1, 3).reshape(-1, 17)  # anchor-major, as YOLOv5
        a, y, x = np.meshgrid(np.arange(3), np.arange(gh), np.arange(gw), indexing="ij")
        grid = np.stack((x.ravel(), y.ravel()), 1).astype(np.float32)
        ours.append(decode_rows(rows, 1.0, grid, anchors[level][a.ravel()], meta.strides[level]))
    ours = np.concatenate(ours)
    z = z[0].numpy()
    ref = np.column_stack((z[:, :5], z[:, 5:].max(1)))  # xywh, objectness, best class probability
    rel = np.abs(ours[:, :6] - ref) / np.maximum(np.abs(ref), 1e-6)
    assert len(ours) == len(ref) == 3 * (40 * 40 + 20 * 20 + 10 * 10)
    assert rel.max() <= 1e-4
    # the best class is the argmax of the logits; YOLOv5 takes it after float32 rounding of the
    # probabilities, so the two may differ only where the top two probabilities round together
    top2 = np.sort(z[:, 5:], axis=1)[:, -2:]
    distinct = top2[:, 1] - top2[:, 0] > 1e-6
    assert distinct.mean() > 0.99
    np.testing.assert_array_equal(ours[distinct, 6], z[distinct, 5:].argmax(1))


def _decode_everything(meta, heads, fix_points):
    """Decode of every anchor (no early rejection): the path the int8 reject must not change."""
    rows = []
    anchors = meta.anchors_array()
    for level, (h, fp) in enumerate(zip(heads, fix_points)):
        _, gh, gw, c = h.shape
        flat = h.reshape(-1, c // 3)
        idx = np.arange(len(flat))
        idx = idx[np.argsort((idx % 3) * gh * gw + idx // 3, kind="stable")]
        cell = idx // 3
        grid = np.stack((cell % gw, cell // gw), 1).astype(np.float32)
        rows.append(decode_rows(flat[idx], 2.0**-fp, grid, anchors[level][idx % 3], meta.strides[level]))
    return np.concatenate(rows)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("conf", [0.05, 0.25, 0.6])
def test_int8_early_rejection_changes_nothing(seed, conf):
    meta = make_meta(nc=20)
    fps = [2, 3, 4] if seed % 2 else [5, 4, 3]
    rng = np.random.default_rng(seed)
    heads = clustered_heads(meta, rng, fps, 25) if seed % 3 else random_heads(meta, rng, fps)
    cfg = PostprocessConfig(conf_threshold=conf)
    post = Postprocessor(meta, [h.shape for h in heads], fps)
    everything = select(_decode_everything(meta, heads, fps), cfg)
    candidates = post.candidates(heads, conf)
    early = select(candidates, cfg)
    assert len(candidates) < sum(h.shape[1] * h.shape[2] * 3 for h in heads)
    np.testing.assert_array_equal(early.xyxy, everything.xyxy)
    np.testing.assert_array_equal(early.score, everything.score)
    np.testing.assert_array_equal(early.class_id, everything.class_id)


@pytest.mark.parametrize("fix_point", [-2, 0, 3, 4, 7])
@pytest.mark.parametrize("conf", [0.001, 0.1, 0.25, 0.5, 0.9, 0.999])
def test_raw_threshold_keeps_every_passing_value(fix_point, conf):
    raw = np.arange(-128, 128, dtype=np.int8)
    passes = sigmoid(raw.astype(np.float32) * np.float32(2.0**-fix_point)) > conf
    kept = raw >= raw_objectness_threshold(conf, fix_point)
    assert not (passes & ~kept).any()
    assert (kept & ~passes).sum() <= 1  # one LSB of margin, no more


def test_outputs_in_any_order_give_the_same_detections():
    meta = make_meta()
    fps = [3, 4, 5]
    heads = clustered_heads(meta, np.random.default_rng(3), fps, 30)
    lb = letterbox_geometry((480, 640), meta.input_hw)
    cfg = PostprocessConfig()
    base = Postprocessor(meta, [h.shape for h in heads], fps)(heads, lb, cfg)
    for perm in [(2, 0, 1), (1, 2, 0), (2, 1, 0)]:
        scrambled = [heads[i] for i in perm]
        got = Postprocessor(meta, [h.shape for h in scrambled], [fps[i] for i in perm])(scrambled, lb, cfg)
        np.testing.assert_array_equal(got.xyxy, base.xyxy)
        np.testing.assert_array_equal(got.class_id, base.class_id)
    assert len(base) > 10


def test_float_heads_match_int8_heads_decoded_as_float():
    meta = make_meta()
    fps = [3, 4, 5]
    heads = clustered_heads(meta, np.random.default_rng(5), fps, 20)
    floats = [h.astype(np.float32) * np.float32(2.0**-fp) for h, fp in zip(heads, fps)]
    lb = letterbox_geometry((480, 640), meta.input_hw)
    a = Postprocessor(meta, [h.shape for h in heads], fps)(heads, lb, PostprocessConfig())
    b = Postprocessor(meta, [h.shape for h in floats], None)(floats, lb, PostprocessConfig())
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    assert len(a) > 5


def test_nms_table():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    score = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.array([0, 0, 0, 1], np.int32)
    assert nms(boxes, score, cls, 0.5, 300).tolist() == [0, 2, 3]
    assert nms(boxes, score, cls, 0.5, 300, agnostic=True).tolist() == [0, 2]
    assert nms(boxes, score, cls, 0.7, 300).tolist() == [0, 1, 2, 3]  # IoU 0.68 is not > 0.7
    assert nms(boxes, score, cls, 0.5, 2).tolist() == [0, 2]
    assert nms(boxes[:0], score[:0], cls[:0], 0.5, 300).tolist() == []


def test_select_with_no_rows_is_empty():
    assert len(select(np.zeros((0, 7), np.float32), PostprocessConfig())) == 0


def _apart(scores, classes=None) -> np.ndarray:
    """Decoded rows (N, 7) of boxes far apart (no two overlap), objectness 1, the given class probabilities."""
    n = len(scores)
    rows = np.zeros((n, 7), np.float32)
    rows[:, 0] = np.arange(n) % 64 * 20.0 + 10
    rows[:, 1] = np.arange(n) // 64 * 20.0 + 10
    rows[:, 2:4] = 8.0
    rows[:, 4] = 1.0
    rows[:, 5] = scores
    rows[:, 6] = 0 if classes is None else classes
    return rows


def test_a_score_exactly_at_the_threshold_is_dropped_as_yolov5_drops_it():
    """YOLOv5 keeps conf > conf_thres (and Ultralytics the same): a score equal to the threshold goes."""
    found = select(_apart(np.float32([0.25, 0.2500001, 0.75])), PostprocessConfig(conf_threshold=0.25))
    assert sorted(found.score.tolist()) == [pytest.approx(0.2500001), 0.75]


def test_the_class_filter_adds_to_the_score_test():
    rows = _apart(np.float32([0.9, 0.1, 0.9, 0.1]), classes=[1, 1, 2, 2])
    found = select(rows, PostprocessConfig(classes=(1,)))
    assert found.class_id.tolist() == [1] and found.score.tolist() == [pytest.approx(0.9)]


def test_more_candidates_than_max_candidates_keep_the_best_in_stable_order():
    """YOLOv5's max_nms: the candidates in descending score, the first max_candidates kept; among equal scores
    the earlier row (the stable order, which also fixes YOLOv5's tie order)."""
    scores = np.random.default_rng(0).choice(np.float32([0.3, 0.5, 0.7]), 3000)
    config = PostprocessConfig(max_candidates=1000, max_detections=3000)
    found = select(_apart(scores), config)
    want = np.sort(np.argsort(-scores, kind="stable")[:1000])
    rows = _apart(scores)
    got = np.sort([int(np.flatnonzero((rows[:, 0] - 4 == x1) & (rows[:, 1] - 4 == y1))[0])
                   for x1, y1 in found.xyxy[:, :2]])
    np.testing.assert_array_equal(got, want)
    top = select(_apart(np.float32([0.3, 0.9, 0.5, 0.7, 0.8])), PostprocessConfig(max_candidates=3))
    assert sorted(top.score.tolist(), reverse=True) == pytest.approx([0.9, 0.8, 0.7])


@pytest.mark.parametrize("kwargs", [dict(conf_threshold=0), dict(conf_threshold=1.0), dict(iou_threshold=0),
                                    dict(iou_threshold=1.5), dict(max_detections=0), dict(classes=(-1,))])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        PostprocessConfig(**kwargs)


def test_nms_fallback_for_too_many_overlapping_pairs_gives_the_same_result(monkeypatch):
    import yolov5_dpu_ros.core.postprocess as pp

    meta = make_meta(nc=12)
    heads = random_heads(meta, np.random.default_rng(11), [4, 4, 4], obj_mean=-1.0)
    rows = Postprocessor(meta, [h.shape for h in heads], [4, 4, 4]).candidates(heads, 0.3)
    score = rows[:, 5] * rows[:, 4]
    xyxy, cls = pp.xywh_to_xyxy(rows[:, :4]), rows[:, 6].astype(np.int32)
    for agnostic in (False, True):
        sparse = nms(xyxy, score, cls, 0.45, 300, agnostic)
        monkeypatch.setattr(pp, "MAX_NMS_PAIRS", 0)  # every frame takes the plain greedy path
        greedy = nms(xyxy, score, cls, 0.45, 300, agnostic)
        monkeypatch.undo()
        assert len(sparse) > 20
        np.testing.assert_array_equal(sparse, greedy)


_ANY = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=3) | st.lists(st.integers(-2, 90), max_size=3) | st.just(np.int64(7))
        | st.just(np.float32(0.5)))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["conf_threshold", "iou_threshold", "max_detections", "classes", "agnostic",
                                        "max_candidates"]), _ANY, max_size=3))
def test_any_settings_give_a_valid_config_or_one_named_error(changes):
    """Property: PostprocessConfig holds only finite thresholds in range, integer counts and integer class
    lists; anything else is a ValueError naming the field (never a TypeError at the next frame)."""
    try:
        config = PostprocessConfig(**changes)
    except ValueError as e:
        assert any(name.split("_")[0] in str(e) for name in changes) or "classes" in str(e)
        return
    assert 0 < config.conf_threshold < 1 and 0 < config.iou_threshold <= 1
    assert type(config.max_detections) is int and config.max_detections >= 1
    assert config.classes is None or all(type(c) is int and c >= 0 for c in config.classes)
    assert type(config.agnostic) is bool


@pytest.mark.parametrize("changes", [dict(max_detections=2.5), dict(max_detections=float("nan")),
                                     dict(max_detections=True), dict(conf_threshold=float("nan")),
                                     dict(classes=[1.5]), dict(classes="12"), dict(agnostic="yes")])
def test_detector_update_refuses_at_once_and_keeps_the_old_config(test_model, changes):
    from yolov5_dpu_ros.backends.onnx import OnnxBackend
    from yolov5_dpu_ros.core.detector import Detector

    onnx_path, meta, _ = test_model
    detector = Detector(OnnxBackend(onnx_path, meta), meta)
    before = detector.config
    with pytest.raises(ValueError, match=next(iter(changes)).split("_")[0]):
        detector.update(**changes)
    assert detector.config is before


def _reference_nms(xyxy, score, class_id, iou_threshold):
    """torchvision's rule (``torchvision.ops.batched_nms``, which YOLOv5 calls): in descending score order, a box
    is discarded only when its IoU with a kept box of its class is above the threshold; written here from that
    documented rule in exact fractions, independent of the package's code."""
    from fractions import Fraction

    def iou(a, b):
        a, b = [Fraction(float(v)) for v in a], [Fraction(float(v)) for v in b]
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union else Fraction(0)

    keep = []
    for i in sorted(range(len(score)), key=lambda k: -score[k]):
        if all(class_id[k] != class_id[i] or iou(xyxy[k], xyxy[i]) <= Fraction(iou_threshold) for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("threshold,second", [
    (0.5, [0, 0, 10, 5]),  # IoU 50/100
    (0.25, [0, 0, 5, 5]),  # 25/100
    (0.75, [0, 0, 10, 7.5]),  # 75/100
    (0.375, [0, 0, 10, 3.75]),  # 37.5/100
])
@pytest.mark.parametrize("path", ["sweep", "greedy"])
def test_a_box_exactly_at_the_iou_threshold_is_kept_as_torchvision_keeps_it(threshold, second, path, monkeypatch):
    """Boxes whose IoU is exactly the threshold (every number exact in binary): only IoU above it suppresses."""
    from yolov5_dpu_ros.core import postprocess

    if path == "greedy":  # the fallback for frames with too many overlapping pairs
        monkeypatch.setattr(postprocess, "MAX_NMS_PAIRS", 0)
    above = [0, 0, 10, 5.0 + 1 / 64] if threshold == 0.5 else None  # a hair above the threshold: suppressed
    boxes = [[0, 0, 10, 10], second, [20, 20, 30, 30], [20, 20, 30, 25]]
    xyxy = np.array(boxes + ([above] if above else []), np.float32)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5][:len(xyxy)], np.float32)
    classes = np.array([0, 0, 1, 0, 0][:len(xyxy)], np.int32)  # box 3 overlaps box 2 by 0.5, another class
    kept = sorted(nms(xyxy, score, classes, threshold, 100).tolist())
    assert kept == sorted(_reference_nms(xyxy, score, classes, threshold))
    assert 1 in kept  # exactly at the threshold: kept
    if above:
        assert 4 not in kept


@pytest.mark.parametrize("threshold", [0.3, 0.45, 0.5, 0.7])
def test_a_box_inside_another_that_starts_later_is_suppressed_right_above_the_threshold(threshold):
    """The sweep only pairs boxes whose x overlap exceeds (a hair under) the threshold times the width of the box that
    starts first; a box nested in that one's height, ending where it ends, makes that bound exact (IoU = overlap /
    width). Around that point, in 1/256 px steps and for two classes at once, NMS keeps what the reference keeps."""
    for step in range(-4, 5):
        x = 64 * (1 - threshold) + step / 256
        xyxy = np.array([[0, 0, 64, 8], [x, 0, 64, 8], [0, 20, 64, 28], [x, 20, 64, 28]], np.float32)
        score = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
        classes = np.array([0, 0, 1, 1], np.int32)
        kept = sorted(nms(xyxy, score, classes, threshold, 100).tolist())
        assert kept == sorted(_reference_nms(xyxy, score, classes, threshold)), (threshold, step)


@pytest.mark.parametrize("seed", range(5))
def test_nms_equals_the_reference_rule_on_boxes_built_on_the_grid(seed):
    """Random boxes on a 1/8-pixel grid with thresholds on 1/16 steps: many pairs sit exactly on the threshold."""
    rng = np.random.default_rng(seed)
    n = 60
    x1 = rng.integers(0, 40, n) / 8
    y1 = rng.integers(0, 40, n) / 8
    xyxy = np.column_stack([x1, y1, x1 + rng.integers(8, 40, n) / 8, y1 + rng.integers(8, 40, n) / 8])
    xyxy = xyxy.astype(np.float32)
    score = rng.permutation(n).astype(np.float32) / n
    classes = rng.integers(0, 3, n).astype(np.int32)
    for threshold in (0.25, 0.5, 0.75):
        got = sorted(nms(xyxy, score, classes, threshold, 1000).tolist())
        assert got == sorted(_reference_nms(xyxy, score, classes, threshold)), threshold


def test_settings_are_stored_as_plain_python_values_and_accepted_at_their_bounds():
    """What the node and the CLI pass in (numpy scalars from a params file or an array, ints for floats) is
    stored checked and converted; the least values each setting takes are taken."""
    config = PostprocessConfig(conf_threshold=np.float32(0.5), iou_threshold=1, max_detections=np.int64(1),
                               classes=[np.int64(0), 3], agnostic=np.bool_(True), max_candidates=np.int32(1),
                               low_threshold=np.float32(0.25))
    values = (config.conf_threshold, config.iou_threshold, config.max_detections, config.classes, config.agnostic,
              config.max_candidates, config.low_threshold)
    assert values == (0.5, 1.0, 1, (0, 3), True, 1, 0.25)
    assert [type(v) for v in values] == [float, float, int, tuple, bool, int, float]
    assert all(type(c) is int for c in config.classes)


@pytest.mark.parametrize("kwargs,message", [
    ({"conf_threshold": 1.0}, "conf_threshold"), ({"conf_threshold": 0.0}, "conf_threshold"),
    ({"iou_threshold": 0.0}, "iou_threshold"), ({"max_detections": 0}, "max_detections"),
    ({"max_candidates": 0}, "max_candidates"), ({"classes": [1, -1]}, r"classes\[\]"),
    ({"low_threshold": 0.0}, "track_low_threshold"), ({"low_threshold": 0.25}, "track_low_threshold"),
    ({"low_threshold": 0.3}, "track_low_threshold"),
])
def test_each_bad_setting_is_refused_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PostprocessConfig(**kwargs)


def test_sub_pixel_and_empty_boxes_in_nms():
    """IoU as torchvision computes it at any size: two equal boxes of 0.5 x 0.5 px overlap fully (the second goes);
    two empty boxes (no area, no union) overlap nothing (both stay)."""
    xyxy = np.array([[5.0, 5.0, 5.5, 5.5], [5.0, 5.0, 5.5, 5.5], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]],
                    np.float32)
    kept = nms(xyxy, np.float32([0.9, 0.8, 0.7, 0.6]), np.zeros(4, np.int32), 0.45, 300)
    assert kept.tolist() == [0, 2, 3]


def test_nothing_above_the_threshold_gives_no_candidate_rows():
    meta = make_meta()
    post = Postprocessor(meta, meta.head_shapes, [4, 4, 3])
    quiet = [np.full(shape, -128, np.int8) for shape in meta.head_shapes]
    assert post.candidates(quiet, 0.25).shape == (0, 7)
    assert len(post(quiet, letterbox_geometry((480, 640), meta.input_hw), PostprocessConfig())) == 0


def test_the_float_path_keeps_a_score_just_above_the_threshold():
    """Float heads (no fix point): the early rejection's margin never drops a row the exact score test keeps — a
    YOLOv5 row whose objectness is 5e-4 above logit(conf) with a certain class, a YOLOv8 row whose class logit is."""
    import math

    logit = math.log(0.25 / 0.75)
    v5 = meta_from_dict({"input_size": [32, 32], "strides": [32], "anchors": [[10, 13]], "names": ["a"],
                         "input_fix_point": 7})
    head = np.full((1, 1, 1, 6), -50.0, np.float32)
    head[0, 0, 0, :4] = 0.0
    head[0, 0, 0, 4], head[0, 0, 0, 5] = logit + 5e-4, 40.0
    assert len(select(Postprocessor(v5, v5.head_shapes, None).candidates([head], 0.25), PostprocessConfig())) == 1
    v8 = meta_from_dict({"family": "yolov8", "input_size": [32, 32], "strides": [32], "names": ["a"],
                         "input_fix_point": 7})
    head = np.zeros((1, 1, 1, 65), np.float32)
    head[0, 0, 0, 64] = logit + 5e-4
    assert len(select(Postprocessor(v8, v8.head_shapes, None).candidates([head], 0.25), PostprocessConfig())) == 1


def test_classes_stay_apart_in_nms_even_at_the_edges_of_the_frame():
    """Class-aware NMS moves each class along x past the others for the sweep: two boxes of different classes
    covering the whole frame, one starting half a pixel in, overlap by IoU 0.995 and both stay."""
    xyxy = np.array([[0.0, 0.0, 100.0, 50.0], [0.5, 0.0, 100.0, 50.0]], np.float32)
    assert nms(xyxy, np.float32([0.9, 0.8]), np.int32([0, 1]), 0.45, 300).tolist() == [0, 1]
    assert nms(xyxy, np.float32([0.9, 0.8]), np.int32([0, 1]), 0.45, 300, agnostic=True).tolist() == [0]


def test_equal_scores_come_out_in_yolov5s_anchor_major_order_on_a_large_grid():
    """YOLOv5 flattens a head anchor by anchor (view(bs, na, ny, nx, no)): at 640, stride 8, anchor 0 of the last
    cell (rank 6399) comes before anchor 1 of the first cell (rank 6400), and two equal scores leave in that order
    (ranks this large need more than float16 to stay apart)."""
    meta = make_meta(size=(640, 640))
    heads = [np.full(shape, -128, np.int8) for shape in meta.head_shapes]
    no = 5 + meta.num_classes
    for y, x, a in ((79, 79, 0), (0, 0, 1)):
        row = heads[0][0, y, x, a * no:(a + 1) * no]
        row[:4], row[4], row[5 + 3] = 0, 64, 64
    found = select(Postprocessor(meta, meta.head_shapes, [4, 4, 4]).candidates(heads, 0.25), PostprocessConfig())
    assert len(found) == 2 and found.score[0] == found.score[1]
    assert found.xyxy[0, 0] > 500 > found.xyxy[1, 0]  # the last cell first, then the first cell


def test_equal_scores_of_different_strides_leave_in_stride_order_whatever_the_output_order():
    """YOLOv5 concatenates the heads by stride; VART lists outputs by tensor name: two equal scores, one at stride 32
    and one at stride 8, leave stride 8 first even when the stride-32 output is handed over first."""
    meta = make_meta()
    heads = [np.full(shape, -128, np.int8) for shape in meta.head_shapes]
    no = 5 + meta.num_classes
    for level in (0, 2):
        row = heads[level][0, 0, 0, :no]
        row[:4], row[4], row[5 + 3] = 0, 64, 64
    reversed_order = heads[::-1]
    post = Postprocessor(meta, [h.shape for h in reversed_order], [4, 4, 4])
    found = select(post.candidates(reversed_order, 0.25), PostprocessConfig())
    assert len(found) == 2 and found.score[0] == found.score[1]
    widths = (found.xyxy[:, 2] - found.xyxy[:, 0]).tolist()
    assert widths[0] < widths[1]  # stride 8's small anchor first, then stride 32's large one
