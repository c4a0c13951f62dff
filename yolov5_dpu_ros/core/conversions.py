"""ROS-free conversions: image message fields → numpy image, detections → message field values.

Used by the ROS node, the bag tools and the CLI alike; nothing here imports rclpy or message packages,
so every rule about what a valid frame is can be tested without ROS. Encodings follow cv_bridge
(vision_opencv humble): every colour encoding it converts is accepted with its OpenCV code.
"""

from __future__ import annotations

import array
import re
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from yolov5_dpu_ros.core import validate
from yolov5_dpu_ros.core.choices import CLASS_ID_FORMATS
from yolov5_dpu_ros.core.detections import Detections


@dataclass(frozen=True)
class RosEncoding:
    """How one sensor_msgs/Image encoding is read: sample type, samples per pixel, pre-processing encoding."""

    dtype: type
    channels: int
    reads_as: str  # a key of preprocess.ENCODINGS; 16-bit images are scaled to 8 bits first, as cv_bridge does


_U8, _U16 = np.uint8, np.uint16
ROS_ENCODINGS: dict[str, RosEncoding] = {
    "bgr8": RosEncoding(_U8, 3, "bgr8"), "rgb8": RosEncoding(_U8, 3, "rgb8"), "mono8": RosEncoding(_U8, 1, "mono8"),
    "bgra8": RosEncoding(_U8, 4, "bgra8"), "rgba8": RosEncoding(_U8, 4, "rgba8"),
    "yuv422": RosEncoding(_U8, 2, "yuv422"), "yuv422_yuy2": RosEncoding(_U8, 2, "yuv422_yuy2"),
    "bayer_rggb8": RosEncoding(_U8, 1, "bayer_rggb8"), "bayer_bggr8": RosEncoding(_U8, 1, "bayer_bggr8"),
    "bayer_gbrg8": RosEncoding(_U8, 1, "bayer_gbrg8"), "bayer_grbg8": RosEncoding(_U8, 1, "bayer_grbg8"),
    "mono16": RosEncoding(_U16, 1, "mono8"),
    "rgb16": RosEncoding(_U16, 3, "rgb8"), "bgr16": RosEncoding(_U16, 3, "bgr8"),
    "rgba16": RosEncoding(_U16, 4, "rgba8"), "bgra16": RosEncoding(_U16, 4, "bgra8"),
}
# sensor_msgs image_encodings' generic types (8UC3, 16UC1, 32FC1, ...): no colour order, so cv_bridge's
# getConversionCode refuses them → a colour encoding ("... is not a color format"); the node does the same
GENERIC = re.compile(r"(8|16|32|64)(U|S|F)C[1-4]")
SIXTEEN_TO_EIGHT = 255.0 / 65535.0  # cv_bridge's convertTo scale
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def as_bytes(data: Any) -> np.ndarray:
    """A message's ``data`` (bytes, bytearray, memoryview, array.array of bytes, uint8 numpy array, list of
    ints) as a 1-D uint8 array, without a copy where the buffer allows; ValueError for anything else."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f"image data as a numpy array must be uint8, got {data.dtype}")
        return data.reshape(-1)
    if isinstance(data, array.array) and data.typecode not in "Bb":
        raise ValueError(f"image data as array.array must hold bytes ('B'), got typecode '{data.typecode}'")
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        try:
            return np.frombuffer(data, dtype=np.uint8)
        except (ValueError, TypeError, BufferError) as e:
            raise ValueError(f"image data buffer cannot be read as bytes: {e}") from e
    if isinstance(data, (list, tuple)):
        values = np.asarray(data)
        if values.size and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255):
            raise ValueError("image data as a list must hold integers 0..255")
        return values.astype(np.uint8).reshape(-1)
    raise ValueError(f"image data of type {type(data).__name__} is not bytes: give bytes, bytearray, "
                     "memoryview, array.array('B') or a uint8 array")


def image_from_fields(encoding: str, height: Any, width: Any, step: Any, data: Any,
                      is_bigendian: Any = 0) -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image's fields → (H, W[, C]) uint8 image and the pre-processing encoding to read it as.

    8-bit images are views of ``data`` (no copy); 16-bit ones are scaled to 8 bits as cv_bridge does.
    Raises ValueError naming the problem for unsupported encodings, bad sizes and a data length or
    step that does not fit the stated size (a truncated or corrupt message).
    """
    if isinstance(encoding, str) and GENERIC.fullmatch(encoding):
        raise ValueError(f"image encoding {encoding} is a depth or generic image, not a colour one (cv_bridge refuses "
                         "to convert it to colour as well): give the colour topic in input_topics; a depth topic "
                         "belongs in depth_topics")
    if not isinstance(encoding, str) or encoding not in ROS_ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}: publish one of {sorted(ROS_ENCODINGS)} "
                         "(or use image_transport's compressed topic)")
    kind = ROS_ENCODINGS[encoding]
    height = validate.integer(height, "image height", 0)
    width = validate.integer(width, "image width", 0)
    step = validate.integer(step, "image step", 0)
    if height == 0 or width == 0:
        raise ValueError(f"empty image: {width}x{height}")
    pixel_bytes = kind.channels * np.dtype(kind.dtype).itemsize
    if step < width * pixel_bytes:
        raise ValueError(f"step {step} is smaller than width {width} x {pixel_bytes} bytes per pixel ({encoding})")
    if step % np.dtype(kind.dtype).itemsize:
        raise ValueError(f"step {step} of a 16-bit image ({encoding}) must be even")
    buffer = as_bytes(data)
    needed = step * (height - 1) + width * pixel_bytes  # Python ints: no overflow whatever the field types
    if buffer.size < needed:
        raise ValueError(f"image data has {buffer.size} bytes, {width}x{height} {encoding} with step {step} "
                         f"needs {step * height}: truncated message")
    rows = np.lib.stride_tricks.as_strided(buffer, (height, width * pixel_bytes), (step, 1), writeable=False)
    if kind.dtype is _U16:
        samples = np.ascontiguousarray(rows).view(np.dtype(">u2" if is_bigendian else "<u2"))
        rows = cv2.convertScaleAbs(samples.astype(np.uint16, copy=False), alpha=SIXTEEN_TO_EIGHT)
    image = rows if kind.channels == 1 else rows.reshape(height, width, kind.channels)
    return image, kind.reads_as


