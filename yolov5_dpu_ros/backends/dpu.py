"""DPU backend: a compiled xmodel on the KV260's DPU through pynq-dpu (2.5.1 on VART 2.5, or 3.5.0 on VART 3.5), int8
in and out.

Everything that can be checked without touching the DPU is checked before PYNQ, VART or xir is imported
(``dpu.board``): the board's DPU stack (``dpu.stacks``), the xmodel's verdict on it, its tensors against the
metadata, and the traps of pynq-dpu's own code (the same ``dpu.py`` in 2.5.1 and 3.5.0). A model the DPU cannot
run does not fail politely: VART kills the Python process. Shapes and fix points come from the runner's tensors,
never from constants, and outputs are matched to the metadata's strides by shape (VART lists them sorted by
tensor name).
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from yolov5_dpu_ros.core.backend import TensorSpec
from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads
from yolov5_dpu_ros.dpu.board import (
    NEEDS_PYNQ,
    NEEDS_ROOT,
    check_model,
    check_name,
    is_root,
    pynq_dpu_folder,
    pynq_version_note,
    pynq_version_ok,
    resolve_overlay,
)
from yolov5_dpu_ros.dpu.exclusive import DPU_LOCKS, busy_message, other_holders
from yolov5_dpu_ros.dpu.installed import resolve
from yolov5_dpu_ros.dpu.stacks import AUTO, DpuStack
from yolov5_dpu_ros.dpu.vart_conf import CORRECT as VART_CONF_LINE
from yolov5_dpu_ros.dpu.vart_conf import VART_CONF
from yolov5_dpu_ros.dpu.vart_conf import repair as repair_vart_conf
from yolov5_dpu_ros.dpu.xmodel import XmodelInfo

LOG = logging.getLogger(__name__)

VAI = "Xilinx/Vitis-AI tag v2.5, src/Vitis-AI-Runtime/VART/"
PYNQ_DPU = "pynq-dpu 2.5.1 sdist, pynq_dpu/dpu.py (unchanged in 3.5.0, DPU-PYNQ design_contest_3.5)"


@dataclass(frozen=True)
class VendorCall:
    """One call into PYNQ, pynq-dpu, VART or xir: the signature this backend relies on and where it was read."""

    call: str
    signature: str
    source: str


VENDOR_CALLS = (
    VendorCall("pynq_dpu.DpuOverlay", "DpuOverlay(bitfile_name: str, dtbo=None, download=True, ignore_version="
               "False, device=None): the .bit as given, else in the package folder; downloads it (always); copies "
               "bitfile.rstrip('.bit') + '.xclbin' to /usr/lib", PYNQ_DPU),
    VendorCall("pynq_dpu.dpu.check_vart_config", "check_vart_config(): reads /etc/vart.conf (FileNotFoundError when "
               "absent, IndexError on a first line without a space), then writes 'firmware: /usr/lib/dpu.xclbin'; "
               "called by load_model", PYNQ_DPU),
    VendorCall("VART device handle", "reads the xclbin named by /etc/vart.conf's firmware line when a runner opens "
               "the device; holds lockf(F_LOCK) on /tmp/DPU_<core> while the handle lives",
               VAI + "vart/xrt-device-handle/src/xrt_device_handle_imp.cpp, vart/util/src/file_lock_lnx.cpp"),
    VendorCall("pynq.Overlay", "Overlay(bitfile_name: str, ...): TypeError unless a str, the path made absolute, "
               "IOError('Bitstream file X does not exist.')", "PYNQ v3.0.1, pynq/bitstream.py Bitstream.__init__"),
    VendorCall("DpuOverlay.load_model", "load_model(model: str): rewrites /etc/vart.conf, RuntimeError unless "
               "*.xmodel, xir.Graph.deserialize, assert exactly one DPU subgraph, sets .runner = "
               "vart.Runner.create_runner(subgraph, 'run') and .graph", PYNQ_DPU),
    VendorCall("xir.Graph.get_root_subgraph", "get_root_subgraph() -> Subgraph",
               VAI + "xir/src/python/wrapper/wrapper.cpp"),
    VendorCall("xir.Subgraph.toposort_child_subgraph", "toposort_child_subgraph() -> list[Subgraph]; "
               "has_attr(str) -> bool, get_attr('device') -> str", VAI + "xir/src/python/wrapper/wrapper.cpp"),
    VendorCall("vart.Runner.create_runner", "create_runner(subgraph: xir.Subgraph, mode: str = '') -> Runner",
               VAI + "vart/runner/python/runner_py_module.cpp"),
    VendorCall("Runner.get_input_tensors", "get_input_tensors() / get_output_tensors() -> list[xir.Tensor], "
               "sorted by tensor name (get_sorted_output_tensors, TensorLexicographicalOrder)",
               VAI + "vart/dpu-runner/src/dpu_session_base_imp.cpp"),
    VendorCall("xir.Tensor", ".name: str, .dims: list[int], .dtype: str, has_attr('fix_point') -> bool, "
               "get_attr('fix_point') -> int (may be negative)", VAI + "xir/src/python/wrapper/wrapper.cpp"),
    VendorCall("Runner.execute_async", "execute_async(inputs: list[buffer], outputs: list[buffer]) -> tuple[int, int]"
               " (job_id, status); each buffer requested writable (read-only: ValueError); int8, float32 or "
               "int16, else a glog CHECK aborts the process; taken as a C-contiguous array of the tensor's "
               "element count, neither checked (other memory would be read or written); one caller per runner "
               "(DpuRunnerDdr CHECK(my_input_.empty()) aborts); on Zynq it blocks and returns (1, 0)",
               VAI + "vart/runner/python/runner_py_module.cpp, vart/dpu-runner/src/imp/dpu_runner_ddr.cpp"),
    VendorCall("Runner.wait", "wait(job: tuple[int, int]) -> int: the pair execute_async returned (a bare int "
               "raises pybind11's TypeError)", VAI + "vart/runner/python/runner_py_module.cpp"),
)


class DpuRuntime(Protocol):
    """The PYNQ/VART calls the backend makes once its checks passed; tests put a VART-contract emulator here.
    ``release`` gives a runner back; the last one given back releases the overlay (and with it the DPU)."""

    def load(self, xmodel: Path, bit: Path) -> Any: ...

    def create_runner(self) -> Any: ...

    def release(self, runner: Any) -> None: ...


def preflight(xmodel: str | Path, meta: ModelMeta, stack: DpuStack, bit: str | Path | None = None,
              fingerprint: int | None = None, allow_other_compiler: bool = False) -> tuple[XmodelInfo, Path]:
    """Every check of the model on ``stack`` and of the overlay files, before PYNQ is imported; returns the model's
    facts and the overlay to load. (Root and the PYNQ version are checked by the runtime, before the overlay.)"""
    info, notes = check_model(xmodel, meta, stack, fingerprint, allow_other_compiler)
    for note in notes:
        LOG.warning(note)
    return info, resolve_overlay(bit, pynq_dpu_folder())


def warn_pynq_version(stack: DpuStack) -> None:
    """Warn once at load when the installed PYNQ is not the one the stack's pynq-dpu is made for."""
    try:
        version = importlib.metadata.version("pynq")
    except importlib.metadata.PackageNotFoundError:
        return
    if not pynq_version_ok(version, stack):
        LOG.warning("PYNQ %s: %s", version, pynq_version_note(stack))


