"""Model metadata: the facts about a detection model that its compiled graph does not carry.

One YAML file sits beside the model (xmodel or ONNX)::

    family: yolov5                  # optional: yolov5 (default), yolov3, yolox or yolov8; fixes the
                                    # pre-processing contract, the head layout and the box decode
    input_size: [640, 640]          # height, width of the fixed model input
    strides: [8, 16, 32]            # one per output head
    anchors:                        # pixels, w,h pairs, one row per stride (yolox: optional, one per cell)
      - [10, 13, 16, 30, 33, 23]
      - [30, 61, 62, 45, 59, 119]
      - [116, 90, 156, 198, 373, 326]
    names: [person, bicycle, ...]   # or {0: person, 1: bicycle, ...}
    input_fix_point: 6              # int8 input = round(pixel / 255 * 2**input_fix_point)
    output_fix_points: [3, 3, 4]    # optional, one per output head: float = int8 * 2**-fix_point
    activation: relu                # optional, recorded by model_prep: relu or leakyrelu (slope 26/256)
    reg_max: 16                     # yolov8 only (default 16): distribution bins per box side
    split_heads: false              # yolov8 only: two outputs per stride, box bins then class logits, each with
                                    # its own fix point (output_fix_points: box, classes of stride 8, then 16, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from yolov5_dpu_ros.core.families import DEFAULT_FAMILY, family

FIX_POINT_RANGE = range(-16, 17)
DEFAULT_REG_MAX = 16
MAX_REG_MAX = 64
BOX_NAMES = ("cv2", "box")  # what an output's name holds when it is a YOLOv8 head's box part (Ultralytics' module,
CLASS_NAMES = ("cv3", "cls")  # kept in exported and compiled tensor names) or its class part
MAX_INPUT_SIDE = 8192
ACTIVATIONS = ("relu", "leakyrelu")


@dataclass(frozen=True)
class ModelMeta:
    """Validated metadata of one YOLO detection model (YOLOv5, YOLOv3, YOLOX or YOLOv8)."""

    input_hw: tuple[int, int]
    strides: tuple[int, ...]
    anchors_px: tuple[tuple[tuple[float, float], ...], ...]
    names: tuple[str, ...]
    input_fix_point: int
    output_fix_points: tuple[int, ...] | None = None
    activation: str | None = None
    family: str = DEFAULT_FAMILY
    reg_max: int = DEFAULT_REG_MAX  # distribution bins per box side, for a family with a DFL head
    split_heads: bool = False  # two outputs per stride (box, classes), for a family without objectness

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_anchors(self) -> int:
        return len(self.anchors_px[0])

    @property
    def channels_per_head(self) -> int:
        """Channels of each raw head: anchors x (box + objectness, where the family has it, + classes)."""
        return self.num_anchors * family(self.family).row_channels(self.num_classes, self.reg_max)

    @property
    def parts(self) -> tuple[int, ...]:
        """Channels of each output of one stride: the whole row, or (box, classes) with split heads."""
        fam = family(self.family)
        if self.split_heads:
            return (self.num_anchors * fam.box_channels(self.reg_max), self.num_anchors * self.num_classes)
        return (self.channels_per_head,)

    def head_shape(self, level: int) -> tuple[int, int, int, int]:
        """NHWC shape of the raw output of one stride level (its whole row)."""
        s = self.strides[level]
        return (1, self.input_hw[0] // s, self.input_hw[1] // s, self.channels_per_head)

    @property
    def head_shapes(self) -> tuple[tuple[int, int, int, int], ...]:
        """NHWC shapes of every output head, in head order: by stride, and within a stride box before classes."""
        return tuple((1, self.input_hw[0] // s, self.input_hw[1] // s, c) for s in self.strides for c in self.parts)

    def head_level(self, head: int) -> int:
        """The stride level of an output head (an index into ``head_shapes``)."""
        return head // len(self.parts)

    def anchors_array(self) -> np.ndarray:
        """Anchors in pixels as a (levels, anchors, 2) float32 array."""
        return np.asarray(self.anchors_px, dtype=np.float32)

    def with_fix_points(self, input_fix_point: int, output_fix_points: Sequence[int] | None) -> ModelMeta:
        """A copy with other fix points (read from a compiled model, or calibrated)."""
        return replace(
            self,
            input_fix_point=int(input_fix_point),
            output_fix_points=None if output_fix_points is None else tuple(int(f) for f in output_fix_points),
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML form; `meta_from_dict(meta.to_dict())` gives the same metadata back."""
        d: dict[str, Any] = {"family": self.family} if self.family != DEFAULT_FAMILY else {}
        d.update(input_size=list(self.input_hw), strides=list(self.strides))
        if not family(self.family).anchor_free:  # its one cell-sized prior per stride goes without saying
            d["anchors"] = [[float(v) for wh in level for v in wh] for level in self.anchors_px]
        d.update(names=list(self.names), input_fix_point=self.input_fix_point)
        if self.output_fix_points is not None:
            d["output_fix_points"] = list(self.output_fix_points)
        if self.activation is not None:
            d["activation"] = self.activation
        if family(self.family).dfl:
            d["reg_max"] = self.reg_max
        if self.split_heads:
            d["split_heads"] = True
        return d


