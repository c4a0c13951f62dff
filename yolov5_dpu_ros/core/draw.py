"""Annotated images: boxes, labels and track IDs drawn on a BGR copy of the source frame."""

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


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per class (or per track ID)."""
    b, g, r = (int(v) for v in _PALETTE[class_id % len(_PALETTE)])
    return b, g, r


def draw_detections(image: np.ndarray, detections: Detections, names: Sequence[str], encoding: str = "bgr8",
                    track_ids: Sequence[int] | np.ndarray | None = None, out: np.ndarray | None = None,
                    ) -> np.ndarray:
    """The frame as BGR with one labelled box per detection: class and score, and the track ID with a colour per
    track where ``track_ids`` gives one (-1: none yet). Written into ``out`` (H, W, 3) when given, so the frame
    is copied once, else into a new array."""
    code = ENCODINGS[encoding].to_bgr
    if out is None:
        out = np.empty((*image.shape[:2], 3), np.uint8)
    if code is None:
        np.copyto(out, image)
    else:
        cv2.cvtColor(image, code, dst=out)
    thickness = max(1, round(sum(out.shape[:2]) / 600))
    ids = [-1] * len(detections) if track_ids is None else list(track_ids)
    for (x1, y1, x2, y2), score, cid, tid in zip(detections.xyxy, detections.score, detections.class_id, ids):
        color = class_color(int(tid) if tid >= 0 else int(cid))
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        name = names[cid] if 0 <= cid < len(names) else str(int(cid))
        label = f"#{tid} {name} {score:.2f}" if tid >= 0 else f"{name} {score:.2f}"
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
