"""The backends and their typed options: a spec names the model file and opens the backend on it, importing
only the backend module that is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yolov5_dpu_ros.core.backend import Backend, BackendSpec, TensorSpec, allocate_outputs
from yolov5_dpu_ros.core.choices import BACKENDS
from yolov5_dpu_ros.core.model_meta import ModelMeta
from yolov5_dpu_ros.dpu.stacks import AUTO

__all__ = ["BACKENDS", "Backend", "BackendSpec", "DpuSpec", "OnnxSpec", "TensorSpec", "allocate_outputs"]


@dataclass(frozen=True)
class OnnxSpec:
    """A raw-head ONNX on ONNX Runtime: ``threads`` per worker (0: the usable cores divided among the workers);
    ``spin`` lets idle ONNX Runtime threads spin-wait."""

    model: Path
    threads: int = 0
    spin: bool = False
    name: str = "onnx"

    def open(self, meta: ModelMeta, workers: int) -> Backend:
        from yolov5_dpu_ros.backends.onnx import OnnxBackend, threads_per_worker

        if self.threads < 0:
            raise ValueError(f"threads must be 0 (automatic) or more, got {self.threads}")
        return OnnxBackend(self.model, meta, threads=threads_per_worker(self.threads, workers), spin=self.spin)


@dataclass(frozen=True)
class DpuSpec:
    """A compiled xmodel on the KV260's DPU: the overlay ``bit`` (None: pynq-dpu's own), its DPU's ``fingerprint``
    (None: the stack's stock overlay's), whether a model of another Vitis AI is let through, and the DPU stack
    (``dpu_runtime``: 'auto' reads the board's)."""

    model: Path
    bit: Path | None = None
    fingerprint: int | None = None
    allow_other_compiler: bool = False
    dpu_runtime: str = AUTO
    name: str = "dpu"

    def open(self, meta: ModelMeta, workers: int) -> Backend:
        from yolov5_dpu_ros.backends.dpu import DpuBackend

        return DpuBackend.load(self.model, meta, bit=self.bit, dpu_runtime=self.dpu_runtime,
                               fingerprint=self.fingerprint, allow_other_compiler=self.allow_other_compiler)
