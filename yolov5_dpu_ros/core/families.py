"""Model families: everything that differs between YOLOv5, YOLOv3, YOLOX and YOLOv8, in one entry per family.

A family fixes how its models were fed in training (``InputContract``), the layout of a raw head row (box
channels, whether an objectness channel follows, then the class logits), how the box channels become a box
(``boxes``) and its anchor rules; the metadata names the family, pre-processing, post-processing and the
metadata checks look it up here. Adding a family is one new ``ModelFamily`` plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MAX_EXP = 20.0  # exp() argument cap for box sizes: e**20 pixels is no box, and it keeps float32 finite

BoxDecoder = Callable[[np.ndarray, np.ndarray, np.ndarray, "float | np.ndarray"], np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32."""
    return 1.0 / (1.0 + np.exp(-x, dtype=np.float32))


@dataclass(frozen=True)
class InputContract:
    """How a model family was fed in training: channel order, pixel scale, letterbox padding and placement."""

    rgb: bool  # channel order RGB (else BGR)
    scale: float  # model input = pixel * scale
    pad: int  # letterbox padding value
    centred: bool  # image in the middle (else at the top-left, padding at the bottom/right)
    truncate: bool  # resized size int(side * gain) (else rounded, and centred with YOLOv5's -0.1)


def yolov5_boxes(t: np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray, stride) -> np.ndarray:
    """YOLOv5 v6/v7 ``Detect``: xy = (2 sigmoid(t) - 0.5 + grid) * stride, wh = (2 sigmoid(t))^2 * anchor."""
    p = sigmoid(t)
    return np.concatenate(((p[:, 0:2] * 2.0 - 0.5 + grid_xy) * stride, (p[:, 2:4] * 2.0) ** 2 * anchor_wh), axis=1)


def yolov3_boxes(t: np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray, stride) -> np.ndarray:
    """YOLOv3 (DPU-PYNQ's notebook): xy = (sigmoid(t) + grid) * stride, wh = exp(t) * anchor."""
    return np.concatenate(((sigmoid(t[:, 0:2]) + grid_xy) * stride,
                           np.exp(np.minimum(t[:, 2:4], MAX_EXP)) * anchor_wh), axis=1)


def yolox_boxes(t: np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray, stride) -> np.ndarray:
    """YOLOX (anchor-free): xy = (t + grid) * stride, wh = exp(t) * stride."""
    return np.concatenate(((t[:, 0:2] + grid_xy) * stride, np.exp(np.minimum(t[:, 2:4], MAX_EXP)) * stride), axis=1)


def yolov8_boxes(t: np.ndarray, grid_xy: np.ndarray, anchor_wh: np.ndarray, stride) -> np.ndarray:
    """YOLOv8 (anchor-free, DFL): per box side a softmax over reg_max bins and its expectation, the distances
    (left, top, right, bottom) around the cell centre (grid + 0.5), all × stride; ``t`` holds 4 × reg_max logits
    side by side (left's bins first)."""
    n, reg_max = len(t), t.shape[1] // 4
    bins = t.reshape(n, 4, reg_max)
    e = np.exp(bins - bins.max(axis=2, keepdims=True))
    ltrb = (e @ np.arange(reg_max, dtype=np.float32)) / e.sum(axis=2)
    centre = grid_xy + 0.5 + (ltrb[:, 2:4] - ltrb[:, 0:2]) / 2
    return np.concatenate((centre * stride, (ltrb[:, 0:2] + ltrb[:, 2:4]) * stride), axis=1)


@dataclass(frozen=True)
class ModelFamily:
    """One family: its input contract, its box decode and whether it is anchor-free (then the metadata may
    leave out anchors and each stride has one cell-sized prior)."""

    name: str
    contract: InputContract
    boxes: BoxDecoder
    anchor_free: bool = False
    objectness: bool = True  # a row is [box, objectness, classes]; without, [box, classes] scored by class alone
    dfl: bool = False  # the box is 4 x reg_max distribution logits (else 4 numbers)

    def box_channels(self, reg_max: int) -> int:
        """Channels of a row's box part."""
        return 4 * reg_max if self.dfl else 4

    def row_channels(self, num_classes: int, reg_max: int) -> int:
        """Channels of one anchor's row: box, objectness where the family has it, classes."""
        return self.box_channels(reg_max) + int(self.objectness) + num_classes

    def default_anchors(self, strides: tuple[int, ...]) -> tuple[tuple[tuple[float, float], ...], ...] | None:
        """The anchors an anchor-free family implies (None: the metadata must give them)."""
        return tuple(((float(s), float(s)),) for s in strides) if self.anchor_free else None

    def anchor_problem(self, anchors: tuple[tuple[tuple[float, float], ...], ...]) -> str | None:
        """What is wrong with the metadata's anchors for this family, if anything."""
        if self.anchor_free and any(len(level) != 1 for level in anchors):
            return f"a {self.name} model is anchor-free: give no anchors (or one per stride)"
        return None


FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    ModelFamily("yolov5", InputContract(rgb=True, scale=1 / 255, pad=114, centred=True, truncate=False),
                yolov5_boxes),
    ModelFamily("yolov3", InputContract(rgb=True, scale=1 / 255, pad=128, centred=True, truncate=True),
                yolov3_boxes),
    ModelFamily("yolox", InputContract(rgb=False, scale=1.0, pad=114, centred=False, truncate=True),
                yolox_boxes, anchor_free=True),
    ModelFamily("yolov8", InputContract(rgb=True, scale=1 / 255, pad=114, centred=True, truncate=False),
                yolov8_boxes, anchor_free=True, objectness=False, dfl=True),
)}
DEFAULT_FAMILY = "yolov5"


def family(name: str) -> ModelFamily:
    """The family of that name; ValueError lists the known ones."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"'family' must be one of {list(FAMILIES)}, got {name!r}") from None
