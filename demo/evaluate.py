"""Accuracy of a model on held-out synthetic shapes: the int8 contract (the board's path) vs float.

    python -m demo.evaluate [--count 300] [--model M.onnx --model-meta M.yaml]

int8: pre-processing → ONNX backend with int8 input and int8 heads → post-processing, exactly the
code the DPU runs around the accelerator. float: the same ONNX on the float letterbox, float heads.
Images come from the generator's "test" split, which training never sees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from demo.shapes import make_sample
from yolov5_dpu_ros.backends.onnx import OnnxBackend
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.metrics import EVAL_CONFIG, MeanAP
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.core.postprocess import Postprocessor
from yolov5_dpu_ros.core.preprocess import Preprocessor
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX


def evaluate(model: Path, meta_path: Path, count: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """{"int8": (mAP50, mAP50-95), "float": (...)} over ``count`` held-out images."""
    meta = load_meta(meta_path)
    backend = OnnxBackend(model, meta)
    detector = Detector(backend, meta, EVAL_CONFIG)
    float_pre = Preprocessor(meta.input_hw, None)
    float_post = Postprocessor(meta, [s.shape for s in backend.output_specs], None)
    scores = {"int8": MeanAP(meta.num_classes), "float": MeanAP(meta.num_classes)}
    for i in range(count):
        sample = make_sample(seed, "test", i)
        found, _ = detector.detect(sample.image)
        scores["int8"].add(found, sample.xyxy, sample.class_id)
        letterbox = float_pre(sample.image)
        x = np.ascontiguousarray(float_pre.buffer.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
        heads = [h.transpose(0, 2, 3, 1) for h in backend.run_float(x)]
        scores["float"].add(float_post(heads, letterbox, EVAL_CONFIG), sample.xyxy, sample.class_id)
    return {k: v.result() for k, v in scores.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--model", type=Path, default=DEMO_ONNX)
    parser.add_argument("--model-meta", type=Path, default=DEMO_META)
    args = parser.parse_args()
    result = evaluate(args.model, args.model_meta, args.count)
    print(f"held-out images: {args.count}")
    for name, (m50, m5095) in result.items():
        print(f"{name:>5}: mAP@0.5 {m50:.4f}  mAP@0.5:0.95 {m5095:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
