"""dpu_sim: the DPU's int8 accuracy estimated in plain PyTorch, without the Vitis AI docker.

    python -m model_prep.dpu_sim --weights best.pt --img 320 --calib images/val --labelled data/images/test \\
        [--rule mse|maxabs] [--count 300]

The emulation folds batch norm into the convolutions, quantizes every convolution's weights and
bias to int8 with one power-of-two scale per tensor, and every activation the DPU stores (the model
input, each Conv block's output after ReLU, residual sums, concatenations and the raw heads) to
int8 with a power-of-two scale calibrated over images, by the same rule as export_onnx. It is an
estimate: vai_q_pytorch chooses its own fix points and may fine-tune. Both the float and the
emulated model run through the node's pre- and post-processing; the labelled folder holds YOLO txt
labels (images/x.jpg with labels/x.txt, or x.txt beside x.jpg).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import cv2
import numpy as np

from model_prep.calibrate import RULES, choose_fix_point, float_input
from model_prep.export_onnx import calibration_images
from model_prep.prepare import add_source_arguments, class_names, input_hw, load_dpu_model
from model_prep.yolov5_model import model_meta
from yolov5_dpu_ros.core.metrics import EVAL_CONFIG, MeanAP
from yolov5_dpu_ros.core.postprocess import Postprocessor
from yolov5_dpu_ros.core.preprocess import Preprocessor
from yolov5_dpu_ros.core.sources import IMAGE_SUFFIXES


def fake_quant(x, fix_point: int):
    """Round and clip to int8 at 2**-fix_point steps, back in float."""
    scale = 2.0**fix_point
    return (x * scale).round().clamp(-128, 127) / scale


def _activation_modules(model, yolo) -> list:
    """Modules whose outputs the DPU stores as int8 tensors."""
    kinds = (yolo.Conv, yolo.Bottleneck, yolo.Concat)
    return [m for m in model.modules() if isinstance(m, kinds)] + list(model.model[-1].m)


class DpuEmulation:
    """A BN-folded copy of a raw-head model with int8 power-of-two weights and activations."""

    def __init__(self, model, yolo, rule: str = "mse") -> None:
        import torch

        self.model = copy.deepcopy(model)
        self.model.fuse()  # YOLOv5's own Conv+BN folding
        self.rule = rule
        self.fix_points: dict[str, int] = {}
        with torch.no_grad():
            for name, m in self.model.named_modules():
                if isinstance(m, torch.nn.Conv2d):
                    for pname in ("weight", "bias"):
                        p = getattr(m, pname)
                        if p is not None:
                            fp = choose_fix_point(p.detach().cpu().numpy().ravel(), rule)
                            self.fix_points[f"{name}.{pname}"] = fp
                            p.copy_(fake_quant(p, fp))
        self._points = _activation_modules(self.model, yolo)
        self._input_fp: int | None = None
        self._hooks: list = []

    def calibrate(self, inputs: list) -> None:
        """Fix points of the input and every stored activation over calibration inputs (NCHW floats)."""
        import torch

        samples: dict[int, list[np.ndarray]] = {i: [] for i in range(len(self._points))}
        rng = np.random.default_rng(0)

        def record(i):
            def hook(_m, _inp, out):
                flat = out.detach().cpu().numpy().ravel()
                samples[i].append(np.concatenate((flat[rng.integers(0, flat.size, 4096)], [flat.min(), flat.max()])))
            return hook

        hooks = [m.register_forward_hook(record(i)) for i, m in enumerate(self._points)]
        try:
            with torch.no_grad():
                for x in inputs:
                    self.model(x)
        finally:
            for h in hooks:
                h.remove()
        self._input_fp = choose_fix_point(np.concatenate([x.numpy().ravel()[::31] for x in inputs]), self.rule)
        for i, m in enumerate(self._points):
            fp = choose_fix_point(np.concatenate(samples[i]), self.rule)
            self._hooks.append(m.register_forward_hook(lambda _m, _inp, out, fp=fp: fake_quant(out, fp)))

    def __call__(self, x):
        return self.model(fake_quant(x, self._input_fp))


def labelled_images(folder: Path) -> list[tuple[Path, Path]]:
    """(image, YOLO label) pairs: labels/x.txt for images/x.jpg, or x.txt beside x.jpg."""
    if not folder.is_dir():
        raise SystemExit(f"--labelled: {folder} is not a folder")
    pairs = []
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        parts = list(image.parts)
        if "images" in parts:
            parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
        for label in (Path(*parts).with_suffix(".txt"), image.with_suffix(".txt")):
            if label.is_file():
                pairs.append((image, label))
                break
    if not pairs:
        raise SystemExit(f"--labelled: no images with YOLO labels under {folder}")
    return pairs


def read_yolo_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and xyxy pixel boxes from a YOLO txt label file."""
    rows = np.array([line.split() for line in path.read_text().splitlines() if line.strip()], np.float64)
    rows = rows.reshape(-1, 5)
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    return rows[:, 0].astype(np.int64), np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)


def evaluate(model, emulation: DpuEmulation, meta, pairs, count: int) -> dict[str, tuple[float, float]]:
    """mAP@0.5 and mAP@0.5:0.95 of the float model and of its DPU emulation, same pre/post-processing."""
    import torch

    pre = Preprocessor(meta.input_hw, None)
    post = Postprocessor(meta, meta.head_shapes, None)
    scores = {"float": MeanAP(meta.num_classes), "dpu int8 (emulated)": MeanAP(meta.num_classes)}
    for image_path, label_path in pairs[:count]:
        image = cv2.imread(str(image_path))
        if image is None:
            continue
        gt_class, gt_xyxy = read_yolo_labels(label_path, image.shape[1], image.shape[0])
        letterbox = pre(image, "bgr8")
        x = torch.from_numpy(float_input(pre.buffer))
        with torch.no_grad():
            for name, run in (("float", model), ("dpu int8 (emulated)", emulation)):
                heads = [h.permute(0, 2, 3, 1).numpy() for h in run(x)]
                scores[name].add(post(heads, letterbox, EVAL_CONFIG), gt_xyxy, gt_class)
    return {k: v.result() for k, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.dpu_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("--calib", type=Path, required=True, help="folder of calibration images")
    parser.add_argument("--calib-count", type=int, default=100)
    parser.add_argument("--labelled", type=Path, required=True, help="folder of images with YOLO labels")
    parser.add_argument("--count", type=int, default=300, help="labelled images evaluated")
    parser.add_argument("--rule", choices=RULES, default="mse", help="fix point rule (default mse)")
    args = parser.parse_args(argv)
    if args.family != "yolov5":
        raise SystemExit("dpu_sim emulates YOLOv5 models (their Conv, Bottleneck and Concat points); for a YOLOv8 "
                         "model, compare the float and int8 heads with export_onnx's metadata and yolov5-dpu detect")
    import torch

    hw = input_hw(args)
    model, yolo = load_dpu_model(args)
    meta = model_meta(model, yolo, hw, class_names(args))
    pre = Preprocessor(hw, None)
    inputs = []
    for image in calibration_images(args.calib, args.calib_count):
        pre(image, "bgr8")
        inputs.append(torch.from_numpy(float_input(pre.buffer)))
    emulation = DpuEmulation(model, yolo, args.rule)
    emulation.calibrate(inputs)
    result = evaluate(model, emulation, meta, labelled_images(args.labelled), args.count)
    print(f"{'':>22}  mAP@0.5  mAP@0.5:0.95")
    for name, (m50, m5095) in result.items():
        print(f"{name:>22}  {m50:7.4f}  {m5095:12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
