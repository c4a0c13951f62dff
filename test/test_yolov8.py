"""The YOLOv8 family (anchor-free, DFL box head, no objectness) against Ultralytics' own decode and NMS: on
generated int8 heads with K known objects, and on a randomly initialised YOLOv8n with ReLU fed real images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import batch_norm_from

from yolov5_dpu_ros.core.families import family
from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads, meta_from_dict
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor, select
from yolov5_dpu_ros.core.preprocess import Preprocessor, letterbox_geometry

STRIDES = (8, 16, 32)
DEMO_IMAGES = Path(__file__).resolve().parents[1] / "demo" / "images"


def yolov8_meta(nc: int, size: int = 640, reg_max: int = 16, fix_points=(3, 3, 3)) -> ModelMeta:
    return meta_from_dict({"family": "yolov8", "input_size": [size, size], "strides": list(STRIDES),
                           "names": [f"c{i}" for i in range(nc)], "input_fix_point": 7, "reg_max": reg_max,
                           "output_fix_points": list(fix_points)})


def generated_heads(meta: ModelMeta, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """int8 NHWC heads (box bins, then class logits) with ``k`` objects: each a cell of a random level whose four
    side distributions put their mass on two neighbouring bins (so the expectation is any distance), one class
    clearly on (no two objects of a class with the same raw score: NMS keeps either of two equal scores, and
    Ultralytics' sort does not fix which); the background's classes off and its bins noise."""
    reg_max, nc = meta.reg_max, meta.num_classes
    heads = []
    for level, fp in enumerate(meta.output_fix_points):
        _, h, w, c = meta.head_shape(level)
        head = np.zeros((h, w, c), np.float32)
        head[..., :4 * reg_max] = rng.normal(0, 1.0, (h, w, 4 * reg_max))
        head[..., 4 * reg_max:] = rng.uniform(-9, -4, (h, w, nc))
        heads.append((head, fp))
    used: dict[int, set[int]] = {}  # per class, the raw logits given: no two objects of a class score the same
    for _ in range(k):
        level = int(rng.integers(len(STRIDES)))
        head, _ = heads[level]
        y, x = int(rng.integers(head.shape[0])), int(rng.integers(head.shape[1]))
        for side in range(4):
            d = rng.uniform(0.2, reg_max - 1.2)
            low = int(d)
            bins = np.full(reg_max, -8.0, np.float32)
            bins[low], bins[low + 1] = np.log(low + 1 - d + 1e-3) + 6, np.log(d - low + 1e-3) + 6
            head[y, x, side * reg_max:(side + 1) * reg_max] = bins
        cls, fp = int(rng.integers(nc)), meta.output_fix_points[level]
        raw = int(rng.integers(-2 ** fp, min(127, 6 * 2 ** fp)))
        while raw in used.setdefault(cls, set()):
            raw = int(rng.integers(-2 ** fp, min(127, 6 * 2 ** fp)))
        used[cls].add(raw)
        head[y, x, 4 * reg_max + cls] = raw * 2.0 ** -fp
    return [np.clip(np.round(head * 2.0 ** fp), -128, 127).astype(np.int8)[None] for head, fp in heads]


class UltralyticsPost:
    """Ultralytics' own path on dequantised heads: Detect's decode (DFL, dist2bbox with make_anchors' cell
    centres, × stride, class sigmoid) and its non_max_suppression; boxes xyxy in input pixels. The head module is
    built once (its convs are not used: only the decode after them)."""

    def __init__(self, ultra, meta: ModelMeta) -> None:
        import torch

        self.ultra, self.meta, self.torch = ultra, meta, torch
        self.detect = ultra.Detect(nc=meta.num_classes, reg_max=meta.reg_max, ch=(16, 32, 64)).eval()
        self.detect.stride = torch.tensor([float(s) for s in STRIDES])

    def __call__(self, heads: list[np.ndarray], fix_points, config: PostprocessConfig) -> np.ndarray:
        torch, box = self.torch, 4 * self.meta.reg_max
        boxes, scores, feats = [], [], []
        for head, fp in zip(heads, fix_points):
            t = torch.from_numpy(head.astype(np.float32) * np.float32(2.0 ** -fp)).permute(0, 3, 1, 2)  # NCHW
            boxes.append(t[:, :box].flatten(2))
            scores.append(t[:, box:].flatten(2))
            feats.append(t[:, :1])
        with torch.no_grad():
            y = self.detect._inference({"boxes": torch.cat(boxes, 2), "scores": torch.cat(scores, 2), "feats": feats})
            out = self.ultra.nms(y, config.conf_threshold, config.iou_threshold, max_det=config.max_detections)[0]
        return out.numpy().astype(np.float64)


def ultralytics_detections(ultra, meta: ModelMeta, heads: list[np.ndarray], fix_points, config: PostprocessConfig):
    """``UltralyticsPost`` once."""
    return UltralyticsPost(ultra, meta)(heads, fix_points, config)


def _by_box(xyxy, score, cls):
    """Detections in one order for both sides: by score (to 1e-4: float32 and torch sigmoids differ in the last
    bits, which can swap equal-score neighbours), then by box."""
    order = np.lexsort((xyxy[:, 1], xyxy[:, 0], -np.round(score, 4)))
    return xyxy[order], score[order], cls[order]


def test_the_coco_preset_describes_a_yolov8n_with_relu():
    from yolov5_dpu_ros.core.model_meta import load_meta

    meta = load_meta(Path(__file__).resolve().parents[1] / "config" / "models" / "yolov8n_relu_coco.yaml")
    assert (meta.family, meta.reg_max, meta.activation, meta.num_classes) == ("yolov8", 16, "relu", 80)
    assert meta.head_shapes == ((1, 80, 80, 144), (1, 40, 40, 144), (1, 20, 20, 144))
    assert meta.names[0] == "person" and meta.names[-1] == "toothbrush"


def test_the_yolov8_family_reads_its_layout_from_the_table():
    fam = family("yolov8")
    assert (fam.anchor_free, fam.objectness, fam.dfl) == (True, False, True)
    assert fam.row_channels(80, 16) == 144 and family("yolov5").row_channels(80, 16) == 85
    meta = yolov8_meta(80)
    assert meta.head_shapes == ((1, 80, 80, 144), (1, 40, 40, 144), (1, 20, 20, 144))
    assert match_heads([(1, 20, 20, 144), (1, 80, 80, 144), (1, 40, 40, 144)], meta) == (2, 0, 1)
    assert meta_from_dict(meta.to_dict()) == meta and meta.to_dict()["reg_max"] == 16
    assert yolov8_meta(12, reg_max=8).head_shape(0) == (1, 80, 80, 44)
    with pytest.raises(ValueError, match="'reg_max' is for a family with a DFL head"):
        meta_from_dict({**meta.to_dict(), "family": "yolov5", "anchors": [[10, 13]] * 3})
    with pytest.raises(ValueError, match=r"'reg_max' must be an integer in \[1, 64\]"):
        meta_from_dict({**meta.to_dict(), "reg_max": 0})


@pytest.mark.parametrize("nc,k,seed", [(80, 5, 0), (80, 50, 1), (12, 50, 2), (12, 200, 3), (80, 200, 4)])
def test_detections_equal_ultralytics_on_generated_int8_heads(ultra, nc, k, seed):
    meta = yolov8_meta(nc)
    heads = generated_heads(meta, np.random.default_rng(seed), k)
    config = PostprocessConfig()
    post = Postprocessor(meta, meta.head_shapes, meta.output_fix_points)
    ours = select(post.candidates(heads, config.conf_threshold), config)  # input pixels, unclipped, as NMS gives
    theirs = ultralytics_detections(ultra, meta, heads, meta.output_fix_points, config)
    assert len(ours) == len(theirs) and len(ours) >= min(k, 5)
    a = _by_box(ours.xyxy.astype(np.float64), ours.score.astype(np.float64), ours.class_id)
    b = _by_box(theirs[:, :4], theirs[:, 4], theirs[:, 5].astype(np.int32))
    np.testing.assert_allclose(a[0], b[0], atol=2e-3)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5)
    np.testing.assert_array_equal(a[2], b[2])


def test_the_early_rejection_keeps_a_class_logit_exactly_at_the_threshold(ultra):
    """No objectness: a row passes on its best raw class logit; a logit one LSB above logit(conf) is kept, the
    score test after the sigmoid decides the borderline (Ultralytics keeps conf > conf_thres)."""
    meta = yolov8_meta(3, size=64, fix_points=(4, 4, 4))
    heads = [np.full(meta.head_shape(lv), -100, np.int8) for lv in range(3)]
    heads[0][0, 2, 3, :64] = 0
    conf = 1 / (1 + np.exp(-1.0))  # logit 1.0 = 16 LSB at fix point 4
    heads[0][0, 2, 3, 64 + 1] = 16
    heads[0][0, 5, 5, :64] = 0
    heads[0][0, 5, 5, 64 + 2] = 17
    post = Postprocessor(meta, meta.head_shapes, meta.output_fix_points)
    found = select(post.candidates(heads, float(conf)), PostprocessConfig(conf_threshold=float(conf)))
    theirs = ultralytics_detections(ultra, meta, heads, meta.output_fix_points, PostprocessConfig(float(conf)))
    assert found.class_id.tolist() == [2] == theirs[:, 5].astype(int).tolist()
    np.testing.assert_allclose(found.xyxy, theirs[:, :4], atol=1e-4)


def _relu_yolov8n(ultra, images, nc: int = 80, seed: int = 0):
    """YOLOv8n from Ultralytics' own yaml with ReLU (the yaml's ``activation:`` key), random init, batch-norm
    statistics from ``images`` (NCHW float), the class convs drawn so their logits sit near logit(0.05) with a
    spread of about one on them and the box convs so their bin logits spread about two, as a trained head's do: a
    random ReLU network's activations grow layer by layer, and saturated scores would tie at 1.0."""
    import torch

    torch.manual_seed(seed)
    model = ultra.DetectionModel({**_yolov8n_yaml(), "activation": "nn.ReLU()", "nc": nc}, verbose=False)
    batch_norm_from(model, images)
    detect, inputs = model.model[-1], {}
    hook = detect.register_forward_pre_hook(lambda mod, args: inputs.update(x=args[0]))
    with torch.no_grad():
        model(images)
        hook.remove()
        for branches, spread, bias in ((detect.cv3, 1.0, -3.0), (detect.cv2, 2.0, 0.0)):  # classes, box bins
            for branch, x in zip(branches, inputs["x"]):
                last = branch[-1]
                torch.nn.init.normal_(last.weight)
                last.bias.zero_()
                logits = last(branch[:-1](x))
                last.weight *= spread / float(logits.std())
                last.bias.fill_(bias)
    return model


