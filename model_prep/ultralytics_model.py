"""Ultralytics YOLOv8 models made DPU-ready: ReLU or LeakyReLU(26/256) through the yaml's ``activation:`` key, a
Detect that returns each stride's raw box and class convs (the DFL, dist2bbox and the concatenation across strides
move to the board's CPU), and their metadata.

Host-side only (imports torch and Ultralytics, AGPL-3.0: used, not copied). Facts used, from Ultralytics 8.x:
``parse_model`` reads ``activation:`` from the model yaml and sets it on ``Conv``; ``Detect`` holds ``cv2`` (box
branch, 4 × reg_max channels), ``cv3`` (class branch), ``stride``, ``reg_max`` and ``nc``; YOLO11's ``C3k2`` /
``C2PSA`` blocks hold attention (matmul and softmax), which the DPU does not run.
"""

from __future__ import annotations

import types
from pathlib import Path

from model_prep.yolov5_model import _torch, checkpoint_load_options
from yolov5_dpu_ros.core.model_meta import ModelMeta, meta_from_dict

ATTENTION = ("C2PSA", "PSABlock", "Attention", "A2C2f", "AAttn", "ABlock")  # YOLO11 / YOLO12 blocks


def ultralytics_modules() -> types.SimpleNamespace:
    """Ultralytics' DetectionModel, Detect and yaml loader; exits saying how to install it."""
    try:
        from ultralytics.nn.modules.block import C2f
        from ultralytics.nn.modules.head import Detect
        from ultralytics.nn.tasks import DetectionModel, yaml_model_load
    except ImportError as e:
        raise SystemExit(f"--family yolov8 needs Ultralytics (pip install ultralytics): {e}") from e
    return types.SimpleNamespace(DetectionModel=DetectionModel, Detect=Detect, C2f=C2f,
                                 yaml_model_load=yaml_model_load)


def build_model(cfg: str | Path, ultra: types.SimpleNamespace, nc: int | None, activation: str):
    """A model built from an Ultralytics yaml (a file, or a packaged name such as yolov8n.yaml) with the DPU's
    activation, random init."""
    d = ultra.yaml_model_load(str(cfg))
    d["activation"] = activation
    if nc is not None:
        d["nc"] = nc
    return ultra.DetectionModel(d, verbose=False).eval()


def training_yaml(cfg: str | Path, ultra: types.SimpleNamespace, nc: int | None, activation: str) -> dict:
    """The model yaml to train with Ultralytics: the DPU's activation under ``activation:`` and only the chosen
    scale left in ``scales`` (Ultralytics guesses the scale from the file name and else takes the first one)."""
    d = ultra.yaml_model_load(str(cfg))
    scale = d.pop("scale", "") or next(iter(d.get("scales") or {}), "")
    d.pop("yaml_file", None)
    if d.get("scales"):
        d["scales"] = {scale: d["scales"][scale]}
    d["activation"] = activation
    if nc is not None:
        d["nc"] = nc
    return d


def load_checkpoint(path: str | Path, ultra: types.SimpleNamespace):
    """An Ultralytics training checkpoint (``ema`` or ``model``) as a float eval model."""
    torch = _torch()
    ckpt = torch.load(path, map_location="cpu", **checkpoint_load_options(torch.__version__))
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    if model is None:
        raise SystemExit(f"{path}: not an Ultralytics training checkpoint (no 'ema' or 'model')")
    return model.float().eval()


def detect_layer(model, ultra: types.SimpleNamespace):
    """The model's Detect head; refuses attention blocks and heads that are not plain detection."""
    kinds = sorted({type(m).__name__ for m in model.modules()} & set(ATTENTION))
    if kinds:
        raise SystemExit(f"the model holds attention blocks ({', '.join(kinds)}: YOLO11/YOLO12): their matmul and "
                         "softmax are no DPU operations, so Vitis AI 2.5 splits the graph into several DPU subgraphs "
                         "and pynq-dpu runs one; use a YOLOv8 model (C2f blocks)")
    head = model.model[-1]
    if type(head) is not ultra.Detect:
        raise SystemExit(f"the model's head is {type(head).__name__}, not a plain Detect: only detection models run")
    return head


def use_channel_slices(model, ultra: types.SimpleNamespace) -> int:
    """Make every C2f block halve its first conv's output with two fixed channel slices instead of ``chunk``: the
    Vitis AI quantizer lists ``chunk`` among the operators it cannot deploy (``MULTIPLE_OUTPUTS_OPS`` in
    nndct_shared), and traced it computes its split point from the tensor's shape (Shape, Gather, Div), arithmetic
    that Vitis AI leaves on the CPU. Same numbers; returns the blocks changed."""
    torch = _torch()

    def sliced_forward(self, x):
        t = self.cv1(x)
        y = [t[:, : self.c], t[:, self.c :]]
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))

    blocks = [m for m in model.modules() if type(m) is ultra.C2f]
    for block in blocks:
        block.forward = types.MethodType(sliced_forward, block)
    return len(blocks)


def use_raw_heads(model, ultra: types.SimpleNamespace, split: bool = False) -> None:
    """Make Detect return each stride's raw conv outputs: box bins and class logits concatenated, or (``split``)
    as two outputs with their own fix points."""
    torch, head = _torch(), detect_layer(model, ultra)

    def raw_forward(self, x):
        parts = [(self.cv2[i](x[i]), self.cv3[i](x[i])) for i in range(self.nl)]
        return [t for pair in parts for t in pair] if split else [torch.cat(pair, 1) for pair in parts]

    head.forward = types.MethodType(raw_forward, head)


def output_names(model, ultra: types.SimpleNamespace, split: bool = False) -> list[str]:
    """The raw outputs' names: one per stride, or a box and a class output per stride (named so that they are
    told apart by name even where 64 classes give both the same shape)."""
    strides = [int(s) for s in detect_layer(model, ultra).stride.tolist()]
    return [f"p{s}_{part}" for s in strides for part in ("box", "cls")] if split else [f"p{s}" for s in strides]


def model_meta(model, ultra: types.SimpleNamespace, input_hw: tuple[int, int], names=None, input_fix_point: int = 7,
               activation: str | None = None, split: bool = False) -> ModelMeta:
    """Metadata read off the model's Detect layer: strides, reg_max, class names."""
    head = detect_layer(model, ultra)
    nc = int(head.nc)
    if names is None:
        names = [str(v) for v in dict(getattr(model, "names", None) or {}).values()] or [str(i) for i in range(nc)]
    if len(names) != nc:
        raise SystemExit(f"{len(names)} class names for a model of {nc} classes: give --names or --names-file")
    d = {"family": "yolov8", "input_size": list(input_hw), "strides": [int(s) for s in head.stride.tolist()],
         "names": names, "input_fix_point": input_fix_point, "reg_max": int(head.reg_max), "split_heads": split}
    if activation is not None:
        d["activation"] = activation
    return meta_from_dict(d, "the prepared YOLOv8 model")
