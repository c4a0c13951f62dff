"""The ``yolov5-dpu`` command: detection over files and bags without ROS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .backends import BACKENDS
from .detector import Detector
from .postprocess import PostprocessConfig

DEMO_DIR = Path(__file__).resolve().parent / "demo_model"
DEMO_META = DEMO_DIR / "shapes_yolov5n.yaml"
DEMO_ONNX = DEMO_DIR / "shapes_yolov5n.onnx"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and selection options shared by the commands that run the detector."""
    g = parser.add_argument_group("model")
    g.add_argument("--backend", choices=BACKENDS, default="onnx", help="inference backend (default: onnx)")
    g.add_argument("--model", type=Path, default=DEMO_ONNX,
                   help="model file: raw-head ONNX for onnx, xmodel for dpu (default: the demo model)")
    g.add_argument("--model-meta", type=Path, default=DEMO_META,
                   help="metadata YAML beside the model (default: the demo model's)")
    g.add_argument("--bit", type=Path, help="dpu: overlay .bit (.hwh and .xclbin beside it; default: pynq_dpu's)")
    g.add_argument("--threads", type=int, default=0, help="backend CPU threads, 0 = library default")
    s = parser.add_argument_group("selection")
    s.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    s.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    s.add_argument("--max-det", type=int, default=300, help="most detections per frame (default 300)")
    s.add_argument("--classes", type=int, nargs="+", help="keep only these class indices")
    s.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")


def build_detector(args: argparse.Namespace) -> Detector:
    """The Detector the model options describe; every problem becomes a CliError."""
    try:
        config = PostprocessConfig(args.conf, args.iou, args.max_det,
                                   None if args.classes is None else tuple(args.classes), args.agnostic)
        return Detector.from_files(args.backend, args.model, args.model_meta, config, threads=args.threads,
                                   bit=args.bit)
    except ValueError as e:
        raise CliError(str(e)) from e


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yolov5-dpu`` console script."""
    from . import bag_cli, detect_cli

    parser = argparse.ArgumentParser(prog="yolov5-dpu", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    detect_cli.register(commands)
    bag_cli.register(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"yolov5-dpu {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