def _yolov8n_yaml() -> dict:
    from ultralytics.nn.tasks import yaml_model_load

    return yaml_model_load("yolov8n.yaml")


def test_a_relu_yolov8n_decodes_as_ultralytics_through_the_package(ultra):
    """Real images, the package's pre-processing (letterbox 114, RGB, /255) into a random-init YOLOv8n with ReLU:
    its raw per-level heads through the package's decode give, anchor for anchor, the boxes, best class and score
    of Ultralytics' Detect on the float model, and after NMS the same detections as its non_max_suppression."""
    import torch

    pre = Preprocessor((320, 320), None, family("yolov8").contract)
    inputs = []
    for path in sorted(DEMO_IMAGES.glob("*.jpg"))[:3]:
        pre(cv2.imread(str(path)))
        inputs.append(torch.from_numpy(pre.buffer.astype(np.float32) / 255).permute(0, 3, 1, 2))
    model = _relu_yolov8n(ultra, torch.cat(inputs))
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    detect = model.model[-1]
    meta = meta_from_dict({"family": "yolov8", "input_size": [320, 320], "strides": [int(s) for s in detect.stride],
                           "names": [f"c{i}" for i in range(80)], "input_fix_point": 7})
    captured = {}
    detect.register_forward_pre_hook(lambda mod, args: captured.update(x=args[0]))
    for image in inputs:
        with torch.no_grad():
            y, _ = model(image)
            heads = [torch.cat((detect.cv2[i](x), detect.cv3[i](x)), 1).permute(0, 2, 3, 1).numpy()
                     for i, x in enumerate(captured["x"])]
        rows = Postprocessor(meta, [h.shape for h in heads], None).candidates(heads, 1e-30)  # every anchor
        theirs = y[0].numpy().T  # (anchors, 4 + nc): xywh in input pixels, class probabilities
        assert rows.shape == (len(theirs), 7) and len(theirs) == sum(h.shape[1] * h.shape[2] for h in heads)
        np.testing.assert_allclose(rows[:, :4], theirs[:, :4], atol=2e-3 * 320, rtol=1e-4)
        np.testing.assert_allclose(rows[:, 5], theirs[:, 4:].max(axis=1), rtol=1e-4, atol=1e-6)
        unique = np.sort(theirs[:, 4:], axis=1)[:, -2] < theirs[:, 4:].max(axis=1) * (1 - 1e-4)  # a clear best class
        np.testing.assert_array_equal(rows[unique, 6], theirs[unique, 4:].argmax(axis=1))
        assert np.all(rows[:, 4] == 1.0) and unique.mean() > 0.5  # most anchors compared on their class
        config = PostprocessConfig(conf_threshold=0.05)
        ours = select(Postprocessor(meta, [h.shape for h in heads], None).candidates(heads, 0.05), config)
        kept = ultra.nms(y, 0.05, config.iou_threshold, max_det=config.max_detections)[0].numpy().astype(np.float64)
        a, b = _by_box(ours.xyxy.astype(np.float64), ours.score.astype(np.float64), ours.class_id), \
            _by_box(kept[:, :4], kept[:, 4], kept[:, 5].astype(np.int32))
        assert len(ours) == len(kept) > 0
        np.testing.assert_allclose(a[0], b[0], atol=2e-3 * 320)
        np.testing.assert_array_equal(a[2], b[2])