def image_from_compressed(fmt: str, data: Any) -> np.ndarray:
    """A CompressedImage's data or an image file's bytes (JPEG, PNG, ...) → BGR image.

    ValueError when it does not decode, and for a JPEG cut short (no end-of-image marker), which
    some decoders would turn into a frame with a grey band: every path judges a frame the same way.
    """
    buffer = as_bytes(data)
    if buffer.size == 0:
        raise ValueError(f"empty compressed image (format '{fmt}')")
    head, tail = bytes(buffer[:2]), bytes(np.trim_zeros(buffer[-64:], "b")[-2:])
    if head == JPEG_START and tail != JPEG_END:
        raise ValueError(f"JPEG of {buffer.size} bytes has no end-of-image marker: truncated")
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
    id: str = ""  # the track ID (Detection2D.id); empty without tracking or while the track is not confirmed


def image_from_message(msg: Any, compressed: bool) -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image or CompressedImage (rclpy's or rosbags') → image and the encoding to read it as; the
    one way the node and the bag replay turn a message into pixels."""
    if compressed:
        return image_from_compressed(msg.format, msg.data), "bgr8"
    return image_from_fields(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


def detection_fields(detections: Detections, names: Sequence[str], class_id_format: str = "name",
                     track_ids: Sequence[int] | np.ndarray | None = None) -> list[DetectionFields]:
    """Field values for each detection; class ids as names or as index strings; track IDs (-1: none) as strings."""
    if class_id_format not in CLASS_ID_FORMATS:
        raise ValueError(f"class_id_format must be one of {list(CLASS_ID_FORMATS)}, got '{class_id_format}'")
    ids = [-1] * len(detections) if track_ids is None else [int(i) for i in track_ids]
    out = []
    for (cx, cy, w, h), score, cid, tid in zip(detections.xywh.tolist(), detections.score.tolist(),
                                               detections.class_id.tolist(), ids):
        label = names[cid] if class_id_format == "name" and 0 <= cid < len(names) else str(cid)
        out.append(DetectionFields(cx, cy, w, h, label, score, str(tid) if tid >= 0 else ""))
    return out
