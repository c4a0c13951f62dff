"""DPU backend: a compiled xmodel on the KV260's DPU through pynq-dpu 2.5.1 (VART 2.5), int8 in and out.

Everything that can be checked without touching the DPU is checked before PYNQ, VART or xir is
imported: the xmodel's verdict (one DPU subgraph, Vitis AI 2.5, the overlay's fingerprint), its
tensors against the metadata, and the traps of pynq-dpu 2.5.1's own code (overlay lookup and xclbin
naming, the ``.xmodel`` suffix, root for ``/etc/vart.conf``, the PYNQ version). A model the DPU cannot
run does not fail politely: VART kills the Python process. Shapes and fix points come from the
runner's tensors, never from constants.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from yolov5_dpu_ros.core.backend import TensorSpec
from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads
from yolov5_dpu_ros.dpu.verdict import STOCK_FINGERPRINT, judge
from yolov5_dpu_ros.dpu.xmodel import XmodelInfo, read_xmodel

LOG = logging.getLogger(__name__)

NEEDS_PYNQ = ("the dpu backend needs PYNQ 3.0 with pynq-dpu 2.5.1 on a KV260 (run as root with the PYNQ "
              "venv: source /etc/profile.d/pynq_venv.sh); use backend onnx on a PC")
NEEDS_ROOT = ("the dpu backend must run as root: pynq-dpu's load_model rewrites /etc/vart.conf and copies the "
              "overlay's xclbin to /usr/lib (sudo -i, source /etc/profile.d/pynq_venv.sh, then start the node)")
OVERLAY_PARTS = (".bit", ".hwh")


class DpuRuntime(Protocol):
    """The PYNQ/VART calls the backend makes once its checks passed; tests put a VART-contract emulator here."""

    def load(self, xmodel: Path, bit: Path) -> Any: ...

    def create_runner(self) -> Any: ...


def pynq_dpu_folder() -> Path | None:
    """The installed pynq_dpu package's folder, found without importing it (which imports PYNQ and VART)."""
    spec = importlib.util.find_spec("pynq_dpu")
    return Path(spec.origin).parent if spec and spec.origin else None


def xclbin_pynq_dpu_wants(bit: Path) -> Path:
    """The xclbin pynq-dpu 2.5.1 copies for an overlay: ``basename.rstrip(".bit") + ".xclbin"``, its own rule."""
    return bit.parent / (bit.name.rstrip(".bit") + ".xclbin")


def resolve_overlay(bit: str | Path | None, package: Path | None) -> Path:
    """The overlay .bit as pynq-dpu finds it (as given, then inside the pynq_dpu package), with its .hwh and
    .xclbin checked, and names pynq-dpu would mangle refused."""
    if not bit and package is None:
        raise ValueError(NEEDS_PYNQ)
    given = Path(bit) if bit else Path("dpu.bit")
    if given.suffix != ".bit":
        raise ValueError(f"overlay '{given}' is not a .bit file: give the overlay's .bit (its .hwh and .xclbin of "
                         "the same name beside it)")
    found = given if given.is_file() else package / given if package and (package / given).is_file() else None
    if found is None:
        where = f" or in {package}" if package else ""
        raise ValueError(f"overlay not found: {given} (looked as given{where}); install pynq-dpu 2.5.1 "
                         "(pip3 install pynq-dpu==2.5.1 in the PYNQ venv) or give the path of a custom overlay")
    wanted = xclbin_pynq_dpu_wants(found)
    if wanted.name != found.stem + ".xclbin":
        raise ValueError(f"overlay name '{found.name}': pynq-dpu 2.5.1 strips the characters '.', 'b', 'i', 't' "
                         f"from the end of the name and would look for {wanted.name}; rename the .bit, .hwh and "
                         f".xclbin so the name before .bit ends in another character (e.g. {found.stem}_ov.bit)")
    missing = [str(found.with_suffix(s)) for s in (*OVERLAY_PARTS, ".xclbin") if not found.with_suffix(s).is_file()]
    if missing:
        raise ValueError(f"overlay files missing: {', '.join(missing)} (a DPU overlay needs .bit, .hwh and "
                         "the .xclbin of the same name in one folder)")
    return found


