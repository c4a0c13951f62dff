"""The one typed result that leaves post-processing: boxes, scores and class ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """N detections in source-image pixels: xyxy (N, 4) float32, score (N,) float32, class_id (N,) int32."""

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.score)
        if self.xyxy.shape != (n, 4) or self.class_id.shape != (n,):
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, score {self.score.shape}, "
                f"class_id {self.class_id.shape}; expected (N, 4), (N,), (N,)"
            )
        if self.xyxy.dtype != np.float32 or self.score.dtype != np.float32 or self.class_id.dtype != np.int32:
            raise ValueError("Detections needs float32 xyxy and score, int32 class_id")

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.score)

    @property
    def xywh(self) -> np.ndarray:
        """Centre x, centre y, width, height in pixels, (N, 4) float32."""
        x1, y1, x2, y2 = self.xyxy.T
        return np.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), axis=1)

    def subset(self, keep: np.ndarray) -> Detections:
        """The detections ``keep`` (a boolean mask or indices) selects, in their order."""
        return Detections(self.xyxy[keep], self.score[keep], self.class_id[keep])