def test_yolov5_dpu_detect_runs_a_yolov8_model_through_its_metadata_alone(ultra, tmp_path, capsys):
    """A raw-head ONNX of the ReLU YOLOv8n (Detect returning each level's box and class convs, concatenated) with
    metadata saying family yolov8 and fix points calibrated on the images: ``yolov5-dpu detect`` runs it with no
    other change (the node and ``bag`` build the same Detector), and its detections match Ultralytics' on the
    float model fed the same int8 input for most boxes (what is left is the int8 heads' effect)."""
    import json

    import torch

    from model_prep.calibrate import choose_fix_point
    from model_prep.yolov5_model import export_raw_onnx
    from yolov5_dpu_ros.cli.main import main
    from yolov5_dpu_ros.core.model_meta import save_meta

    pre = Preprocessor((320, 320), None, family("yolov8").contract)
    paths = sorted(DEMO_IMAGES.glob("*.jpg"))[:3]
    inputs = []
    for path in paths:
        pre(cv2.imread(str(path)))
        inputs.append(torch.from_numpy(pre.buffer.astype(np.float32) / 255).permute(0, 3, 1, 2))
    model = _relu_yolov8n(ultra, torch.cat(inputs))
    detect = model.model[-1]
    with torch.no_grad():  # Ultralytics on the input the int8 path sees: pixel / 255 on 2^-7 steps (fix point 7)
        floats = [model(torch.clamp(torch.round(x * 128), -128, 127) / 128)[0] for x in inputs]
    detect.forward = lambda xs: [torch.cat((detect.cv2[i](x), detect.cv3[i](x)), 1) for i, x in enumerate(xs)]
    with torch.no_grad():
        heads = [model(x) for x in inputs]
    export_raw_onnx(model, (320, 320), tmp_path / "yolov8n_relu.onnx")
    fix_points = [choose_fix_point(np.concatenate([h[lv].numpy().ravel() for h in heads])) for lv in range(3)]
    meta = meta_from_dict({"family": "yolov8", "input_size": [320, 320], "strides": [8, 16, 32],
                           "names": [f"c{i}" for i in range(80)], "input_fix_point": 7,
                           "output_fix_points": fix_points})
    save_meta(meta, tmp_path / "yolov8n_relu.yaml")
    folder = tmp_path / "images"
    folder.mkdir()
    for path in paths:
        (folder / path.name).symlink_to(path)
    assert main(["detect", str(folder), "--model", str(tmp_path / "yolov8n_relu.onnx"), "--model-meta",
                 str(tmp_path / "yolov8n_relu.yaml"), "--conf", "0.5", "--jsonl", str(tmp_path / "d.jsonl"),
                 "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [Path(r["source"]).name for r in records] == [p.name for p in paths]
    matched = total = 0
    for record, y, path in zip(records, floats, paths):
        theirs = ultra.nms(y, 0.5, 0.45, max_det=300)[0].numpy()
        letterbox = letterbox_geometry(cv2.imread(str(path)).shape[:2], (320, 320), family("yolov8").contract)
        theirs_src = letterbox.to_source(theirs[:, :4])
        ours = np.array([d["xyxy"] for d in record["detections"]], np.float64).reshape(-1, 4)
        total += len(theirs)
        for box in theirs_src:
            x1 = np.maximum(ours[:, 0], box[0])
            y1 = np.maximum(ours[:, 1], box[1])
            x2 = np.minimum(ours[:, 2], box[2])
            y2 = np.minimum(ours[:, 3], box[3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            union = (box[2] - box[0]) * (box[3] - box[1]) + (ours[:, 2] - ours[:, 0]) * (ours[:, 3] - ours[:, 1])
            matched += bool(len(ours)) and float((inter / np.maximum(union - inter, 1e-9)).max()) >= 0.9
    print(f"int8 heads: {matched} of {total} float detections matched at IoU >= 0.9")
    assert total > 0 and matched / total > 0.8, (matched, total)


def _split(meta: ModelMeta, heads: list[np.ndarray], box_fp: int, cls_fp: int):
    """The heads as two outputs per stride (box bins, class logits), each requantised with its own fix point."""
    box = 4 * meta.reg_max
    out = []
    for head, fp in zip(heads, meta.output_fix_points):
        value = head.astype(np.float32) * 2.0 ** -fp
        out += [np.clip(np.round(value[..., :box] * 2.0 ** box_fp), -128, 127).astype(np.int8),
                np.clip(np.round(value[..., box:] * 2.0 ** cls_fp), -128, 127).astype(np.int8)]
    return out


def test_split_heads_carry_their_own_fix_points_and_are_matched_by_shape_and_name(ultra):
    """Two outputs per stride (box bins at fix point 2, class logits at 5), handed over in VART's name order, not
    the head order: matched by shape, or by name where 64 classes make both parts (1, H, W, 64); detections equal
    Ultralytics' on the same dequantised parts."""
    for nc in (80, 64):
        meta = yolov8_meta(nc)
        split = meta_from_dict({**meta.to_dict(), "split_heads": True, "output_fix_points": [2, 5] * 3})
        assert split.head_shapes[:2] == ((1, 80, 80, 64), (1, 80, 80, nc)) and len(split.head_shapes) == 6
        heads = _split(meta, generated_heads(meta, np.random.default_rng(nc), 40), 2, 5)
        names = [f"p{s}_{part}" for s in STRIDES for part in ("cv2_box", "cv3_cls")]
        order = sorted(range(6), key=names.__getitem__)[::-1]  # another order than the heads'
        outputs, fix_points = [heads[i] for i in order], [split.output_fix_points[i] for i in order]
        post = Postprocessor(split, [h.shape for h in outputs], fix_points, [names[i] for i in order])
        config = PostprocessConfig()
        ours = select(post.candidates(outputs, config.conf_threshold), config)
        theirs = UltralyticsPost(ultra, meta)([np.concatenate((heads[2 * lv].astype(np.float32) * 2.0 ** -2,
                                                                heads[2 * lv + 1].astype(np.float32) * 2.0 ** -5),
                                                               axis=-1) for lv in range(3)], [0, 0, 0], config)
        assert len(ours) == len(theirs) >= 20
        a = _by_box(ours.xyxy.astype(np.float64), ours.score.astype(np.float64), ours.class_id)
        b = _by_box(theirs[:, :4], theirs[:, 4], theirs[:, 5].astype(np.int32))
        np.testing.assert_allclose(a[0], b[0], atol=2e-3)
        np.testing.assert_array_equal(a[2], b[2])
        floats = [h.astype(np.float32) * np.float32(2.0 ** -fp) for h, fp in zip(outputs, fix_points)]
        float_post = Postprocessor(split, [h.shape for h in floats], None, [names[i] for i in order])
        same = select(float_post.candidates(floats, config.conf_threshold), config)  # float split heads: scale 1
        np.testing.assert_array_equal(same.xyxy, ours.xyxy)
        np.testing.assert_array_equal(same.score, ours.score)
    with pytest.raises(ValueError, match="may be a box or a class output .64 classes = 4 x 16 box bins.: its name"):
        Postprocessor(split, [h.shape for h in outputs], fix_points, [f"out{i}" for i in range(6)])
    with pytest.raises(ValueError, match="'split_heads' is for a family without objectness"):
        meta_from_dict({"input_size": [64, 64], "strides": [32], "anchors": [[10, 13]], "names": ["a"],
                        "input_fix_point": 7, "split_heads": True})
    with pytest.raises(ValueError, match=r"3 output_fix_points for 6 output heads: give one per head \(box, then"):
        meta_from_dict({**split.to_dict(), "output_fix_points": [2, 2, 2]})


@pytest.mark.parametrize("split", [False, True])
def test_model_prep_makes_a_raw_head_yolov8n_onnx_and_its_metadata(ultra, tmp_path, split):
    """prepare / export_onnx --family yolov8 from Ultralytics' own yolov8n.yaml: ReLU only, Detect returning each
    stride's raw box and class convs (one output, or two with --split-heads), metadata family yolov8 with reg_max and
    fix points per output head; the ONNX runs in the onnx backend, its outputs matched by shape and name."""
    import onnxruntime as ort

    from model_prep import export_onnx, prepare
    from yolov5_dpu_ros.backends.onnx import OnnxBackend
    from yolov5_dpu_ros.core.model_meta import load_meta

    flags = ["--family", "yolov8", "--cfg", "yolov8n.yaml", "--nc", "64", "--img", "320",
             *(["--split-heads"] if split else [])]
    assert prepare.main([*flags, "--out-meta", str(tmp_path / "p.yaml"), "--out-cfg", str(tmp_path / "t.yaml")]) == 0
    meta = load_meta(tmp_path / "p.yaml")
    assert (meta.family, meta.reg_max, meta.activation, meta.split_heads) == ("yolov8", 16, "relu", split)
    assert meta.head_shapes[0] == ((1, 40, 40, 64) if split else (1, 40, 40, 128))
    # the training yaml: Ultralytics builds yolov8n from it (its scale whatever the file is called) with ReLU only
    trained = ultra.DetectionModel(str(tmp_path / "t.yaml"), verbose=False)
    stock = ultra.DetectionModel("yolov8n.yaml", nc=64, verbose=False)
    assert {type(m).__name__ for m in trained.modules()} & {"SiLU", "ReLU"} == {"ReLU"}
    assert [p.shape for p in trained.parameters()] == [p.shape for p in stock.parameters()]
    if split:  # a scale other than the first one the yaml lists
        assert prepare.main([*flags[:3], "yolov8s.yaml", *flags[4:], "--out-meta", str(tmp_path / "s.yaml"),
                             "--out-cfg", str(tmp_path / "t.yaml")]) == 0
        trained = ultra.DetectionModel(str(tmp_path / "t.yaml"), verbose=False)
        stock = ultra.DetectionModel("yolov8s.yaml", nc=64, verbose=False)
        assert [p.shape for p in trained.parameters()] == [p.shape for p in stock.parameters()]
    out = tmp_path / "new" / "m.onnx"
    assert export_onnx.main([*flags, "--calib", str(DEMO_IMAGES), "--calib-count", "3", "--out", str(out)]) == 0
    out.replace(tmp_path / "m.onnx")
    meta = load_meta(out.with_suffix(".yaml"))
    assert len(meta.output_fix_points) == (6 if split else 3)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ([f"p{s}_{part}" for s in STRIDES for part in ("box", "cls")] if split else ["p8", "p16", "p32"])
    backend = OnnxBackend(tmp_path / "m.onnx", meta)
    assert [s.shape for s in backend.output_specs] == list(meta.head_shapes)  # box and class alike: told by name
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    # DPU operations only: C2f's chunk exports as shape arithmetic (Shape, Gather, Div, Mul) feeding its slices, which
    # Vitis AI maps to the CPU; model_prep's fixed channel slices leave none
    assert ops <= {"Conv", "Relu", "MaxPool", "Resize", "Concat", "Add", "Slice", "Constant", "Identity"}, ops


def test_c2f_blocks_slice_their_channels_instead_of_chunking_with_the_same_numbers(ultra):
    """model_prep swaps C2f's ``chunk`` (an operator the Vitis AI quantizer cannot deploy) for two channel slices:
    every output of the model is bit-for-bit what it was, on real images."""
    import torch

    from model_prep import ultralytics_model as um

    pre = Preprocessor((320, 320), None, family("yolov8").contract)
    images = []
    for path in sorted(DEMO_IMAGES.glob("*.jpg"))[:2]:
        pre(cv2.imread(str(path)))
        images.append(torch.from_numpy(pre.buffer.astype(np.float32) / 255).permute(0, 3, 1, 2))
    x = torch.cat(images)
    model = _relu_yolov8n(ultra, x)
    with torch.no_grad():
        before = model(x)[0]
        assert um.use_channel_slices(model, um.ultralytics_modules()) == 8  # yolov8n: 4 in the backbone, 4 in the neck
        after = model(x)[0]
    assert torch.equal(before, after)


def test_model_prep_refuses_yolo11_and_names_why(ultra, tmp_path):
    from model_prep import prepare

    with pytest.raises(SystemExit, match=r"attention blocks \(Attention, C2PSA, PSABlock.*several DPU subgraphs"):
        prepare.main(["--family", "yolov8", "--cfg", "yolo11n.yaml", "--img", "320", "--out-meta",
                      str(tmp_path / "m.yaml")])
    with pytest.raises(SystemExit, match="--split-heads is for --family yolov8"):
        prepare.main(["--cfg", "yolov5n.yaml", "--split-heads", "--out-meta", str(tmp_path / "m.yaml")])
