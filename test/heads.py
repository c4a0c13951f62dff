"""Generated raw YOLOv5 heads (int8 NHWC) for post-processing tests: noise, and realistic object clusters."""

from __future__ import annotations

import math

import numpy as np

from yolov5_dpu_ros.model_meta import ModelMeta


def quantize(logits: np.ndarray, fix_point: int) -> np.ndarray:
    return np.clip(np.rint(logits * 2.0**fix_point), -128, 127).astype(np.int8)


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


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
    """Heads as a trained model gives them: each object lights up neighbouring cells and anchors of one
    level with consistent boxes, one dominant class and noise. ``border`` puts objects at the image edges."""
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
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                gx, gy = gx0 + dx, gy0 + dy
                if not (0 <= gx < gw and 0 <= gy < gh):
                    continue
                for aa in range(na):
                    if aa != a and rng.random() < 0.7:
                        continue
                    # invert the YOLOv5 decode: xy = (2s - 0.5 + g) * stride, wh = (2s)^2 * anchor
                    sx = np.clip((cx / stride - gx + 0.5) / 2 + rng.normal(0, 0.02), 0.01, 0.99)
                    sy = np.clip((cy / stride - gy + 0.5) / 2 + rng.normal(0, 0.02), 0.01, 0.99)
                    sw = np.clip(math.sqrt(bw / anchors[level, aa, 0]) / 2 * rng.uniform(0.95, 1.05), 0.01, 0.99)
                    sh = np.clip(math.sqrt(bh / anchors[level, aa, 1]) / 2 * rng.uniform(0.95, 1.05), 0.01, 0.99)
                    obj = 0.95 - 0.25 * (abs(dx) + abs(dy)) + rng.normal(0, 0.05)
                    row = view[gy, gx, aa]
                    row[0:4] = _logit(np.array([sx, sy, sw, sh]))
                    row[4] = _logit(obj)
                    row[5:] = rng.normal(-6, 1.0, meta.num_classes)
                    row[5 + cls] = _logit(rng.uniform(0.6, 0.98))
    return [quantize(h, fp) for h, fp in zip(heads, fix_points)]