def _int_list(value: Any, key: str, errors: list[str]) -> list[int] | None:
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        errors.append(f"'{key}' must be a non-empty list of integers, got {value!r}")
        return None
    return list(value)


def _names(value: Any, errors: list[str]) -> tuple[str, ...] | None:
    if isinstance(value, dict):
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in value):
            errors.append(f"'names' as a mapping needs integer keys 0..N-1, got keys {list(value)}")
            return None
        keys = sorted(value)
        if keys != list(range(len(keys))):
            errors.append(f"'names' as a mapping must have keys 0..N-1 without gaps, got keys {keys}")
            return None
        value = [value[k] for k in keys]
    if not isinstance(value, (list, tuple)) or not value:
        errors.append(f"'names' must be a non-empty list of class names, got {value!r}")
        return None
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        errors.append(f"'names' must be class names (strings), got {[v for v in value if not isinstance(v, str)]}")
        return None
    return tuple(str(v) for v in value)


def _flatten(row: Any) -> list:
    """A row of numbers or of [w, h] pairs as one flat list (other shapes come out as they are)."""
    if not isinstance(row, (list, tuple)):
        return [row]
    return [v for item in row for v in (item if isinstance(item, (list, tuple)) else [item])]


def _anchors(value: Any, errors: list[str]) -> tuple[tuple[tuple[float, float], ...], ...] | None:
    if not isinstance(value, (list, tuple)) or not value:
        errors.append(f"'anchors' must be a list with one row of w,h pixel pairs per stride, got {value!r}")
        return None
    levels = []
    for i, row in enumerate(value):
        flat = _flatten(row)
        if not flat or len(flat) % 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in flat):
            errors.append(f"anchors row {i} must hold positive, finite w,h pixel pairs, got {row!r}")
            return None
        levels.append(tuple((float(flat[j]), float(flat[j + 1])) for j in range(0, len(flat), 2)))
    counts = {len(level) for level in levels}
    if len(counts) != 1:
        errors.append(f"every anchors row needs the same number of anchors, got {[len(lv) for lv in levels]}")
        return None
    return tuple(levels)


