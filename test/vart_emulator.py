"""TEST DOUBLE for the KV260 DPU, used only where the hardware is absent (these machines, CI, benchmarks).

It behaves as the vendor calls listed in ``yolov5_dpu_ros.backends.dpu.VENDOR_CALLS`` are read from their
sources (Vitis AI 2.5's VART, PYNQ 3.0.1, pynq-dpu 2.5.1). The runner's ``execute_async`` and ``wait`` are
those of ``vart_binding/runner_standin.cpp``, a pybind11 module compiled at test time that converts
arguments as VART's binding does (``wait`` takes the ``(job_id, status)`` pair, buffers are requested
writable, formats other than int8/float32/int16, wrong element counts and non-contiguous buffers raise
``WouldAbort``: on the board the process would abort or other memory would be read or written). Above it,
this module keeps the runtime's behaviour: tensors listed sorted by name (``get_sorted_output_tensors``),
``execute_async`` blocks for the whole run and returns ``(1, 0)`` (``DpuRunnerDdr`` on Zynq boards), a
second caller on a busy runner is ``WouldAbort`` (``CHECK(my_input_.empty())``), float32 buffers are
converted as ``tensor_buffer.cpp`` does (input truncated toward zero, unclamped; output int8 * 2^-fix), and
like a one-core B4096 DPU it runs one job at a time across all runners, queued on a timeline of the core.
Underneath it runs the raw-head ONNX model with the tensors' fix points (int8 in, int8 out), then sleeps
until its booked end (a fixed accelerator latency) with the GIL released.
``emulated_platform`` builds the modules pynq-dpu 2.5.1's real ``dpu.py`` imports (``pynq`` with its
``Overlay``, ``vart``, ``xir``) on top of the same emulator, so that code runs unchanged in the tests.
It is never part of the shipped package.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
import types
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import vart_binding
from xmodel_writer import write_xmodel

from yolov5_dpu_ros.core.backend import TensorSpec
from yolov5_dpu_ros.core.model_meta import ModelMeta
from yolov5_dpu_ros.dpu.stacks import STACKS
from yolov5_dpu_ros.dpu.xmodel import read_xmodel


class EmulatedTensor:
    """An xir.Tensor as VART hands it out."""

    def __init__(self, spec: TensorSpec) -> None:
        self.name = spec.name
        self.dims = list(spec.shape)
        self.ndim = len(spec.shape)
        self.dtype = "xint8"
        self._attrs = {"fix_point": spec.fix_point}

    def has_attr(self, key: str) -> bool:
        return key in self._attrs

    def get_attr(self, key: str):
        return self._attrs[key]

    def get_data_size(self) -> int:
        return int(np.prod(self.dims))


def binding():
    """The compiled binding stand-in; the tests that need it skip with the reason where it cannot be built."""
    try:
        return vart_binding.load()
    except vart_binding.BindingUnavailableError as e:
        pytest.skip(str(e))


def _as_int8(buffer: np.ndarray, fix_point: int) -> np.ndarray:
    """A buffer as the DPU sees it: int8 as given, float32 as VART converts it ((int8_t)(x * 2^fix))."""
    if buffer.dtype == np.int8:
        return buffer
    return np.trunc(buffer * 2.0**fix_point).astype(np.int64).astype(np.int8)


def make_runner_class():
    """``EmulatedRunner``: the binding stand-in's Runner with the runtime's behaviour above it."""

    class EmulatedRunner(binding().Runner):
        """One vart.Runner: one caller at a time; jobs serialised on the shared DPU core."""

        def __init__(self, dpu: EmulatedDpu) -> None:
            super().__init__([int(np.prod(dpu.input.shape))], [int(np.prod(s.shape)) for s in dpu.outputs])
            self._dpu = dpu
            self._busy = threading.Lock()

        def get_input_tensors(self) -> list[EmulatedTensor]:
            return [EmulatedTensor(self._dpu.input)]

        def get_output_tensors(self) -> list[EmulatedTensor]:
            return [EmulatedTensor(s) for s in self._dpu.outputs]

        def run_job(self, inputs: list, outputs: list) -> int:
            """Called by the stand-in's execute_async once the arguments passed its conversions."""
            if not self._busy.acquire(blocking=False):
                raise binding().WouldAbort("Check failed: my_input_.empty() (a VART runner serves one caller)")
            try:
                ins = [np.asarray(b) for b in inputs]
                outs = [np.asarray(b) for b in outputs]
                specs = self._dpu.outputs
                heads = [o if o.dtype == np.int8 else np.empty(s.shape, np.int8) for o, s in zip(outs, specs)]
                started = time.perf_counter()
                self._dpu.compute(_as_int8(ins[0], self._dpu.input.fix_point).reshape(self._dpu.input.shape),
                                  [h.reshape(s.shape) for h, s in zip(heads, self._dpu.outputs)])
                for o, h, s in zip(outs, heads, self._dpu.outputs):
                    if o.dtype != np.int8:
                        o.reshape(s.shape)[...] = h.reshape(s.shape) * 2.0**-s.fix_point
                done = self._dpu.schedule(started, max(self._dpu.latency_s, time.perf_counter() - started))
                time.sleep(max(0.0, done - time.perf_counter()))
                return 0
            finally:
                self._busy.release()

    return EmulatedRunner


