"""prepare: a YOLOv5 or Ultralytics YOLOv8 yaml or checkpoint → DPU-ready (ReLU, raw heads) + the model metadata.

    python -m model_prep.prepare --cfg yolov5n.yaml --nc 5 --img 320 --out-cfg yolov5n_relu.yaml \\
        --out-meta shapes.yaml --names circle square triangle star cross
    python -m model_prep.prepare --weights best.pt --img 320 --out-meta shapes.yaml
    python -m model_prep.prepare --family yolov8 --weights best.pt --img 640 --out-meta yolov8n.yaml [--split-heads]

With --cfg it writes the training yaml with ``activation: nn.ReLU()`` (the key YOLOv5 reads;
``act:`` is ignored and leaves SiLU), or with ``--activation leakyrelu`` the DPU's own
``nn.LeakyReLU(0.1015625)`` (slope 26/256; another slope runs on the CPU), builds it and checks that
no SiLU, Hardswish or sigmoid is left. With --weights it checks a trained checkpoint the same way and
fails if any remain. Either way it makes Detect return the raw per-level conv outputs and writes the
metadata, which records the activation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from model_prep import ultralytics_model as um
from model_prep import yolov5_model as ym
from yolov5_dpu_ros.core.model_meta import save_meta


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the model comes from: --cfg or --weights, the YOLOv5 code, input size, class names."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--cfg", type=Path, help="model yaml (built with ReLU, random init)")
    src.add_argument("--weights", type=Path, help="train.py checkpoint (best.pt) of a ReLU model")
    parser.add_argument("--family", choices=("yolov5", "yolov8"), default="yolov5",
                        help="yolov5 (the yolov5 package or --yolov5-dir) or yolov8 (Ultralytics); default yolov5")
    parser.add_argument("--split-heads", action="store_true",
                        help="yolov8: two outputs per stride (box bins, class logits), each with its own fix point")
    parser.add_argument("--img", type=int, nargs="+", default=[640], help="model input size: S or H W")
    parser.add_argument("--nc", type=int, help="number of classes (with --cfg)")
    parser.add_argument("--names", nargs="+", help="class names (default: the checkpoint's, or --data's)")
    parser.add_argument("--data", type=Path, help="a YOLOv5 dataset yaml to take the class names from")
    parser.add_argument("--names-file", type=Path, help="class names, one per line (e.g. config/coco80.names)")
    parser.add_argument("--yolov5-dir", type=Path, help="an ultralytics/yolov5 checkout (default: the yolov5 package)")
    parser.add_argument("--activation", choices=tuple(ym.ACTIVATIONS), default="relu",
                        help="with --cfg: the activation the DPU runs (default relu; leakyrelu uses the DPU's "
                             "slope 26/256)")


def input_hw(args: argparse.Namespace) -> tuple[int, int]:
    size = args.img * 2 if len(args.img) == 1 else args.img
    if len(size) != 2 or min(size) < 32 or any(v % 32 for v in size):
        raise SystemExit(f"--img {args.img}: give S or H W, multiples of 32 (YOLOv5's largest stride)")
    return size[0], size[1]


def class_names(args: argparse.Namespace) -> list[str] | None:
    if args.names:
        return list(args.names)
    if args.names_file:
        return [line.strip() for line in args.names_file.read_text().splitlines() if line.strip()]
    if args.data:
        names = yaml.safe_load(args.data.read_text()).get("names")
        return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    return None


def load_dpu_model(args: argparse.Namespace):
    """(model with raw heads, its family's modules): built from --cfg with ReLU, or loaded from --weights;
    checked."""
    if args.split_heads and args.family != "yolov8":
        raise SystemExit("--split-heads is for --family yolov8 (a head without objectness)")
    if args.family == "yolov8":
        ultra = um.ultralytics_modules()
        model = (um.build_model(args.cfg, ultra, args.nc, ym.ACTIVATIONS[args.activation]) if args.cfg is not None
                 else um.load_checkpoint(args.weights, ultra))
        um.detect_layer(model, ultra)
        ym.check_dpu_activations(model)
        um.use_channel_slices(model, ultra)
        um.use_raw_heads(model, ultra, args.split_heads)
        return model, ultra
    yolo = ym.yolov5_modules(args.yolov5_dir)
    if args.cfg is not None:
        model = ym.build_model(args.cfg, yolo, nc=args.nc, activation=ym.ACTIVATIONS[args.activation])
    else:
        model = ym.load_checkpoint(args.weights, yolo)
    ym.check_dpu_activations(model)
    ym.use_raw_heads(model, yolo)
    return model, yolo


def prepared_meta(model, modules, args: argparse.Namespace, hw: tuple[int, int]):
    """The metadata of a model ``load_dpu_model`` gave, by its family."""
    activation = ym.model_activation(model)
    if args.family == "yolov8":
        return um.model_meta(model, modules, hw, class_names(args), activation=activation, split=args.split_heads)
    return ym.model_meta(model, modules, hw, class_names(args), activation=activation)


def output_names(model, modules, args: argparse.Namespace) -> list[str] | None:
    """The raw outputs' names for the ONNX export (None: the YOLOv5 default, one per stride)."""
    return um.output_names(model, modules, args.split_heads) if args.family == "yolov8" else None


def training_yaml(args: argparse.Namespace) -> dict:
    """The model yaml to train: --cfg with the DPU's activation under the key the trainer reads."""
    activation = ym.ACTIVATIONS[args.activation]
    if args.family == "yolov8":
        return um.training_yaml(args.cfg, um.ultralytics_modules(), args.nc, activation)
    d = ym.load_model_yaml(args.cfg)
    d.pop("act", None)
    d["activation"] = activation
    if args.nc is not None:
        d["nc"] = args.nc
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("--out-meta", type=Path, required=True, help="metadata YAML to write")
    parser.add_argument("--out-cfg", type=Path, help="with --cfg: the ReLU training yaml to write")
    args = parser.parse_args(argv)
    hw = input_hw(args)
    model, modules = load_dpu_model(args)
    meta = prepared_meta(model, modules, args, hw)
    save_meta(meta, args.out_meta)
    print(f"checked: {meta.activation} only, no SiLU/Hardswish/Sigmoid; Detect returns {len(meta.strides)} raw heads "
          f"{[list(s) for s in meta.head_shapes]} (NHWC)")
    print(f"wrote {args.out_meta}: input {hw}, strides {list(meta.strides)}, {meta.num_classes} classes")
    if args.cfg is not None and args.out_cfg is not None:
        d = training_yaml(args)
        args.out_cfg.write_text(yaml.safe_dump(d, sort_keys=False))
        trainer = "Ultralytics" if args.family == "yolov8" else "YOLOv5"
        print(f"wrote {args.out_cfg}: train it with {trainer} (activation: {d['activation']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
