"""Post-processing of each model family at its model's size, against a sigmoid-everything baseline.

    python bench/bench_families.py [--repeat 100] [--markdown bench/RESULTS_FAMILIES.md]

For YOLOv5 (640, 3 anchors), the pynq-dpu YOLOv3 (416, 3 anchors) and YOLOX-nano (416, anchor-free), each with
80 and with 12 classes (YOLOv5 also with one: a crowd), on generated int8 heads with K = 5, 50, 200 objects: this
package (rejection on raw int8 objectness, then the family's decode of the survivors) against a
baseline run in the same process that dequantizes and takes the sigmoid of every output, decodes
every row and applies the same thresholds and an OpenCV NMS. Detections are checked to agree. Targets (the CPU
budget): <= 0.5 ms at K = 50 and <= 1.0 ms at K = 200.
YOLOv8n (640, 80 classes, DFL head): this package against Ultralytics' own post-processing on the same heads
(``Detect``'s decode of the dequantised heads, ``non_max_suppression``), in the same process, where Ultralytics
is installed. Targets: YOLOv8 >= 5x Ultralytics and <= 1 ms at K = 50.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "test")]

from bench_pipeline import identical, median_ms, select_with_opencv  # noqa: E402
from heads import clustered_heads  # noqa: E402
from report import emit, timing_arguments  # noqa: E402

from yolov5_dpu_ros.core.families import family as model_family  # noqa: E402
from yolov5_dpu_ros.core.model_meta import load_meta, meta_from_dict  # noqa: E402
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor  # noqa: E402
from yolov5_dpu_ros.core.preprocess import letterbox_geometry  # noqa: E402

PRESETS = ROOT / "config" / "models"
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
MODELS = {
    "yolov5": (meta_from_dict({"input_size": [640, 640], "strides": [8, 16, 32], "anchors": ANCHORS,
                               "names": [str(i) for i in range(80)], "input_fix_point": 6}), (4, 4, 3)),
    "yolov3": (load_meta(PRESETS / "yolov3_voc_pynq_dpu.yaml"), (3, 3, 4)),
    "yolox": (load_meta(PRESETS / "yolox_nano_coco.yaml"), (2, 2, 2)),
}


def baseline(heads, meta, fix_points, letterbox, cfg: PostprocessConfig):
    """Sigmoid over every output, decode every row (the family's formulas), thresholds, OpenCV NMS."""
    no, rows = 5 + meta.num_classes, []
    for level, (h, fp) in enumerate(zip(heads, fix_points)):
        _, gh, gw, _ = h.shape
        t = h.reshape(gh, gw, meta.num_anchors, no).astype(np.float32) * np.float32(2.0**-fp)
        p = 1.0 / (1.0 + np.exp(-t))
        gy, gx = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grid = np.stack((gx, gy), -1)[:, :, None, :].astype(np.float32)
        stride, anchor = meta.strides[level], meta.anchors_array()[level][None, None]
        if meta.family == "yolov5":
            xy, wh = (p[..., :2] * 2 - 0.5 + grid) * stride, (p[..., 2:4] * 2) ** 2 * anchor
        elif meta.family == "yolov3":
            xy, wh = (p[..., :2] + grid) * stride, np.exp(t[..., 2:4]) * anchor
        else:
            xy, wh = (t[..., :2] + grid) * stride, np.exp(t[..., 2:4]) * stride
        rows.append(np.concatenate((xy, wh, p[..., 4:]), -1).reshape(-1, no))
    return select_with_opencv(np.concatenate(rows), letterbox, cfg)


CLASSES = (80, 12)
TARGET_MS = {50: 0.5, 200: 1.0}  # the CPU budget's targets for post-processing at K objects


def bench(repeat: int) -> list[dict]:
    rows = []
    for family, (preset, fix_points) in MODELS.items():
        for nc in CLASSES + ((1,) if family == "yolov5" else ()):  # and a crowd of one class
            meta = meta_from_dict({**preset.to_dict(), "names": [str(i) for i in range(nc)]}, family)
            rows += bench_model(meta, fix_points, family, repeat)
    return rows


def bench_model(meta, fix_points, family: str, repeat: int) -> list[dict]:
    """One family and class count at K = 5, 50, 200."""
    rows = []
    post = Postprocessor(meta, meta.head_shapes, fix_points)
    letterbox = letterbox_geometry((1080, 1920), meta.input_hw, model_family(meta.family).contract)
    cfg = PostprocessConfig()
    for k in (5, 50, 200):
        heads = clustered_heads(meta, np.random.default_rng(k), fix_points, k)
        ours_det, base_det = post(heads, letterbox, cfg), baseline(heads, meta, fix_points, letterbox, cfg)
        ours, base = median_ms([lambda: post(heads, letterbox, cfg),  # noqa: B023
                                lambda: baseline(heads, meta, fix_points, letterbox, cfg)], repeat)  # noqa: B023
        rows.append(dict(family=family, input=meta.input_hw[0], classes=meta.num_classes, anchors=meta.num_anchors,
                         k=k, found=len(ours_det), ours=ours, base=base, same=identical(ours_det, base_det)))
    return rows


def bench_yolov8(repeat: int) -> list[dict]:
    """YOLOv8n at 640, 80 classes, K = 5/50/200: this package against Ultralytics' decode + NMS (empty without
    Ultralytics)."""
    try:
        from test_yolov8 import UltralyticsPost, generated_heads, yolov8_meta
        from ultralytics_reference import load

        ultra = load()
    except ImportError:
        return []
    import torch

    torch.set_num_threads(1)  # as the package's post-processing: one thread
    meta = yolov8_meta(80)
    post = Postprocessor(meta, meta.head_shapes, meta.output_fix_points)
    letterbox = letterbox_geometry((1080, 1920), meta.input_hw, model_family("yolov8").contract)
    cfg, rows, theirs_post = PostprocessConfig(), [], UltralyticsPost(ultra, meta)
    for k in (5, 50, 200):
        heads = generated_heads(meta, np.random.default_rng(k), k)
        ours_det = post(heads, letterbox, cfg)
        theirs = theirs_post(heads, meta.output_fix_points, cfg)
        same = len(ours_det) == len(theirs) and np.allclose(
            np.sort(ours_det.score), np.sort(theirs[:, 4]), rtol=1e-5)
        ours, base = median_ms([lambda: post(heads, letterbox, cfg),  # noqa: B023
                                lambda: theirs_post(heads, meta.output_fix_points, cfg)], repeat)  # noqa: B023
        rows.append(dict(k=k, found=len(ours_det), ours=ours, base=base, same=same))
    return rows


def render(rows: list[dict], v8: list[dict] | None = None) -> str:
    out = ["### Post-processing by model family (ms per frame, the lowest round median, 1920x1080 source)", "",
           "| family | input | classes | anchors | K objects | detections | this package | target | sigmoid-everything "
           "| speed-up | agree |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = TARGET_MS.get(r["k"]) if r["classes"] in CLASSES else None
        verdict = "" if target is None else f"≤ {target} {'met' if r['ours'] <= target else 'NOT met'}"
        out.append(f"| {r['family']} | {r['input']} | {r['classes']} | {r['anchors']} | {r['k']} | {r['found']} | "
                   f"{r['ours']:.3f} | {verdict} | {r['base']:.2f} | {r['base'] / r['ours']:.1f}x | "
                   f"{'yes' if r['same'] else 'NO'} |")
    if v8:
        out += ["", "### YOLOv8n against Ultralytics' own post-processing (ms per frame, the lowest round median, "
                "640 input, 80 classes, 1920x1080 source, one thread each)", "",
                "| K objects | detections | this package | Ultralytics (decode + NMS) | speed-up | agree |",
                "|---|---|---|---|---|---|"]
        out += [f"| {r['k']} | {r['found']} | {r['ours']:.3f} | {r['base']:.2f} | {r['base'] / r['ours']:.1f}x | "
                f"{'yes' if r['same'] else 'NO'} |" for r in v8]
    return "\n".join(out)


def main() -> int:
    args = timing_arguments(__doc__)
    return emit(render(bench(args.repeat), bench_yolov8(args.repeat)), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
