"""YOLOv5 models made DPU-ready: ReLU or LeakyReLU(26/256) activations, raw-head outputs, and their metadata.

Host-side only (imports torch and YOLOv5). Facts used, from ultralytics/yolov5 v6/v7:
``parse_model`` reads the activation from the yaml key ``activation:`` (``act:`` is ignored) and sets
it on the ``Conv`` class, so it leaks into every model built later in the process unless restored.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path
from typing import Any

import yaml

from yolov5_dpu_ros.core.model_meta import ModelMeta

FORBIDDEN_ACTIVATIONS = ("SiLU", "Hardswish", "Sigmoid", "Mish", "GELU")
DPU_LEAKY_SLOPE = 26 / 256  # the DPUCZDX8G's LeakyReLU slope (0.1015625); any other slope runs on the CPU
# the activations the DPU runs, as --activation names them and as the yaml's ``activation:`` key needs them
ACTIVATIONS = {"relu": "nn.ReLU()", "leakyrelu": f"nn.LeakyReLU({DPU_LEAKY_SLOPE})"}


def _torch():
    try:
        import torch
    except ImportError as e:
        raise SystemExit("this step needs PyTorch: pip install torch (or run inside the Vitis AI docker)") from e
    return torch


def yolov5_modules(yolov5_dir: str | Path | None = None) -> types.SimpleNamespace:
    """YOLOv5's Model, Detect and Conv, from a checkout (``yolov5_dir``) or the ``yolov5`` package."""
    if yolov5_dir is not None:
        root = Path(yolov5_dir).resolve()
        if not (root / "models" / "yolo.py").is_file():
            raise SystemExit(f"{root} is not an ultralytics/yolov5 checkout (no models/yolo.py)")
        sys.path.insert(0, str(root))
        prefix = ""
    else:
        prefix = "yolov5."
    import cv2

    saved = cv2.imread, cv2.imwrite, cv2.imshow  # YOLOv5's utils.general replaces them on import
    try:
        yolo = importlib.import_module(prefix + "models.yolo")
        common = importlib.import_module(prefix + "models.common")
    except ImportError as e:
        raise SystemExit(
            f"cannot import YOLOv5 ({e}): pip install yolov5==7.0.9, or pass --yolov5-dir to a checkout"
        ) from e
    finally:
        cv2.imread, cv2.imwrite, cv2.imshow = saved
    return types.SimpleNamespace(Model=yolo.Model, Detect=yolo.Detect, Conv=common.Conv,
                                 Bottleneck=common.Bottleneck, Concat=common.Concat)