def check_tensors(info: XmodelInfo, meta: ModelMeta) -> None:
    """The model's input and heads must be the ones the metadata describes."""
    expected_in = (1, *meta.input_hw, 3)
    if len(info.inputs) != 1 or info.inputs[0].shape != expected_in:
        raise ValueError(f"{info.path}: input tensors {[t.shape for t in info.inputs]}, the metadata expects one "
                         f"{expected_in} (NHWC): use the metadata written for this model")
    match_heads([t.shape for t in info.outputs], meta)


def warn_pynq_version() -> None:
    """pynq-dpu 2.5.1 is made for PYNQ 3.0; PYNQ 3.1's XRT 2.17 is reported to break VART 2.5."""
    try:
        version = importlib.metadata.version("pynq")
    except importlib.metadata.PackageNotFoundError:
        return
    if not version.startswith("3.0"):
        LOG.warning("PYNQ %s: pynq-dpu 2.5.1 is made for PYNQ 3.0.x (PYNQ 3.1's XRT 2.17 is reported to break "
                    "VART 2.5 with a missing xclClose); if loading fails, use the Kria-PYNQ 3.0.1 image", version)


def preflight(xmodel: str | Path, meta: ModelMeta, bit: str | Path | None = None,
              fingerprint: int = STOCK_FINGERPRINT, allow_other_compiler: bool = False) -> tuple[XmodelInfo, Path]:
    """Every check of the model and the overlay files, before PYNQ is imported; returns the model's facts and
    the overlay to load. (Root and the PYNQ version are checked by the runtime, before the overlay.)"""
    xmodel = Path(xmodel)
    if xmodel.suffix != ".xmodel":
        raise ValueError(f"{xmodel}: pynq-dpu 2.5.1 loads only files named *.xmodel; rename it or give the "
                         "compiled .xmodel")
    info = read_xmodel(xmodel)
    verdict = judge(info, fingerprint, allow_other_compiler)
    verdict.check()
    for note in verdict.notes:
        LOG.warning(note)
    check_tensors(info, meta)
    return info, resolve_overlay(bit, pynq_dpu_folder())


def dpu_subgraphs(graph: Any) -> list:
    """The child subgraphs of an xir graph that run on the DPU."""
    children = graph.get_root_subgraph().toposort_child_subgraph()
    return [s for s in children if s.has_attr("device") and s.get_attr("device").upper() == "DPU"]


class PynqDpuRuntime:
    """pynq_dpu's DpuOverlay and VART runners (imported only after every check passed)."""

    def __init__(self) -> None:
        if pynq_dpu_folder() is None:
            raise ValueError(NEEDS_PYNQ)
        if os.geteuid() != 0:
            raise ValueError(NEEDS_ROOT)
        warn_pynq_version()
        try:
            import pynq_dpu
            import vart
        except ImportError as e:
            raise ValueError(f"{NEEDS_PYNQ} ({e})") from e
        self._pynq_dpu, self._vart = pynq_dpu, vart
        self._subgraph = None

    def load(self, xmodel: Path, bit: Path) -> Any:
        """Download the overlay and load the model; pynq-dpu's own runner serves the first worker."""
        overlay = self._pynq_dpu.DpuOverlay(str(bit))
        overlay.load_model(str(xmodel))
        self._subgraph = dpu_subgraphs(overlay.graph)[0]
        return overlay.runner

    def create_runner(self) -> Any:
        return self._vart.Runner.create_runner(self._subgraph, "run")


def _spec(tensor: Any) -> TensorSpec:
    if not tensor.has_attr("fix_point"):
        raise ValueError(f"xmodel tensor '{tensor.name}' has no fix_point: is this a compiled DPU model?")
    return TensorSpec(tensor.name, tuple(int(d) for d in tensor.dims), int(tensor.get_attr("fix_point")),
                      str(tensor.dtype))


class DpuBackend:
    """An xmodel on the DPU; ``worker()`` adds a runner on the same loaded model for another thread."""

    name = "dpu"

    def __init__(self, xmodel: str | Path, meta: ModelMeta, bit: str | Path | None = None,
                 fingerprint: int = STOCK_FINGERPRINT, allow_other_compiler: bool = False,
                 runtime: DpuRuntime | None = None) -> None:
        _, overlay = preflight(xmodel, meta, bit, fingerprint, allow_other_compiler)
        runtime = runtime or PynqDpuRuntime()
        self._runtime, self._meta = runtime, meta
        self._attach(runtime.load(Path(xmodel), overlay))

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