def _fix_point(value: Any, key: str, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in FIX_POINT_RANGE:
        errors.append(f"'{key}' must be an integer in [-16, 16], got {value!r}")
        return None
    return value


def meta_from_dict(d: Any, source: str = "model metadata") -> ModelMeta:
    """Validate a metadata mapping; one ValueError names every problem found."""
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a YAML mapping with input_size, strides, anchors, names")
    errors: list[str] = []
    try:
        fam = family(d.get("family", DEFAULT_FAMILY))
    except ValueError as e:
        errors.append(str(e))
        fam = family(DEFAULT_FAMILY)
    required = ("input_size", "strides", "names", "input_fix_point") + (() if fam.anchor_free else ("anchors",))
    missing = [k for k in required if k not in d]
    if missing:
        errors.append(f"missing keys {missing}")
    size = _int_list(d.get("input_size"), "input_size", errors) if "input_size" in d else None
    strides = _int_list(d.get("strides"), "strides", errors) if "strides" in d else None
    anchors = _anchors(d.get("anchors"), errors) if "anchors" in d else None
    if "anchors" not in d and strides is not None:
        anchors = fam.default_anchors(tuple(strides))
    problem = None if anchors is None else fam.anchor_problem(anchors)
    if problem:
        errors.append(problem)
    names = _names(d.get("names"), errors) if "names" in d else None
    in_fp = _fix_point(d.get("input_fix_point"), "input_fix_point", errors) if "input_fix_point" in d else None
    out_fps = None
    if d.get("output_fix_points") is not None:
        out_fps = _int_list(d["output_fix_points"], "output_fix_points", errors)
        for fp in out_fps or []:
            _fix_point(fp, "output_fix_points[]", errors)

    if size is not None and (len(size) != 2 or min(size) < 1 or max(size) > MAX_INPUT_SIDE):
        errors.append(f"'input_size' must be [height, width], each 1..{MAX_INPUT_SIDE}, got {size}")
        size = None
    if strides is not None:
        if min(strides) < 1 or len(set(strides)) != len(strides):
            errors.append(f"'strides' must be distinct positive integers, got {strides}")
            strides = None
        elif size is not None and any(v % s for v in size for s in strides):
            errors.append(f"input_size {size} must be divisible by every stride {strides}")
    if strides is not None and anchors is not None and len(anchors) != len(strides):
        errors.append(f"{len(anchors)} anchor rows for {len(strides)} strides: give one row per stride")
    split = d.get("split_heads", False)
    if not isinstance(split, bool):
        errors.append(f"'split_heads' must be true or false, got {split!r}")
        split = False
    elif split and fam.objectness:
        errors.append(f"'split_heads' is for a family without objectness (yolov8), not {fam.name}")
    heads = None if strides is None else len(strides) * (2 if split else 1)
    if heads is not None and out_fps is not None and len(out_fps) != heads:
        errors.append(f"{len(out_fps)} output_fix_points for {heads} output heads: give one per head"
                      + (" (box, then classes, of each stride)" if split else " (one per stride)"))
    activation = d.get("activation")
    if activation is not None and activation not in ACTIVATIONS:
        errors.append(f"'activation' must be one of {list(ACTIVATIONS)}, got {activation!r}")
    reg_max = d.get("reg_max", DEFAULT_REG_MAX)
    if "reg_max" in d and not fam.dfl:
        errors.append(f"'reg_max' is for a family with a DFL head (yolov8), not {fam.name}")
    elif isinstance(reg_max, bool) or not isinstance(reg_max, int) or not 1 <= reg_max <= MAX_REG_MAX:
        errors.append(f"'reg_max' must be an integer in [1, {MAX_REG_MAX}], got {reg_max!r}")
    nc = d.get("nc")
    if nc is not None and names is not None and nc != len(names):
        errors.append(f"'nc' is {nc} but 'names' lists {len(names)} classes")
    if errors or size is None or strides is None or anchors is None or names is None or in_fp is None:
        raise ValueError(f"{source}: " + "; ".join(errors))
    return ModelMeta(
        input_hw=(size[0], size[1]),
        strides=tuple(strides),
        anchors_px=anchors,
        names=names,
        input_fix_point=in_fp,
        output_fix_points=None if out_fps is None else tuple(out_fps),
        activation=activation,
        family=fam.name,
        reg_max=reg_max,
        split_heads=split,
    )


MAX_META_BYTES = 1 << 20


def load_meta(path: str | Path) -> ModelMeta:
    """Read and validate a metadata YAML file; every problem is a ValueError naming the file (and field)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model metadata file not found: {path} (give the .yaml written by model_prep)")
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_META_BYTES:
            raise ValueError(f"{len(raw)} bytes")
        d = yaml.safe_load(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not a metadata YAML file ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                         "give the .yaml written by model_prep") from e
    return meta_from_dict(d, str(path))


def save_meta(meta: ModelMeta, path: str | Path) -> None:
    """Write metadata as YAML, whole or not at all (a temporary file renamed over the target)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(yaml.safe_dump(meta.to_dict(), sort_keys=False, default_flow_style=None))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _row_text(meta: ModelMeta) -> str:
    fam = family(meta.family)
    box = f"4 x {meta.reg_max} box bins" if fam.dfl else "4 box"
    if meta.split_heads:
        return f"{box}, and {meta.num_classes} classes in an output of their own"
    return f"{box}{' + 1 objectness' if fam.objectness else ''} + {meta.num_classes} classes"


def match_heads(shapes: Sequence[Sequence[int]], meta: ModelMeta, names: Sequence[str] | None = None
                ) -> tuple[int, ...]:
    """The head (index into ``meta.head_shapes``) of each output, found by its NHWC shape; outputs may come in any
    order. Where a stride's box and class outputs have the same shape (YOLOv8 with 64 classes and reg_max 16),
    their names decide (``BOX_NAMES`` / ``CLASS_NAMES``), never their position."""
    expected = meta.head_shapes
    if len(shapes) != len(expected):
        raise ValueError(
            f"the model has {len(shapes)} outputs but the metadata describes {len(expected)} heads "
            f"(strides {list(meta.strides)}): use the metadata written for this model"
        )
    heads: list[int] = []
    for i, shape in enumerate(shapes):
        shape = tuple(int(v) for v in shape)
        candidates = [h for h, s in enumerate(expected) if s == shape and h not in heads]
        if len(candidates) > 1:
            name = (names[i] if names is not None else "").lower()
            role = 0 if any(n in name for n in BOX_NAMES) else 1 if any(n in name for n in CLASS_NAMES) else None
            if role is None:
                raise ValueError(
                    f"model output {names[i] if names is not None else i} of shape {shape} may be a box or a class "
                    f"output ({meta.num_classes} classes = 4 x {meta.reg_max} box bins): its name must hold "
                    f"{' or '.join(BOX_NAMES)} (box) or {' or '.join(CLASS_NAMES)} (classes); export with model_prep"
                )
            candidates = [h for h in candidates if h % len(meta.parts) == role]
        if not candidates:
            raise ValueError(
                f"model output of shape {shape} matches no head the metadata expects "
                f"{list(expected)} (NHWC: input {meta.input_hw} / stride, {meta.num_anchors} anchors x "
                f"({_row_text(meta)})): the metadata does not belong to this model"
            )
        heads.append(candidates[0])
    return tuple(heads)