def dpu_subgraphs(graph: Any) -> list:
    """The child subgraphs of an xir graph that run on the DPU."""
    children = graph.get_root_subgraph().toposort_child_subgraph()
    return [s for s in children if s.has_attr("device") and s.get_attr("device").upper() == "DPU"]


class PynqDpuRuntime:
    """pynq_dpu's DpuOverlay and VART runners (imported only after every check passed). It holds the overlay for
    as long as a runner lives and lets go of everything when the last one is released: PYNQ's overlay sits in a
    reference cycle (its IP map) holding runner 0, so without that the XRT context and VART's DPU lock would
    outlive ``cleanup`` and the next ``configure`` would reprogram the FPGA beneath them."""

    def __init__(self, stack: DpuStack) -> None:
        if pynq_dpu_folder() is None:
            raise ValueError(NEEDS_PYNQ)
        if not is_root():
            raise ValueError(NEEDS_ROOT)
        holders = other_holders(DPU_LOCKS)
        if holders:
            raise ValueError(busy_message(holders))
        wrong = repair_vart_conf(VART_CONF)
        if wrong:
            LOG.warning("%s was %s; wrote '%s'", VART_CONF, wrong, VART_CONF_LINE)
        warn_pynq_version(stack)
        try:
            import pynq_dpu
            import vart
        except ImportError as e:
            raise ValueError(f"{NEEDS_PYNQ} ({e})") from e
        self._pynq_dpu, self._vart = pynq_dpu, vart
        self._overlay: Any = None
        self._subgraph: Any = None
        self._runners = 0

    def load(self, xmodel: Path, bit: Path) -> Any:
        """Download the overlay and load the model; pynq-dpu's own runner serves the first worker."""
        try:
            self._overlay = self._pynq_dpu.DpuOverlay(str(bit))
            self._overlay.load_model(str(xmodel))
            self._subgraph = dpu_subgraphs(self._overlay.graph)[0]
        except BaseException:
            self._let_go()
            raise
        self._runners = 1
        return self._overlay.runner

    def create_runner(self) -> Any:
        runner = self._vart.Runner.create_runner(self._subgraph, "run")
        self._runners += 1
        return runner

    def release(self, runner: Any) -> None:
        self._runners -= 1
        if self._runners <= 0:
            self._let_go()

    def _let_go(self) -> None:
        if self._overlay is not None:
            self._overlay.runner = self._overlay.graph = None
        self._overlay = self._subgraph = None
        gc.collect()  # the overlay's reference cycle: the XRT context and the DPU lock go now, not later


