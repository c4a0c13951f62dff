"""quantize: vai_q_pytorch (Vitis AI 2.5) calibration and xmodel export of a ReLU YOLOv5 checkpoint.

    python -m model_prep.quantize --weights best.pt --img 640 --calib images/ [--calib-count 200] \\
        [--finetune] [--out quantize_result] [--device cpu|cuda]

Calibrates over N images with the node's own pre-processing (letterbox with 114, RGB, /255), then
re-creates the quantizer in test mode with batch 1 and exports ``<Model>_int.xmodel`` for
``model_prep.compile``. With --finetune, fast finetune (AdaQuant) runs over the same images first.
Runs only inside the Vitis AI 2.5 PyTorch docker (pytorch_nndct).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_prep.calibrate import float_input
from model_prep.environment import require_module
from model_prep.export_onnx import calibration_images
from model_prep.prepare import add_source_arguments, input_hw, load_dpu_model
from yolov5_dpu_ros.core.preprocess import Preprocessor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("--calib", type=Path, required=True, help="folder of calibration images")
    parser.add_argument("--calib-count", type=int, default=200, help="images (the Vitis AI guide: 100-1000)")
    parser.add_argument("--finetune", action="store_true", help="fast finetune before export")
    parser.add_argument("--out", type=Path, default=Path("quantize_result"), help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    nndct = require_module("pytorch_nndct.apis", "quantize")
    torch = require_module("torch", "quantize")
    hw = input_hw(args)
    images = calibration_images(args.calib, args.calib_count)
    model, _ = load_dpu_model(args)
    device = torch.device(args.device)
    model = model.to(device)
    pre = Preprocessor(hw, None)

    def batches():
        for image in images:
            pre(image, "bgr8")
            yield torch.from_numpy(float_input(pre.buffer)).to(device)

    def forward(quant_model, _unused=None):
        with torch.no_grad():
            for x in batches():
                quant_model(x)

    dummy = torch.zeros(1, 3, *hw, device=device)
    quantizer = nndct.torch_quantizer("calib", model, (dummy,), output_dir=str(args.out), device=device)
    if args.finetune:
        quantizer.fast_finetune(forward, (quantizer.quant_model,))
    forward(quantizer.quant_model)
    quantizer.export_quant_config()
    print(f"calibrated over {len(images)} images → {args.out}")

    tester = nndct.torch_quantizer("test", model, (dummy,), output_dir=str(args.out), device=device)
    if args.finetune:
        tester.load_ft_param()
    with torch.no_grad():
        tester.quant_model(next(batches()))
    tester.export_xmodel(output_dir=str(args.out), deploy_check=False)
    written = sorted(args.out.glob("*_int.xmodel"))
    if not written:
        raise SystemExit(f"export_xmodel wrote no *_int.xmodel into {args.out}: see the quantizer's messages above")
    print(f"exported {written[0]}: compile it with python -m model_prep.compile --xmodel {written[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
