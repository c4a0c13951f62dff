"""Objects in space: each 2D detection as a 3D box in the camera's optical frame (REP 103: x right, y down,
z forward; metres), from a depth image aligned to the colour image and the pinhole intrinsics ``K``.

The object's depth is the nearest dense cluster of valid depths inside its box, not the box median, which
lands on the background behind any object that fills less than half its box (a person with arms out, a chair,
a pole): the box is sampled on a grid, the samples' depths go into a histogram with bins of 2 % of the depth,
the nearest window of three bins that holds enough of the samples starts the object, which goes on as long as
the following bins stay populated (a gap before the background ends it); the median of its samples is the
depth, their spread the box's depth extent. The 3D centre back-projects the 2D box centre at that depth; width
and height are the box's at that depth. Depth encodings as REP 118: ``16UC1`` millimetres, ``32FC1`` metres;
0, NaN and inf are invalid. Too few valid samples: no 3D box for that detection, never a guess at 0 m.
Everything is vectorised over the detections of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import cv2
import numpy as np

from yolov5_dpu_ros.core import validate
from yolov5_dpu_ros.core.conversions import DetectionFields

DEPTH_UNITS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}  # metres per stored unit (REP 118)
GRID = 24  # samples per box side
BIN = 0.02  # histogram bin width, relative to the depth
MIN_DEPTH_M, MAX_DEPTH_M = 0.05, 100.0
_BINS = int(np.log(MAX_DEPTH_M / MIN_DEPTH_M) / np.log1p(BIN)) + 2  # the last one holds the invalid samples


DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")  # sensor_msgs/distortion_models.hpp


@dataclass(frozen=True)
class Intrinsics:
    """Intrinsics of the colour image as it is published: ``K`` of sensor_msgs/CameraInfo (row-major 3x3) and,
    for an unrectified image, its distortion ``D`` under ``model`` (OpenCV's coefficient order)."""

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()
    model: str = "plumb_bob"

    @classmethod
    def from_k(cls, k: Sequence[float]) -> Intrinsics:
        values = [float(v) for v in k]
        if len(values) != 9 or not all(np.isfinite(values)) or values[0] <= 0 or values[4] <= 0:
            raise ValueError(f"camera_info K must be 9 finite numbers with fx, fy > 0, got {values}: is the camera "
                             "calibrated?")
        return cls(values[0], values[4], values[2], values[5])

    @classmethod
    def from_camera_info(cls, k: Sequence[float], d: Sequence[float], model: str) -> Intrinsics:
        """K with the distortion the image still has (all-zero or empty D: a rectified or ideal image)."""
        pinhole = cls.from_k(k)
        coefficients = tuple(float(v) for v in d)
        if not any(coefficients):
            return pinhole
        if model not in DISTORTION_MODELS or not all(np.isfinite(coefficients)):
            raise ValueError(f"camera_info distortion model {model!r} with D {list(coefficients)} is not one of "
                             f"{list(DISTORTION_MODELS)}: publish the rectified image (image_proc) as the input")
        if model == "equidistant" and len(coefficients) != 4:
            raise ValueError(f"camera_info equidistant D has {len(coefficients)} coefficients: it needs 4")
        if model != "equidistant" and len(coefficients) not in (4, 5, 8, 12, 14):
            raise ValueError(f"camera_info {model} D has {len(coefficients)} coefficients: OpenCV reads 4, 5, 8, "
                             "12 or 14")
        return replace(pinhole, distortion=coefficients, model=model)

    def scaled(self, sx: float, sy: float) -> Intrinsics:
        """The same camera at another resolution of the same view (distortion is in normalised coordinates)."""
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def undistorted(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) of the published image → normalised pinhole coordinates (N, 2) of their rays."""
        if not self.distortion:
            return np.stack([(pixels[:, 0] - self.cx) / self.fx, (pixels[:, 1] - self.cy) / self.fy], axis=1)
        k = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        points = np.ascontiguousarray(pixels, np.float64).reshape(-1, 1, 2)
        d = np.array(self.distortion)
        rays = (cv2.fisheye.undistortPoints(points, k, d) if self.model == "equidistant"
                else cv2.undistortPoints(points, k, d))
        return rays.reshape(-1, 2)


@dataclass(frozen=True)
class DepthConfig:
    """``scale``: metres per stored depth unit (None: by encoding, REP 118); ``min_fraction``: the share of a
    box's samples that must be valid and that the object's cluster must hold; ``min_extent_m``/``max_extent_m``:
    bounds of the depth extent."""

    scale: float | None = None
    min_fraction: float = 0.08
    min_extent_m: float = 0.05
    max_extent_m: float = 5.0

    def __post_init__(self) -> None:
        if self.scale is not None:
            object.__setattr__(self, "scale", validate.real(self.scale, "depth_scale", 0.0, None, open_low=True))
        object.__setattr__(self, "min_fraction", validate.real(self.min_fraction, "min_fraction", 0.0, 1.0,
                                                                 open_low=True))


@dataclass(frozen=True)
class Boxes3D:
    """One 3D box per detection: centre (N, 3) and size (N, 3) in metres in the optical frame, and whether the
    depth was good enough (``valid``); the values of invalid boxes are zeros, never NaN."""

    center: np.ndarray
    size: np.ndarray
    valid: np.ndarray


def camera_info_beside(topic: str) -> str:
    """The camera_info topic image_transport drivers publish beside an image topic."""
    base = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    parent = base.rstrip("/").rpartition("/")[0]
    return f"{parent}/camera_info" if parent else ("/camera_info" if base.startswith("/") else "camera_info")


def depth_from_fields(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: int = 0,
                      scale: float | None = None) -> np.ndarray:
    """A depth Image's pixels as float32 metres, NaN where invalid (0, NaN, inf, out of range)."""
    if encoding not in DEPTH_UNITS:
        raise ValueError(f"unsupported depth encoding '{encoding}': use 16UC1 (millimetres) or 32FC1 (metres), "
                         "as REP 118 says; set depth_scale for a driver that stores other units")
    itemsize = 2 if encoding != "32FC1" else 4
    height, width, step = int(height), int(width), int(step)
    if height < 1 or width < 1 or step < width * itemsize:
        raise ValueError(f"depth image {width}x{height} with step {step}: step must be at least {width * itemsize}")
    buffer = np.frombuffer(memoryview(data), np.uint8)
    if len(buffer) < step * height:
        raise ValueError(f"depth image holds {len(buffer)} bytes, needs {step * height}: truncated message")
    kind = np.dtype(("<" if not is_bigendian else ">") + ("u2" if itemsize == 2 else "f4"))
    rows = buffer[: step * height].reshape(height, step)[:, : width * itemsize]
    depth = np.ascontiguousarray(rows).view(kind).astype(np.float32)
    depth *= np.float32(DEPTH_UNITS[encoding] if scale is None else scale)
    depth[~((depth >= MIN_DEPTH_M) & (depth <= MAX_DEPTH_M))] = np.nan  # 0, NaN, inf and absurd values
    return depth


def _sample(depth: np.ndarray, xyxy: np.ndarray, colour_hw: tuple[int, int]) -> np.ndarray:
    """Depths on a GRID x GRID grid inside each box (colour pixels mapped to the depth image by scale)."""
    dh, dw = depth.shape
    sx, sy = dw / colour_hw[1], dh / colour_hw[0]
    steps = (np.arange(GRID) + 0.5) / GRID
    x = xyxy[:, 0:1] + (xyxy[:, 2:3] - xyxy[:, 0:1]) * steps  # (N, GRID)
    y = xyxy[:, 1:2] + (xyxy[:, 3:4] - xyxy[:, 1:2]) * steps
    col = np.clip((x * sx).astype(np.int64), 0, dw - 1)
    row = np.clip((y * sy).astype(np.int64), 0, dh - 1)
    return depth[row[:, :, None], col[:, None, :]].reshape(len(xyxy), GRID * GRID)


def boxes_3d(xyxy: np.ndarray, depth: np.ndarray, colour_hw: tuple[int, int], intrinsics: Intrinsics,
             config: DepthConfig | None = None) -> Boxes3D:
    """The 3D box of each detection (xyxy in colour pixels) from a depth image in metres (NaN invalid) covering
    the same field of view as the colour image."""
    config = config or DepthConfig()
    n = len(xyxy)
    if n == 0:
        return Boxes3D(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, bool))
    samples = _sample(depth, np.asarray(xyxy, np.float64), colour_hw)
    valid = np.isfinite(samples)
    needed = max(3, int(np.ceil(config.min_fraction * samples.shape[1])))
    position = np.log(np.where(valid, samples, MIN_DEPTH_M) / MIN_DEPTH_M) / np.log1p(BIN)
    bins = np.where(valid, np.clip(position.astype(np.int64), 0, _BINS - 2), _BINS - 1)
    counts = np.bincount((np.arange(n)[:, None] * _BINS + bins).ravel(), minlength=n * _BINS).reshape(n, _BINS)
    counts[:, -1] = 0
    dense = counts[:, :-2] + counts[:, 1:-1] + counts[:, 2:]  # a bin with its far neighbours (2 % bins, ~6 %)
    has = dense >= needed
    ok = has.any(axis=1) & (valid.sum(axis=1) >= needed)
    first = np.argmax(has, axis=1)  # the nearest dense window
    # the cluster: from its first populated bin on, as long as the bins stay populated (a gap ends the object)
    populated = counts[:, :-1] >= max(2, int(0.01 * samples.shape[1]))
    start = first + np.argmax(np.take_along_axis(populated, first[:, None] + np.arange(3), axis=1), axis=1)
    gaps = ~populated & (np.arange(populated.shape[1])[None, :] > start[:, None])
    end = np.where(gaps.any(axis=1), np.argmax(gaps, axis=1) - 1, populated.shape[1] - 1)
    in_cluster = valid & (bins >= start[:, None]) & (bins <= end[:, None])
    members = in_cluster.sum(axis=1)
    ok &= members > 0
    ordered = np.sort(np.where(in_cluster, samples, np.inf), axis=1)  # the cluster first, in depth order
    rows, last = np.arange(n), np.maximum(members - 1, 0)
    ordered[~ok] = 0.0
    z = np.where(ok, (ordered[rows, last // 2] + ordered[rows, (last + 1) // 2]) / 2, 0.0)  # the median
    extent = np.where(ok, ordered[rows, last] - ordered[:, 0], 0.0)
    xyxy = np.asarray(xyxy, np.float64)
    center = back_project((xyxy[:, :2] + xyxy[:, 2:]) / 2, z, intrinsics)
    corners = back_project(xyxy[:, 2:], z, intrinsics) - back_project(xyxy[:, :2], z, intrinsics)
    size = np.stack([corners[:, 0], corners[:, 1], np.clip(extent, config.min_extent_m, config.max_extent_m)], 1)
    center[~ok] = 0.0
    size[~ok] = 0.0
    return Boxes3D(center, size, ok)


def depth_boxes(depth_msg: Any, xyxy: np.ndarray, colour_hw: tuple[int, int], intrinsics: Intrinsics,
                info_wh: tuple[int, int], config: DepthConfig) -> Boxes3D:
    """The 3D boxes of one colour frame's detections from its paired depth Image message (ROS or rosbags: the
    fields ``encoding, height, width, step, data, is_bigendian``) and the CameraInfo's K, given for ``info_wh``
    (rescaled when the colour image has another resolution of the same view). ValueError for a bad depth image."""
    height, width = colour_hw
    if info_wh[0] and info_wh[1] and info_wh != (width, height):
        intrinsics = intrinsics.scaled(width / info_wh[0], height / info_wh[1])
    depth = depth_from_fields(depth_msg.encoding, depth_msg.height, depth_msg.width, depth_msg.step, depth_msg.data,
                              depth_msg.is_bigendian, config.scale)
    return boxes_3d(xyxy, depth, colour_hw, intrinsics, config)


def project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Pixel coordinates (N, 2) of 3D points (N, 3) in the optical frame (z > 0)."""
    return np.stack([points[:, 0] * intrinsics.fx / points[:, 2] + intrinsics.cx,
                     points[:, 1] * intrinsics.fy / points[:, 2] + intrinsics.cy], axis=1)


def back_project(pixels: np.ndarray, z: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """3D points (N, 3) in the optical frame of pixels (N, 2) of the published image at depths z (N,); a
    distorted image's pixels are undistorted first."""
    rays = intrinsics.undistorted(pixels)
    return np.stack([rays[:, 0] * z, rays[:, 1] * z, z], axis=1)


def rotate(points: np.ndarray, quaternion: Sequence[float]) -> np.ndarray:
    """Points (N, 3) rotated by the unit quaternion (x, y, z, w), as tf2 applies a transform's rotation."""
    x, y, z, w = (float(v) for v in quaternion)
    q = np.array([x, y, z])
    t = 2 * np.cross(q, points)
    return points + w * t + np.cross(q, t)


class StampPairing:
    """The latest messages of a stream by header stamp, to pair with frames of another stream as message_filters'
    approximate-time policy would: the nearest within ``slop`` seconds. Not thread-safe (the node locks)."""

    def __init__(self, slop: float, keep: int = 8) -> None:
        self.slop = validate.real(slop, "depth_sync_slop", 0.0, 10.0)
        self.keep = keep
        self._items: list[tuple[float, Any]] = []

    def add(self, stamp: float, item: Any) -> None:
        self._items.append((stamp, item))
        if len(self._items) > self.keep:
            del self._items[0]

    def nearest(self, stamp: float) -> Any | None:
        """The item whose stamp is nearest ``stamp`` within the slop, or None."""
        best = min(self._items, key=lambda pair: abs(pair[0] - stamp), default=None)
        return best[1] if best is not None and abs(best[0] - stamp) <= self.slop else None

    def clear(self) -> None:
        self._items.clear()


@dataclass(frozen=True)
class Detection3DFields:
    """One vision_msgs/Detection3D's values: box centre, size and orientation (x, y, z, w) in metres in the output
    frame, and the 2D detection's class id, score and track id."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    class_id: str
    score: float
    id: str


def detection3d_fields(fields: Sequence[DetectionFields], boxes: Boxes3D,
                       translation: Sequence[float] = (0.0, 0.0, 0.0),
                       rotation: Sequence[float] = (0.0, 0.0, 0.0, 1.0)) -> list[Detection3DFields]:
    """The Detection3D of every detection with a valid 3D box, moved into another frame by a transform
    (``translation`` and the unit quaternion ``rotation``, as tf2 gives them; identity: the optical frame)."""
    centers = (rotate(boxes.center, rotation) + np.asarray(translation, np.float64)).tolist()
    sizes = boxes.size.tolist()
    qx, qy, qz, qw = (float(v) for v in rotation)
    return [Detection3DFields((centers[i][0], centers[i][1], centers[i][2]), (sizes[i][0], sizes[i][1], sizes[i][2]),
                              (qx, qy, qz, qw), f.class_id, f.score, f.id)
            for i, f in enumerate(fields) if boxes.valid[i]]