def _spec(tensor: Any) -> TensorSpec:
    if not tensor.has_attr("fix_point"):
        raise ValueError(f"xmodel tensor '{tensor.name}' has no fix_point: is this a compiled DPU model?")
    return TensorSpec(tensor.name, tuple(int(d) for d in tensor.dims), int(tensor.get_attr("fix_point")),
                      str(tensor.dtype))


def check_buffer(buffer: np.ndarray, spec: TensorSpec, what: str) -> None:
    """A buffer VART can take for ``spec`` as it is: VART checks none of this and would abort the process or
    read and write other memory (see ``VENDOR_CALLS``)."""
    problems = [text for bad, text in (
        (buffer.dtype != np.int8, f"dtype {buffer.dtype}, not int8"),
        (tuple(buffer.shape) != tuple(spec.shape), f"shape {tuple(buffer.shape)}, the tensor is {spec.shape}"),
        (not buffer.flags.c_contiguous, "not C-contiguous (VART ignores strides)"),
        (not buffer.flags.writeable, "read-only (VART requests every buffer writable)"),
    ) if bad]
    if problems:
        raise ValueError(f"DPU {what} buffer for tensor '{spec.name}': {'; '.join(problems)}: allocate it with "
                         "allocate_outputs / the pre-processor's own buffer")


class DpuBackend:
    """One VART runner on a loaded xmodel. ``load`` checks and loads the model; ``worker()`` adds a runner on
    the same loaded model for another thread (a runner serves one caller)."""

    name = "dpu"

    def __init__(self, runner: Any, meta: ModelMeta, runtime: DpuRuntime) -> None:
        inputs = [_spec(t) for t in runner.get_input_tensors()]
        outputs = tuple(_spec(t) for t in runner.get_output_tensors())
        if len(inputs) != 1:
            raise ValueError(f"the DPU runner has {len(inputs)} inputs; a YOLO detector has one")
        match_heads([t.shape for t in outputs], meta, [t.name for t in outputs])
        self._runner: Any = runner
        self._runtime, self._meta = runtime, meta
        self.input_spec = inputs[0]
        self.output_specs = outputs
        self._checked: tuple[np.ndarray, ...] = ()

    @classmethod
    def load(cls, xmodel: str | Path, meta: ModelMeta, bit: str | Path | None = None, dpu_runtime: str = AUTO,
             fingerprint: int | None = None, allow_other_compiler: bool = False,
             runtime: DpuRuntime | None = None) -> DpuBackend:
        """Check the model on the stack ``dpu_runtime`` names ('auto': the board's, ``dpu.installed``) and the
        overlay before PYNQ is imported, then load it; the first runner."""
        check_name(xmodel)
        stack = resolve(dpu_runtime)
        _, overlay = preflight(xmodel, meta, stack, bit, fingerprint, allow_other_compiler)
        runtime = runtime or PynqDpuRuntime(stack)
        return cls(runtime.load(Path(xmodel), overlay), meta, runtime)

    def _check_buffers(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None:
        """Check the caller's buffers once, when they first come (callers allocate them once per worker)."""
        given = (input_buffer, *output_buffers)
        if len(given) == len(self._checked) and all(a is b for a, b in zip(given, self._checked)):
            return
        if len(output_buffers) != len(self.output_specs):
            raise ValueError(f"{len(output_buffers)} output buffers for {len(self.output_specs)} DPU output tensors")
        check_buffer(input_buffer, self.input_spec, "input")
        for buffer, spec in zip(output_buffers, self.output_specs):
            check_buffer(buffer, spec, "output")
        self._checked = given

    def run(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None:
        """One DPU run: int8 NHWC in, int8 NHWC heads out in the runner's output order."""
        self._check_buffers(input_buffer, output_buffers)
        job = self._runner.execute_async([input_buffer], list(output_buffers))
        if job[1] != 0:
            raise RuntimeError(f"DPU execute_async returned status {job[1]} (job {job[0]})")
        status = self._runner.wait(job)
        if status != 0:
            raise RuntimeError(f"DPU wait returned status {status} (job {job[0]})")

    def worker(self) -> DpuBackend:
        """Another runner on the loaded model, for another worker thread (runners serve one caller)."""
        return DpuBackend(self._runtime.create_runner(), self._meta, self._runtime)

    def close(self) -> None:
        """Give the runner back (the last one releases the overlay and the DPU); closing twice is harmless."""
        runner, self._runner, self._checked = self._runner, None, ()
        if runner is not None:
            self._runtime.release(runner)
