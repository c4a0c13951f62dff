"""DPU backend: a compiled xmodel on the KV260's DPU through pynq-dpu 2.5.1 (VART 2.5), int8 in and out.

Everything that can be checked without touching the DPU is checked first (files, one DPU subgraph,
tensor shapes against the metadata, the compiler fingerprint), because a mismatched model does not
fail politely: pynq-dpu 2.5 kills the Python process on an xmodel from a newer Vitis AI.
Tensor shapes and fix points come from the runner's tensors, never from constants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..model_meta import ModelMeta, match_heads
from .base import TensorSpec

LOG = logging.getLogger(__name__)

NEEDS_PYNQ = ("the dpu backend needs PYNQ 3.0 with pynq-dpu 2.5.1 on a KV260 (run as root with the PYNQ "
              "venv: source /etc/profile.d/pynq_venv.sh); use backend onnx on a PC")
# low 32 bits of the DPUCZDX8G ISA1 B4096 fingerprint written by the Vitis AI 2.5 and 3.0 compilers
B4096_VAI25 = 0x16010407
B4096_VAI30 = 0x56010407


@dataclass(frozen=True)
class XmodelInfo:
    """What the graph says before anything is loaded on the DPU."""

    dpu_subgraphs: int
    cpu_ops: tuple[str, ...]
    fingerprint: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class DpuRuntime(Protocol):
    """The PYNQ/VART calls the backend makes; the tests put a VART-contract emulator here."""

    def default_bit(self) -> Path: ...

    def inspect(self, xmodel: Path) -> XmodelInfo: ...

    def load(self, xmodel: Path, bit: Path) -> None: ...

    def create_runner(self) -> Any: ...


def _spec(tensor: Any) -> TensorSpec:
    if not tensor.has_attr("fix_point"):
        raise ValueError(f"xmodel tensor '{tensor.name}' has no fix_point: is this a compiled DPU model?")
    return TensorSpec(tensor.name, tuple(int(d) for d in tensor.dims), int(tensor.get_attr("fix_point")),
                      str(tensor.dtype))


def dpu_subgraphs(graph: Any) -> list:
    """The child subgraphs of an xir graph that run on the DPU."""
    children = graph.get_root_subgraph().toposort_child_subgraph()
    return [s for s in children if s.has_attr("device") and s.get_attr("device").upper() == "DPU"]


def inspect_xmodel(xir: Any, xmodel: Path) -> XmodelInfo:
    """Read an xmodel's graph with xir (no DPU involved): DPU subgraphs, CPU ops, fingerprint, tensors."""
    graph = xir.Graph.deserialize(str(xmodel))
    dpu = dpu_subgraphs(graph)
    children = graph.get_root_subgraph().toposort_child_subgraph()
    cpu_ops = tuple(sorted({op.get_type() for s in children if s not in dpu for op in s.get_ops()}
                           - {"data", "data-fix", "const", "const-fix", "upload", "download"}))
    fingerprint = int(dpu[0].get_attr("dpu_fingerprint")) if dpu and dpu[0].has_attr("dpu_fingerprint") else None
    if len(dpu) != 1:
        return XmodelInfo(len(dpu), cpu_ops, fingerprint, (), ())
    return XmodelInfo(1, cpu_ops, fingerprint, tuple(_spec(t) for t in dpu[0].get_input_tensors()),
                      tuple(_spec(t) for t in dpu[0].get_output_tensors()))


class PynqDpuRuntime:
    """pynq_dpu's DpuOverlay and VART runners (imported only when the dpu backend is asked for)."""

    def __init__(self) -> None:
        try:
            import pynq_dpu
            import vart
            import xir
        except ImportError as e:
            raise ValueError(f"{NEEDS_PYNQ} ({e})") from e
        self._pynq_dpu, self._vart, self._xir = pynq_dpu, vart, xir
        self._overlay = None
        self._subgraph = None

    def default_bit(self) -> Path:
        return Path(self._pynq_dpu.__file__).resolve().parent / "dpu.bit"

    def inspect(self, xmodel: Path) -> XmodelInfo:
        return inspect_xmodel(self._xir, xmodel)

    def load(self, xmodel: Path, bit: Path) -> None:
        self._overlay = self._pynq_dpu.DpuOverlay(str(bit))
        self._overlay.load_model(str(xmodel))
        self._subgraph = dpu_subgraphs(self._overlay.graph)[0]

    def create_runner(self) -> Any:
        return self._vart.Runner.create_runner(self._subgraph, "run")


