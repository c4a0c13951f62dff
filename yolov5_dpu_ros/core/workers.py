"""N detectors on one model, one per worker thread: the one way the node and the CLI build them."""

from __future__ import annotations

from pathlib import Path

from yolov5_dpu_ros.core.backend import BackendSpec
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.core.postprocess import PostprocessConfig


def build_detectors(spec: BackendSpec, meta_path: str | Path, workers: int = 1,
                    config: PostprocessConfig | None = None) -> list[Detector]:
    """Load the metadata and the model once and give ``workers`` detectors on it (each its own runner or
    session and buffers). If any part fails, everything built so far is closed before the error leaves."""
    if not 1 <= workers <= 8:
        raise ValueError(f"workers must be in [1, 8], got {workers}")
    meta = load_meta(meta_path)
    backend = spec.open(meta, workers)
    detectors: list[Detector] = []
    try:
        detectors.append(Detector(backend, meta, config))
        while len(detectors) < workers:
            detectors.append(detectors[0].worker())
    except BaseException:
        if not detectors:
            backend.close()
        for detector in detectors:
            detector.close()
        raise
    return detectors