class EmulatedDpu:
    """The ``DpuRuntime`` of the dpu backend, emulated: overlay load and runners of one model."""

    def __init__(self, onnx_path: Path | None, meta: ModelMeta, latency_s: float = 0.0,
                 input_fix_point: int | None = None, output_fix_points: Sequence[int] | None = None,
                 output_names: Sequence[str] | None = None,
                 compute: Callable[[np.ndarray, Sequence[np.ndarray]], None] | None = None) -> None:
        from yolov5_dpu_ros.backends.onnx import OnnxBackend

        fps = list(output_fix_points or meta.output_fix_points)
        names = list(output_names or (f"head_s{s}_fix" for s in meta.strides))
        self.meta = meta
        self.input = TensorSpec("images_fix", (1, *meta.input_hw, 3),
                                meta.input_fix_point if input_fix_point is None else input_fix_point)
        levels = sorted(range(len(meta.strides)), key=names.__getitem__)  # VART lists tensors by name
        self.outputs = tuple(TensorSpec(names[lv], meta.head_shape(lv), fps[lv]) for lv in levels)
        self.latency_s = latency_s
        self.stack = STACKS["2.5"]  # pynq-dpu 2.5.1 on VART 2.5, whose sources these doubles follow
        self.fingerprint = self.stack.fingerprint  # the overlay's DPU
        self.compute = compute or self._run_onnx
        if compute is None:  # the model itself runs underneath; a given compute replaces it (benchmarks)
            self._onnx = OnnxBackend(onnx_path, meta.with_fix_points(self.input.fix_point, fps))
            self._onnx_order = [next(i for i, s in enumerate(self._onnx.output_specs) if s.shape == o.shape)
                                for o in self.outputs]
        self._timeline = threading.Lock()
        self._core = threading.Lock()  # the DPU core computes one job at a time (and the ONNX backend has one caller)
        self._free_at = 0.0
        self.loaded: list[tuple[Path, Path]] = []
        self.overlays: list[str] = []
        self.runners: list = []  # weak references: the runners the runtime created, alive or not
        self.overlay_refs: list = []  # weak references to the emulated PYNQ overlays
        self.board: EmulatedBoard | None = None  # vart.conf, /usr/lib and /tmp/DPU_0, where a test gives them
        self.firmware: list[bytes] = []  # the xclbin each device handle loaded
        self._handle: DeviceHandle | None = None
        self._runner_class = make_runner_class()

    def live_overlays(self) -> int:
        return sum(ref() is not None for ref in self.overlay_refs)

    def live_runners(self) -> list:
        return [r for ref in self.runners if (r := ref()) is not None]

    def handles_open(self) -> int:
        return int(self._handle is not None and self._handle.open)

    def _run_onnx(self, input_buffer: np.ndarray, output_buffers: Sequence[np.ndarray]) -> None:
        """The model on ONNX Runtime, one job at a time: the OnnxBackend underneath keeps its own buffers, and two
        runners calling it at once mixed each other's outputs (a CI run: 1,871 of 12,000 values off by one)."""
        heads = [np.empty(s.shape, np.int8) for s in self._onnx.output_specs]
        with self._core:
            self._onnx.run(input_buffer, heads)
        for out, i in zip(output_buffers, self._onnx_order, strict=True):
            out[...] = heads[i]

    def schedule(self, requested: float, duration: float) -> float:
        """Book one job on the single DPU core: it starts when requested or when the core frees up,
        whichever is later (as the hardware queues runs, without waiting on any Python thread)."""
        with self._timeline:
            start = max(requested, self._free_at)
            self._free_at = start + duration
            return self._free_at

    def write_xmodel(self, path: Path, **kwargs) -> Path:
        """An xmodel file whose DPU tensors are this emulator's (``kwargs`` go to ``xmodel_bytes``)."""
        outputs = [(s.name, s.shape, s.fix_point) for s in self.outputs]
        return write_xmodel(path, self.input.shape, self.input.fix_point, outputs, **kwargs)

    def load(self, xmodel: Path, bit: Path):
        """Load as VART would: a model for another DPU fails its fingerprint CHECK, which aborts the process."""
        model = {c.fingerprint for c in read_xmodel(xmodel).dpu}
        if model != {self.fingerprint}:
            raise binding().WouldAbort(f"CHECK fingerprint fail: model {model} dpu {self.fingerprint:#x}")
        self.loaded.append((xmodel, bit))
        return self.create_runner()

    def create_runner(self):
        """A runner on the device: the first one opens the device handle (VART reads vart.conf, loads the xclbin
        it names and takes the DPU lock); the handle lives while any runner does."""
        if self._handle is None or not self._handle.open:
            self._handle = DeviceHandle(self.board, self.firmware)
        runner = self._runner_class(self)
        runner.handle = self._handle  # a runner keeps its device handle alive (shared_ptr in VART)
        self._handle.users += 1
        weakref.finalize(runner, self._handle.drop)
        self.runners.append(weakref.ref(runner))
        return runner

    def release(self, runner) -> None:
        """The runtime gives a runner back: the emulator only lets go of it, as dropping VART's runner does."""


