"""export_onnx: a ReLU YOLOv5 checkpoint → raw-head ONNX + metadata with calibrated fix points.

    python -m model_prep.export_onnx --weights best.pt --img 320 --calib images/val \\
        --out shapes_yolov5n.onnx [--rule mse|maxabs] [--calib-count 200]

Writes OUT (float NCHW input, one raw conv output per stride) and OUT with .yaml: the metadata,
with the input and per-output power-of-two fix points calibrated over the images through the
node's own pre-processing (letterbox, RGB, /255), so the onnx backend quantizes like the DPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from model_prep import yolov5_model as ym
from model_prep.calibrate import RULES, calibrate_heads, choose_fix_point, float_input
from model_prep.prepare import add_source_arguments, input_hw, load_dpu_model, output_names, prepared_meta
from yolov5_dpu_ros.core.model_meta import save_meta
from yolov5_dpu_ros.core.preprocess import Preprocessor
from yolov5_dpu_ros.core.sources import iter_frames, resolve_source


def calibration_images(folder: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` BGR images from a folder, evenly spread over its sorted listing."""
    try:
        source = resolve_source(folder)
    except ValueError as e:
        raise SystemExit(f"--calib: {e}") from e
    frames = [f.image for f in iter_frames(source) if f.image is not None]
    step = max(1, len(frames) // count)
    return frames[::step][:count]


def input_fix_point(images: list[np.ndarray], hw: tuple[int, int], rule: str) -> int:
    """Fix point of the /255 model input over the calibration images."""
    pre = Preprocessor(hw, None)
    values = []
    for image in images:
        pre(image, "bgr8")
        values.append(float_input(pre.buffer).ravel()[::97])
    return choose_fix_point(np.concatenate(values), rule)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.export_onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("--calib", type=Path, required=True, help="folder of calibration images")
    parser.add_argument("--calib-count", type=int, default=200, help="images used (default 200)")
    parser.add_argument("--rule", choices=RULES, default="mse", help="fix point rule (default mse)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write (metadata: same name .yaml)")
    args = parser.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise SystemExit("export_onnx checks the exported model with onnxruntime: pip install onnxruntime") from e
    hw = input_hw(args)
    images = calibration_images(args.calib, args.calib_count)
    model, modules = load_dpu_model(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ym.export_raw_onnx(model, hw, args.out, output_names(model, modules, args))
    session = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    fps = calibrate_heads(lambda x: session.run(None, {"images": x}), images, hw, args.rule)
    meta = prepared_meta(model, modules, args, hw).with_fix_points(input_fix_point(images, hw, args.rule), fps)
    save_meta(meta, args.out.with_suffix(".yaml"))
    print(f"wrote {args.out} and {args.out.with_suffix('.yaml')}: input fix point {meta.input_fix_point}, "
          f"output fix points {list(fps)} ({args.rule} over {len(images)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