def check_overlay_files(bit: Path) -> None:
    """The overlay's .bit, .hwh and .xclbin must share name and folder."""
    missing = [str(bit.with_suffix(s)) for s in (".bit", ".hwh", ".xclbin") if not bit.with_suffix(s).is_file()]
    if missing:
        raise ValueError(f"overlay files missing: {', '.join(missing)} (a DPU overlay needs .bit, .hwh and "
                         "the .xclbin of the same name in one folder)")


def preflight(xmodel: Path, meta: ModelMeta, info: XmodelInfo) -> None:
    """Refuse, with the fix, every model the DPU would fail on or that does not match its metadata."""
    if info.dpu_subgraphs == 0:
        hint = (" This looks like the quantizer's _int.xmodel: compile it with vai_c_xir first"
                if xmodel.name.endswith("_int.xmodel") else " Compile it with vai_c_xir for the KV260 DPU")
        raise ValueError(f"{xmodel}: no DPU subgraph.{hint} (see model_prep/README.md).")
    if info.dpu_subgraphs > 1:
        raise ValueError(
            f"{xmodel}: {info.dpu_subgraphs} DPU subgraphs, pynq-dpu runs exactly one. Operators the DPU "
            f"cannot run split the graph: {', '.join(info.cpu_ops) or 'unknown'}. Use ReLU activations, keep "
            "decode out of the model (Detect returns raw heads) and re-quantize (model_prep/README.md)."
        )
    if info.fingerprint is not None and info.fingerprint & 0xFFFFFFFF == B4096_VAI30:
        raise ValueError(
            f"{xmodel}: compiled by Vitis AI 3.x (fingerprint {info.fingerprint:#x}); pynq-dpu 2.5.1 runs only "
            "Vitis AI 2.5 models and would kill this process. Recompile with the Vitis AI 2.5 docker."
        )
    if info.fingerprint is not None and info.fingerprint & 0xFFFFFFFF != B4096_VAI25:
        LOG.warning("%s: fingerprint %#x is not a Vitis AI 2.5 DPUCZDX8G B4096 build; it runs only on an "
                    "overlay built for the same DPU and Vitis AI 2.5", xmodel, info.fingerprint)
    expected_in = (1, *meta.input_hw, 3)
    if len(info.inputs) != 1 or info.inputs[0].shape != expected_in:
        raise ValueError(f"{xmodel}: input tensors {[t.shape for t in info.inputs]}, the metadata expects one "
                         f"{expected_in} (NHWC): use the metadata written for this model")
    match_heads([t.shape for t in info.outputs], meta)


class DpuBackend:
    """An xmodel on the DPU; ``worker()`` adds a runner on the same loaded model for another thread."""

    name = "dpu"

    def __init__(self, xmodel: str | Path, meta: ModelMeta, bit: str | Path | None = None,
                 runtime: DpuRuntime | None = None) -> None:
        runtime = runtime or PynqDpuRuntime()
        xmodel = Path(xmodel)
        if not xmodel.is_file():
            raise ValueError(f"xmodel not found: {xmodel} (compile one with model_prep, see model_prep/README.md)")
        bit = Path(bit) if bit else runtime.default_bit()
        check_overlay_files(bit)
        preflight(xmodel, meta, runtime.inspect(xmodel))
        runtime.load(xmodel, bit)
        self._runtime, self._meta = runtime, meta
        self._attach(runtime.create_runner())

    def _attach(self, runner: Any) -> None:
        inputs = [_spec(t) for t in runner.get_input_tensors()]
        outputs = tuple(_spec(t) for t in runner.get_output_tensors())
        if len(inputs) != 1:
            raise ValueError(f"the DPU runner has {len(inputs)} inputs; YOLOv5 has one")
        match_heads([t.shape for t in outputs], self._meta)
        self._runner = runner
        self.input_spec = inputs[0]
        self.output_specs = outputs

    def run(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None:
        """One DPU run: int8 NHWC in, int8 NHWC heads out in the runner's output order."""
        job_id, status = self._runner.execute_async([input_buffer], list(output_buffers))
        if status != 0:
            raise RuntimeError(f"DPU execute_async returned status {status}")
        self._runner.wait(job_id)

    def worker(self) -> DpuBackend:
        """Another runner on the loaded model, for another worker thread (runners serve one caller)."""
        other = object.__new__(DpuBackend)
        other._runtime, other._meta = self._runtime, self._meta
        other._attach(self._runtime.create_runner())
        return other

    def close(self) -> None:
        self._runner = None
