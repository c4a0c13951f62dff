"""Generated raw YOLO heads (int8 NHWC) for post-processing tests: noise, and realistic object clusters.

Boxes are encoded by inverting each family's decode (YOLOv5, YOLOv3, YOLOX), so a cluster decodes to
the object it was made for, as a trained model's heads do."""

from __future__ import annotations

import math

import numpy as np

from yolov5_dpu_ros.core.model_meta import ModelMeta


def quantize(logits: np.ndarray, fix_point: int) -> np.ndarray:
    return np.clip(np.rint(logits * 2.0**fix_point), -128, 127).astype(np.int8)


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def encode_box(family: str, cx: float, cy: float, bw: float, bh: float, gx: int, gy: int, stride: float,
               anchor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Raw logits (tx, ty, tw, th) that decode to about (cx, cy, bw, bh) from cell (gx, gy), with noise."""
    ox, oy = cx / stride - gx, cy / stride - gy  # the centre's offset from the cell, in cells
    if family == "yolox":
        return np.array([ox, oy, math.log(bw / stride), math.log(bh / stride)]) + rng.normal(0, 0.02, 4)
    if family == "yolov3":
        sxy = np.clip(np.array([ox, oy]) + rng.normal(0, 0.02, 2), 0.01, 0.99)
        return np.concatenate((_logit(sxy), np.log([bw / anchor[0], bh / anchor[1]]) + rng.normal(0, 0.02, 2)))
    # YOLOv5: xy = (2s - 0.5 + g) * stride, wh = (2s)^2 * anchor
    sxy = np.clip((np.array([ox, oy]) + 0.5) / 2 + rng.normal(0, 0.02, 2), 0.01, 0.99)
    swh = np.clip(np.sqrt([bw / anchor[0], bh / anchor[1]]) / 2 * rng.uniform(0.95, 1.05, 2), 0.01, 0.99)
    return _logit(np.concatenate((sxy, swh)))


def background(meta: ModelMeta, rng: np.random.Generator, obj_mean: float = -9.0) -> list[np.ndarray]:
    """Float logits of an empty scene: low objectness, random boxes and classes."""
    heads = []
    for shape in meta.head_shapes:
        h = rng.normal(0.0, 1.5, shape).astype(np.float32)
        h.reshape(-1, 5 + meta.num_classes)[:, 4] = rng.normal(obj_mean, 1.0, shape[1] * shape[2] * meta.num_anchors)
        heads.append(h)
    return heads


def random_heads(meta: ModelMeta, rng: np.random.Generator, fix_points, obj_mean: float = -3.0):
    """Unstructured noise heads with objectness high enough that many anchors pass a low threshold."""
    return [quantize(h, fp) for h, fp in zip(background(meta, rng, obj_mean), fix_points)]


def clustered_heads(meta: ModelMeta, rng: np.random.Generator, fix_points, n_objects: int,
                    border: bool = False):
    """Heads as a trained model gives them: each object lights up its cell (and, but for YOLOv3, the
    neighbouring cells) and anchors of one level with consistent boxes, one dominant class and noise.
    ``border`` puts objects at the image edges. int8 heads with ``fix_points``; float32 logits with
    ``fix_points=None`` (no exact score ties)."""
    heads = background(meta, rng)
    na, no = meta.num_anchors, 5 + meta.num_classes
    anchors = meta.anchors_array()
    height, width = meta.input_hw
    for _ in range(n_objects):
        level = int(rng.integers(len(meta.strides)))
        stride = meta.strides[level]
        _, gh, gw, _ = meta.head_shape(level)
        a = int(rng.integers(na))
        bw, bh = anchors[level, a] * rng.uniform(0.6, 1.8, 2)
        if border:
            cx = rng.choice([rng.uniform(0, bw / 3), rng.uniform(width - bw / 3, width)])
            cy = rng.uniform(0, height)
        else:
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        cls = int(rng.integers(meta.num_classes))
        view = heads[level].reshape(gh, gw, na, no)
        gx0, gy0 = int(min(cx // stride, gw - 1)), int(min(cy // stride, gh - 1))
        reach = (0,) if meta.family == "yolov3" else (-1, 0, 1)  # YOLOv3 trains only the centre's cell
        for dy in reach:
            for dx in reach:
                gx, gy = gx0 + dx, gy0 + dy
                if not (0 <= gx < gw and 0 <= gy < gh):
                    continue
                for aa in range(na):
                    if aa != a and rng.random() < 0.7:
                        continue
                    obj = 0.95 - 0.25 * (abs(dx) + abs(dy)) + rng.normal(0, 0.05)
                    row = view[gy, gx, aa]
                    row[0:4] = encode_box(meta.family, cx, cy, bw, bh, gx, gy, stride, anchors[level, aa], rng)
                    row[4] = _logit(obj)
                    row[5:] = rng.normal(-6, 1.0, meta.num_classes)
                    row[5 + cls] = _logit(rng.uniform(0.6, 0.98))
    return heads if fix_points is None else [quantize(h, fp) for h, fp in zip(heads, fix_points)]
