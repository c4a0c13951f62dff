"""Backend factory: imports only the backend module that is asked for."""

from __future__ import annotations

from pathlib import Path

from yolov5_dpu_ros.core.backend import Backend, TensorSpec, allocate_outputs
from yolov5_dpu_ros.core.model_meta import ModelMeta

BACKENDS = ("onnx", "dpu")

__all__ = ["BACKENDS", "Backend", "TensorSpec", "allocate_outputs", "make_backend"]


def make_backend(name: str, meta: ModelMeta, model_path: str | Path, threads: int = 0, workers: int = 1,
                 spin: bool = False, bit: str | Path | None = None, fingerprint: int | None = None,
                 allow_other_compiler: bool = False) -> Backend:
    """Create the named backend for one model file (an ONNX for onnx, an xmodel for dpu).

    onnx: ``threads`` per worker (0: the usable cores divided among ``workers``), ``spin`` lets idle
    ONNX Runtime threads spin-wait. dpu: ``bit``, ``fingerprint`` (the overlay's DPU; None = pynq-dpu's
    stock KV260 overlay) and ``allow_other_compiler``.
    """
    if name == "onnx":
        from yolov5_dpu_ros.backends.onnx import OnnxBackend, threads_per_worker

        return OnnxBackend(model_path, meta, threads=threads_per_worker(threads, workers), spin=spin)
    if name == "dpu":
        from yolov5_dpu_ros.dpu.verdict import STOCK_FINGERPRINT
        from yolov5_dpu_ros.backends.dpu import DpuBackend

        return DpuBackend(model_path, meta, bit=bit, fingerprint=fingerprint or STOCK_FINGERPRINT,
                          allow_other_compiler=allow_other_compiler)
    raise ValueError(f"unknown backend '{name}': use one of {list(BACKENDS)}")