def load_model_yaml(cfg: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A model yaml as a dict (a copy when given a dict)."""
    if isinstance(cfg, dict):
        return dict(cfg)
    path = Path(cfg)
    if not path.is_file():
        raise SystemExit(f"model yaml not found: {path}")
    return yaml.safe_load(path.read_text())


def build_model(cfg: str | Path | dict[str, Any], yolo: types.SimpleNamespace, nc: int | None = None,
                seed: int = 0, activation: str | None = "nn.ReLU()"):
    """Build a YOLOv5 model from its yaml with the activation YOLOv5 really reads (``activation:``).

    ``activation=None`` keeps what the yaml says (for checking a yaml as it is). YOLOv5 sets the
    activation on the Conv class; it is restored afterwards so later models are not affected.
    """
    torch = _torch()
    d = load_model_yaml(cfg)
    if activation is not None:
        if "act" in d:
            print(f"note: yaml key 'act: {d.pop('act')}' is ignored by YOLOv5; using 'activation: {activation}'",
                  file=sys.stderr)
        d["activation"] = activation
    if nc is not None:
        d["nc"] = nc
    saved = yolo.Conv.default_act
    torch.manual_seed(seed)
    try:
        model = yolo.Model(d)
    finally:
        yolo.Conv.default_act = saved
    return model.eval()


def checkpoint_load_options(torch_version: str) -> dict:
    """``torch.load`` options for a full training checkpoint: ``weights_only=False`` where torch knows the
    keyword (1.13 and newer, the Vitis AI 3.5 docker's 1.13.1 too; 2.6 made True the default), nothing on the Vitis
    AI 2.5 docker's torch 1.10."""
    major, minor = (int(re.match(r"\d+", part).group()) for part in torch_version.split(".")[:2])
    return {"weights_only": False} if (major, minor) >= (1, 13) else {}


def load_checkpoint(path: str | Path, yolo: types.SimpleNamespace):
    """A YOLOv5 training checkpoint (``ema`` or ``model``) as a float eval model."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", **checkpoint_load_options(torch.__version__))
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    if model is None or not hasattr(model, "model"):
        raise SystemExit(f"{path} holds no YOLOv5 model (expected a train.py checkpoint with 'model' or 'ema')")
    return model.float().eval()


def detect_layer(model, yolo: types.SimpleNamespace):
    """The model's Detect head."""
    head = model.model[-1]
    if not isinstance(head, yolo.Detect):
        raise SystemExit(f"the last layer is {type(head).__name__}, not YOLOv5 Detect")
    return head


def dpu_incompatible_modules(model) -> list[str]:
    """Names of modules the DPU cannot run (SiLU and friends, LeakyReLU of another slope), which would
    split the graph."""
    bad = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if kind in FORBIDDEN_ACTIVATIONS:
            bad.append(f"{name or '<model>'}: {kind}")
        elif kind == "LeakyReLU" and m.negative_slope != DPU_LEAKY_SLOPE:
            bad.append(f"{name or '<model>'}: LeakyReLU({m.negative_slope}), the DPU's slope is {DPU_LEAKY_SLOPE}")
    return bad


def model_activation(model) -> str:
    """Which DPU activation the model uses ('relu' or 'leakyrelu'); checked models have one kind."""
    kinds = {type(m).__name__ for m in model.modules()} & {"ReLU", "LeakyReLU"}
    if len(kinds) != 1:
        raise SystemExit(f"the model mixes or lacks DPU activations ({sorted(kinds) or 'none'}): "
                         "train it with one activation: " + " or ".join(ACTIVATIONS.values()))
    return "relu" if kinds == {"ReLU"} else "leakyrelu"


def check_dpu_activations(model) -> None:
    """Fail loudly when any activation the DPU cannot run remains."""
    bad = dpu_incompatible_modules(model)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SystemExit(
            f"{len(bad)} activations the KV260 DPU cannot run remain ({shown}): set 'activation: nn.ReLU()' "
            f"or 'activation: {ACTIVATIONS['leakyrelu']}' in the model yaml (not 'act:') and retrain"
        )


def use_raw_heads(model, yolo: types.SimpleNamespace) -> None:
    """Make Detect return the per-level raw conv outputs; decode becomes post-processing."""
    head = detect_layer(model, yolo)

    def raw_forward(self, x):
        return [self.m[i](x[i]) for i in range(self.nl)]

    head.forward = types.MethodType(raw_forward, head)


def model_meta(model, yolo: types.SimpleNamespace, input_hw: tuple[int, int], names=None,
               input_fix_point: int = 7, activation: str | None = None) -> ModelMeta:
    """Metadata read off the model's Detect layer: strides, anchors in pixels, class names."""
    head = detect_layer(model, yolo)
    strides = [int(s) for s in head.stride.tolist()]
    anchors = (head.anchors * head.stride.view(-1, 1, 1)).tolist()
    names = names if names is not None else getattr(model, "names", None)
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names or len(names) != head.nc:
        names = [f"class{i}" for i in range(head.nc)]
    return ModelMeta(
        input_hw=(int(input_hw[0]), int(input_hw[1])),
        strides=tuple(strides),
        anchors_px=tuple(tuple((float(w), float(h)) for w, h in level) for level in anchors),
        names=tuple(str(n) for n in names),
        input_fix_point=input_fix_point,
        activation=activation,
    )


def export_raw_onnx(model, input_hw: tuple[int, int], path: str | Path, names: list[str] | None = None,
                    opset: int = 13) -> list[str]:
    """Export the raw-head model to ONNX with a fixed 1x3xHxW float input; returns output names (default: one per
    stride, p8, p16, ...)."""
    torch = _torch()
    head = model.model[-1]
    names = names or [f"p{int(s)}" for s in head.stride.tolist()]
    dummy = torch.zeros(1, 3, *input_hw)
    with torch.no_grad():
        torch.onnx.export(model, dummy, str(path), input_names=["images"], output_names=names,
                          opset_version=opset, dynamo=False)
    return names
