"""Annotated images: boxes and labels drawn on a copy of the source frame."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.preprocess import ENCODINGS

_PALETTE = np.array(
    [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
     (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
     (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132)], dtype=np.uint8)


def to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """The image as BGR (the encodings pre-processing accepts), for drawing and publishing."""
    code = ENCODINGS[encoding].to_bgr
    return image if code is None else cv2.cvtColor(image, code)


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per class."""
    b, g, r = (int(v) for v in _PALETTE[class_id % len(_PALETTE)])
    return b, g, r


def draw_detections(bgr: np.ndarray, detections: Detections, names: Sequence[str]) -> np.ndarray:
    """A BGR copy of the frame with one labelled box per detection."""
    out = np.ascontiguousarray(bgr).copy()
    thickness = max(1, round(sum(out.shape[:2]) / 600))
    for (x1, y1, x2, y2), score, cid in zip(detections.xyxy, detections.score, detections.class_id):
        color = class_color(int(cid))
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        name = names[cid] if 0 <= cid < len(names) else str(int(cid))
        label = f"{name} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, thickness / 3, 1)
        top = p1[1] - th - 3 if p1[1] - th - 3 >= 0 else p1[1] + th + 3
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw, top + th + 3), color, -1)
        cv2.putText(out, label, (p1[0], top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, thickness / 3,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoSink:
    """An mp4 file that opens with the size of the first frame written to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps,
                                           (bgr.shape[1], bgr.shape[0]))
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