@dataclass(frozen=True)
class EmulatedBoard:
    """The board's files VART and pynq-dpu touch, redirected into a test folder: /etc/vart.conf, /usr/lib and the
    folder of VART's DPU lock files (/tmp)."""

    vart_conf: Path
    usr_lib: Path
    locks: Path

    def host_path(self, board_path: str) -> Path:
        """A /usr/lib path as VART reads it on the board, inside the test folder."""
        return self.usr_lib / Path(board_path).relative_to("/usr/lib")


class DeviceHandle:
    """VART's XRT device handle as Vitis AI 2.5 opens it on a Zynq board (xrt_device_handle_imp.cpp,
    file_lock_lnx.cpp, as issue #34's review of those files states them; not re-read here): the xclbin is the
    one /etc/vart.conf's ``firmware:`` line names (a missing file aborts),
    and ``lockf(F_LOCK)`` on /tmp/DPU_0 is held until the handle goes."""

    def __init__(self, board: EmulatedBoard | None, firmware: list[bytes]) -> None:
        self.open, self.users, self._fd = True, 0, None
        if board is None:
            return
        text = board.vart_conf.read_text() if board.vart_conf.is_file() else ""
        found = re.search(r"^\s*firmware\s*:\s*(\S+)", text, re.M)  # read here, not with the package's parser
        named = found.group(1) if found else None
        xclbin = board.host_path(named) if named and named.startswith("/usr/lib/") else None
        if xclbin is None or not xclbin.is_file():
            raise binding().WouldAbort(f"xclbin {named} not found (vart.conf): VART's device handle aborts")
        firmware.append(xclbin.read_bytes())
        self._fd = os.open(board.locks / "DPU_0", os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # VART blocks here; a test must never wait

    def drop(self) -> None:
        self.users -= 1
        if self.users == 0 and self.open:
            self.open = False
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the lockf lock


def overlay_files(folder: Path, name: str = "dpu", parts=(".bit", ".hwh", ".xclbin")) -> Path:
    """Placeholder overlay files, each holding its own path, so a test can tell which design's xclbin VART
    loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in parts:
        (folder / f"{name}{suffix}").write_text(str(folder / f"{name}{suffix}"))
    return folder / f"{name}.bit"


def emulated_backend(dpu: EmulatedDpu, folder: Path, meta: ModelMeta | None = None):
    """A DpuBackend on the emulator: a matching xmodel and overlay files written into ``folder``."""
    from yolov5_dpu_ros.backends.dpu import DpuBackend

    folder.mkdir(parents=True, exist_ok=True)
    xmodel = dpu.write_xmodel(folder / "model.xmodel")
    return DpuBackend.load(xmodel, meta or dpu.meta, bit=overlay_files(folder / "overlay"), dpu_runtime=dpu.stack.name,
                           runtime=dpu)


class _EmulatedSubgraph:
    """An xir.Subgraph as pynq-dpu uses it: attributes and the root's children."""

    def __init__(self, attrs: dict, children: Sequence[_EmulatedSubgraph] = ()) -> None:
        self._attrs, self._children = attrs, list(children)
        self.is_leaf = not children

    def has_attr(self, key: str) -> bool:
        return key in self._attrs

    def get_attr(self, key: str):
        return self._attrs[key]

    def toposort_child_subgraph(self) -> list:
        return self._children


class _EmulatedGraph:
    def __init__(self, path: str) -> None:
        info = read_xmodel(path)
        self._root = _EmulatedSubgraph({}, [_EmulatedSubgraph({"device": c.device}) for c in info.children])

    def get_root_subgraph(self) -> _EmulatedSubgraph:
        return self._root


def emulated_platform(dpu: EmulatedDpu) -> dict[str, types.ModuleType]:
    """``pynq``, ``vart`` and ``xir`` modules for pynq-dpu's real dpu.py, backed by ``dpu``.

    ``pynq.Overlay`` records the bitstream and calls ``download()`` as PYNQ's does; ``xir`` reads the
    graph with the package's xmodel reader; ``vart.Runner.create_runner`` hands out emulated runners.
    """

    class Overlay:
        """PYNQ 3.0.1's Overlay as far as pynq-dpu uses it (pynq/bitstream.py ``Bitstream.__init__``): a str
        name only, made absolute, the file must exist; downloaded on every construction (pynq-dpu never passes
        download=False); held in a reference cycle with its IP map (pynq/overlay.py), so only the cycle
        collector frees it, and what it holds (pynq-dpu's ``overlay.runner``) with it."""

        def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False, device=None,
                     gen_cache=False):
            if not isinstance(bitfile_name, str):
                raise TypeError("Bitstream name has to be a string.")
            path = os.path.abspath(bitfile_name)
            if not os.path.isfile(path):
                raise OSError(f"Bitstream file {bitfile_name} does not exist.")
            self.bitfile_name = path
            self._ip_map = {"overlay": self}  # PYNQ's overlay and its IP map refer to each other: a reference cycle
            dpu.overlays.append(self.bitfile_name)
            dpu.overlay_refs.append(weakref.ref(self))
            if download:
                self.download()

        def download(self):
            pass

    def create_runner(subgraph, mode=""):
        if not isinstance(subgraph, _EmulatedSubgraph) or not isinstance(mode, str):
            raise TypeError("create_runner(): incompatible function arguments (xir.Subgraph, str)")
        if subgraph.get_attr("device") != "DPU":
            raise binding().WouldAbort("create_runner on a subgraph that is not a DPU subgraph")
        return dpu.create_runner()

    pynq = types.ModuleType("pynq")
    pynq.Overlay = Overlay
    pynq.__version__ = "3.0.1"
    vart = types.ModuleType("vart")
    vart.Runner = types.SimpleNamespace(create_runner=create_runner)
    xir = types.ModuleType("xir")
    xir.Graph = types.SimpleNamespace(deserialize=_EmulatedGraph)
    return {"pynq": pynq, "vart": vart, "xir": xir}
