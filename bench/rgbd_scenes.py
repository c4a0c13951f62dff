"""Generated RGB-D scenes with known geometry, for the depth fusion's accuracy (bench_depth.py, test/test_depth.py).

Demo shapes stand at known 3D positions (0.8 to 4 m, boxes apart) in front of a slanted wall (5 to 7 m) seen by
a pinhole camera (1280x720 colour, fx = fy = 900). The depth image is aligned to the colour image, optionally at another
resolution (same field of view), with 1 % noise and 5 % holes (0), stored as 16UC1 millimetres or 32FC1
metres. Thin objects (rings) fill about 30 % of their box. The 2D boxes are the true ones, jittered by up to
3 % of their size as a detector's would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from demo.shapes import NAMES, _draw
from yolov5_dpu_ros.core.depth import Intrinsics

COLOUR_WH = (1280, 720)
K = (900.0, 0.0, 640.0, 0.0, 900.0, 360.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Scene:
    """One scene: the depth message's fields, the colour size, the detections' boxes and the truth."""

    encoding: str
    depth_data: bytes
    depth_wh: tuple[int, int]
    step: int
    boxes: np.ndarray  # (N, 4) colour pixels
    truth: np.ndarray  # (N, 3) metres, optical frame: the front surface at the box centre's ray
    thin: np.ndarray  # (N,) bool


def render(seed: int, encoding: str = "16UC1", depth_wh: tuple[int, int] = COLOUR_WH, objects: int = 8,
           thin_share: float = 0.25) -> Scene:
    rng = np.random.default_rng(seed)
    intr = Intrinsics.from_k(K)
    w, h = COLOUR_WH
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    depth = 5.0 + 2.0 * xs / w  # a slanted wall behind everything
    boxes, truth, thin = [], [], []
    taken = np.zeros((h, w), bool)  # objects do not hide each other: each box sees its object or the wall
    for _ in range(objects * 20):
        if len(boxes) == objects:
            break
        z = rng.uniform(0.8, 4.0)
        r_m = rng.uniform(0.12, 0.3)
        r_px = r_m * intr.fx / z
        u, v = rng.uniform(r_px, w - r_px), rng.uniform(r_px, h - r_px)
        area = (slice(int(v - r_px), int(v + r_px) + 1), slice(int(u - r_px), int(u + r_px) + 1))
        if r_px < 4 or taken[area].any():
            continue
        taken[area] = True
        mask = np.zeros((h, w), np.uint8)
        is_thin = rng.random() < thin_share
        if is_thin:  # a ring: about 30 % of its box
            cv2.circle(mask, (int(u), int(v)), int(r_px * 0.9), 255, max(2, int(r_px * 0.18)))
            box = np.array([u - r_px * 0.9, v - r_px * 0.9, u + r_px * 0.9, v + r_px * 0.9])
        else:
            kind = NAMES[int(rng.integers(len(NAMES)))]
            box = _draw(np.zeros((h, w, 3), np.uint8), mask, kind, u, v, r_px, rng.uniform(0, np.pi), (255,) * 3,
                        None)
        depth[mask > 0] = z
        size = box[2:] - box[:2]
        boxes.append(box + rng.uniform(-0.03, 0.03, 4) * np.r_[size, size])
        centre = (box[:2] + box[2:]) / 2
        truth.append(((centre[0] - intr.cx) * z / intr.fx, (centre[1] - intr.cy) * z / intr.fy, z))
        thin.append(is_thin)
    depth *= 1 + rng.normal(0, 0.01, depth.shape)
    depth[rng.random(depth.shape) < 0.05] = 0.0
    if depth_wh != COLOUR_WH:
        depth = cv2.resize(depth, depth_wh, interpolation=cv2.INTER_NEAREST)
    stored = (np.round(depth * 1000).astype("<u2") if encoding == "16UC1" else depth.astype("<f4"))
    return Scene(encoding, stored.tobytes(), depth_wh, stored.strides[0], np.array(boxes), np.array(truth),
                 np.array(thin))
