"""Detector: pre-process → backend → post-process for one frame, with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from yolov5_dpu_ros.core.backend import Backend, allocate_outputs
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.families import family
from yolov5_dpu_ros.core.model_meta import ModelMeta
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor
from yolov5_dpu_ros.core.preprocess import Preprocessor

STAGES = ("preprocess", "inference", "postprocess")


@dataclass(frozen=True)
class StageTimings:
    """Wall time of each stage of one frame, in milliseconds (the fields ``f"{stage}_ms"`` of STAGES)."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


class Detector:
    """Runs one model on frames. Not for concurrent callers: make one Detector per worker thread.

    ``config`` is an immutable PostprocessConfig; assigning a new one (or calling ``update``)
    takes effect from the next frame, so thresholds and the class filter can change while running.
    """

    def __init__(self, backend: Backend, meta: ModelMeta, config: PostprocessConfig | None = None) -> None:
        expected = (1, *meta.input_hw, 3)
        if tuple(backend.input_spec.shape) != expected:
            raise ValueError(
                f"the {backend.name} model input is {backend.input_spec.shape} but the metadata says "
                f"{expected} (NHWC): use the metadata written for this model"
            )
        self.backend = backend
        self.meta = meta
        self.config = config or PostprocessConfig()
        self._low_for: PostprocessConfig | None = None  # the config _low_config was derived from
        self._low_config = self.config
        self._preprocess = Preprocessor(meta.input_hw, backend.input_spec.fix_point, family(meta.family).contract)
        self._outputs = allocate_outputs(backend.output_specs)
        self._postprocess = Postprocessor(
            meta, [s.shape for s in backend.output_specs], [s.fix_point for s in backend.output_specs],
            [s.name for s in backend.output_specs],
        )

    def worker(self) -> Detector:
        """A Detector for another thread: same model and config, its own runner and buffers."""
        return Detector(self.backend.worker(), self.meta, self.config)

    def update(self, **changes: Any) -> PostprocessConfig:
        """Replace some settings (validated as a whole, so a bad value leaves the old config)."""
        self.config = replace(self.config, **changes)
        return self.config

    def detect(self, image: np.ndarray, encoding: str = "bgr8") -> tuple[Detections, StageTimings]:
        """Detections in source-image pixels for one image, and how long each stage took."""
        detections, _, timings = self.detect_split(image, encoding)
        return detections, timings

    def detect_split(self, image: np.ndarray, encoding: str = "bgr8") -> tuple[Detections, Detections, StageTimings]:
        """As ``detect``, plus the detections scoring from ``config.low_threshold`` up to the confidence threshold
        (empty without one), from the same pass: the published ones are exactly those ``detect`` gives without a
        low threshold (lower-scored boxes never suppress higher ones in NMS)."""
        config = self.config
        low_threshold = config.low_threshold
        t0 = time.perf_counter()
        letterbox = self._preprocess(image, encoding)
        t1 = time.perf_counter()
        self.backend.run(self._preprocess.buffer, self._outputs)
        t2 = time.perf_counter()
        if low_threshold is None:
            detections, low = self._postprocess(self._outputs, letterbox, config), Detections.empty()
        else:
            found = self._postprocess(self._outputs, letterbox, self._low_pass(config, low_threshold))
            high = found.score > config.conf_threshold
            detections, low = found.subset(high), found.subset(~high)
        t3 = time.perf_counter()
        return detections, low, StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    def _low_pass(self, config: PostprocessConfig, low_threshold: float) -> PostprocessConfig:
        """The config that keeps everything down to the low threshold, made once per config, not per frame."""
        if self._low_for is not config:
            self._low_for, self._low_config = config, replace(config, conf_threshold=low_threshold,
                                                              low_threshold=None)
        return self._low_config

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()
