"""ONNX Runtime backend: a raw-head YOLOv5 ONNX behind the DPU's int8-in/int8-out contract.

The int8 input is dequantized with the input fix point, the float model runs, and every head is
quantized (round, clip) with its fix point from the metadata, so exactly the board's pre- and
post-processing runs on a PC. One caller at a time per instance, as with a DPU runner.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from yolov5_dpu_ros.core.backend import TensorSpec
from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads


def _nchw_to_nhwc(shape: Sequence) -> tuple[int, ...] | None:
    if len(shape) != 4 or not all(isinstance(v, int) for v in shape):
        return None
    n, c, h, w = shape
    return (n, h, w, c)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(threads: int, workers: int) -> int:
    """ONNX Runtime intra-op threads for each worker: as asked, or the usable cores shared out (at least 1)."""
    return threads if threads > 0 else max(1, usable_cores() // max(1, workers))


class OnnxBackend:
    """Runs a raw-head YOLOv5 ONNX (float NCHW input, per-level raw conv outputs) with onnxruntime.

    ``threads`` intra-op threads (1: the run stays on the caller's thread); idle threads spin-wait only
    with ``spin`` (ONNX Runtime's default spins, which takes the CPU a ROS middleware needs).
    """

    name = "onnx"

    def __init__(self, model_path: str | Path, meta: ModelMeta, threads: int = 1, spin: bool = False) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ValueError(f"ONNX model not found: {path} (export one with model_prep/export_onnx.py)")
        fix_points = meta.output_fix_points
        if fix_points is None:
            raise ValueError(
                "the metadata has no output_fix_points, which the onnx backend needs to quantize its "
                "outputs like the DPU: calibrate them with model_prep/export_onnx.py --calib IMAGES"
            )
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ValueError("the onnx backend needs onnxruntime: pip install onnxruntime") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f"{path} is not a loadable ONNX model: {e}") from e
        self._path, self._meta, self._threads, self._spin = path, meta, threads, spin

        inputs = self._session.get_inputs()
        h, w = meta.input_hw
        if len(inputs) != 1 or list(inputs[0].shape) != [1, 3, h, w]:
            got = [(i.name, i.shape) for i in inputs]
            raise ValueError(
                f"{path}: expected one input of shape [1, 3, {h}, {w}] (metadata input_size {[h, w]}), "
                f"got {got}: export with the metadata's input size, or use the metadata of this model"
            )
        outputs = self._session.get_outputs()
        found = [_nchw_to_nhwc(o.shape) for o in outputs]
        shapes = [s for s in found if s is not None]
        if len(shapes) != len(found):
            raise ValueError(
                f"{path}: outputs {[(o.name, o.shape) for o in outputs]} are not raw NCHW heads with fixed "
                "shapes: export with model_prep/export_onnx.py, which makes Detect return the raw conv outputs"
            )
        heads = match_heads(shapes, meta, [o.name for o in outputs])
        self.input_spec = TensorSpec(inputs[0].name, (1, h, w, 3), meta.input_fix_point)
        self.output_specs = tuple(
            TensorSpec(o.name, shape, fix_points[head]) for o, shape, head in zip(outputs, shapes, heads)
        )
        self._output_names = [o.name for o in outputs]
        self._input_scale = np.float32(2.0**-meta.input_fix_point)
        self._float_input = np.empty((1, 3, h, w), np.float32)
        self._scratch = [np.empty(s.shape[1:], np.float32) for s in self.output_specs]

    def run_float(self, float_input: np.ndarray) -> list[np.ndarray]:
        """The float model on a float NCHW input: raw NCHW heads, no quantization (the float reference)."""
        return self._session.run(self._output_names, {self.input_spec.name: float_input})

    def run(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None:
        """int8 NHWC input → int8 NHWC heads, quantized with each head's fix point."""
        np.multiply(input_buffer.transpose(0, 3, 1, 2), self._input_scale, out=self._float_input)
        heads = self.run_float(self._float_input)
        for head, spec, dst, tmp in zip(heads, self.output_specs, output_buffers, self._scratch):
            np.multiply(head[0].transpose(1, 2, 0), np.float32(2.0**spec.fix_point), out=tmp)
            np.rint(tmp, out=tmp)
            np.clip(tmp, -128, 127, out=tmp)
            np.copyto(dst[0], tmp, casting="unsafe")

    def worker(self) -> OnnxBackend:
        """Another instance for another thread, with its own session, so each worker has its own threads."""
        return OnnxBackend(self._path, self._meta, self._threads, self._spin)

    def close(self) -> None:
        """Release the session."""
        self._session = None
