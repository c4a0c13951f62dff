"""The backend contract, shaped like the DPU's: int8 NHWC in, int8 NHWC heads out, fix points."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from yolov5_dpu_ros.core.model_meta import ModelMeta
from yolov5_dpu_ros.core.tensors import TensorSpec


class Backend(Protocol):
    """An inference engine bound to one model.

    ``run`` reads the int8 input buffer and fills caller-owned int8 output buffers (one per
    ``output_specs`` entry, in that order), so callers preallocate once per worker. One instance
    serves one caller at a time, as a VART runner does; ``worker`` gives another instance on the
    same loaded model (its own runner and scratch) for another thread.
    """

    name: str
    input_spec: TensorSpec
    output_specs: tuple[TensorSpec, ...]

    def run(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None: ...

    def worker(self) -> Backend: ...

    def close(self) -> None: ...


class BackendSpec(Protocol):
    """Which backend to open on which model file, with that backend's own typed options
    (``backends.OnnxSpec``, ``backends.DpuSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> Path: ...

    def open(self, meta: ModelMeta, workers: int) -> Backend:
        """The first instance on the model (``workers`` will share the machine: the onnx backend divides the
        cores among them)."""
        ...


def allocate_outputs(specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """One int8 buffer per output spec."""
    return [np.empty(spec.shape, dtype=np.int8) for spec in specs]
