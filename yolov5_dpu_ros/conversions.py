"""ROS-free conversions: image message fields → numpy image, detections → message field values.

Used by the ROS node and by the bag tools alike; nothing here imports rclpy or message packages,
so every rule about what a valid frame is can be tested without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .detections import Detections
from .preprocess import ENCODINGS

# ROS image encodings accepted, with the pre-processing encoding each one is read as
ENCODING_ALIASES = {"bgr8": "bgr8", "rgb8": "rgb8", "mono8": "mono8", "bgra8": "bgra8", "rgba8": "rgba8",
                    "8UC3": "bgr8", "8UC1": "mono8", "8UC4": "bgra8"}
CLASS_ID_FORMATS = ("name", "index")


def image_from_fields(encoding: str, height: int, width: int, step: int, data) -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image's fields → (H, W[, C]) uint8 view of its data, and the encoding to use.

    Raises ValueError naming the problem for unsupported encodings, zero sizes and a data length
    or step that does not fit the stated size (a truncated or corrupt message).
    """
    if encoding not in ENCODING_ALIASES:
        raise ValueError(f"unsupported image encoding '{encoding}': publish one of {sorted(ENCODING_ALIASES)} "
                         "(or use image_transport's compressed topic)")
    encoding = ENCODING_ALIASES[encoding]
    channels = ENCODINGS[encoding][0]
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image: {width}x{height}")
    if step < width * channels:
        raise ValueError(f"step {step} is smaller than width {width} x {channels} bytes per pixel")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * (height - 1) + width * channels:
        raise ValueError(f"image data has {buffer.size} bytes, {width}x{height} {encoding} with step {step} "
                         f"needs {step * height}: truncated message")
    rows = np.lib.stride_tricks.as_strided(buffer, (height, width * channels), (step, 1), writeable=False)
    return (rows if channels == 1 else rows.reshape(height, width, channels)), encoding


def image_from_compressed(fmt: str, data) -> np.ndarray:
    """A sensor_msgs/CompressedImage's data (JPEG, PNG, ...) → BGR image; ValueError if it does not decode."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ValueError(f"empty compressed image (format '{fmt}')")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"compressed image ({buffer.size} bytes, format '{fmt}') does not decode: "
                         "truncated or corrupt")
    return image


@dataclass(frozen=True)
class DetectionFields:
    """One Detection2D's values: bbox centre and size in source pixels, hypothesis class id and score."""

    center_x: float
    center_y: float
    size_x: float
    size_y: float
    class_id: str
    score: float


def detection_fields(detections: Detections, names: Sequence[str], class_id_format: str = "name"
                     ) -> list[DetectionFields]:
    """Field values for each detection; class ids as names or as index strings."""
    if class_id_format not in CLASS_ID_FORMATS:
        raise ValueError(f"class_id_format must be one of {list(CLASS_ID_FORMATS)}, got '{class_id_format}'")
    out = []
    for (cx, cy, w, h), score, cid in zip(detections.xywh.tolist(), detections.score.tolist(),
                                          detections.class_id.tolist()):
        label = names[cid] if class_id_format == "name" and 0 <= cid < len(names) else str(cid)
        out.append(DetectionFields(cx, cy, w, h, label, score))
    return out
