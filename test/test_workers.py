"""Building N workers on one model (``core.workers.build_detectors``), and what a failure there tells the user
(``dpu.board.explain``): the k-th part failing closes everything built before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from yolov5_dpu_ros.backends import OnnxSpec
from yolov5_dpu_ros.backends.onnx import OnnxBackend
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.dpu.board import NEEDS_ROOT, explain

pytestmark = pytest.mark.needs("onnxruntime")


@dataclass
class Recorder:
    """A spec around the real onnx backend whose k-th runner raises ``error`` (as a DPU runtime might)."""

    error: BaseException | None
    fail_at: int  # 0: the first open, 1: the second runner, ...
    name: str = "onnx"
    model: Path = DEMO_ONNX
    made: list = field(default_factory=list)
    closed: list = field(default_factory=list)

    def _track(self, backend: OnnxBackend) -> OnnxBackend:
        index = len(self.made)
        if index == self.fail_at and self.error is not None:
            raise self.error
        self.made.append(backend)
        close, worker = backend.close, backend.worker
        backend.close = lambda: (self.closed.append(index), close())
        backend.worker = lambda: self._track(worker())
        return backend

    def open(self, meta, workers):
        return self._track(OnnxSpec(self.model).open(meta, workers))


@pytest.mark.parametrize("error", [RuntimeError("DPU timeout"), AssertionError(), PermissionError("/etc/vart.conf")])
@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_the_kth_failure_closes_everything_built_before_it(error, fail_at):
    spec = Recorder(error, fail_at)
    with pytest.raises(type(error)):
        build_detectors(spec, DEMO_META, workers=3)
    assert len(spec.made) == fail_at and sorted(spec.closed) == list(range(fail_at))


def test_bad_metadata_fails_before_any_model_is_opened(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_size: [320, 320]\n")
    spec = Recorder(None, -1)
    with pytest.raises(ValueError, match="missing keys"):
        build_detectors(spec, bad, workers=2)
    assert spec.made == []


def test_n_workers_each_with_their_own_backend():
    spec = Recorder(None, -1)
    detectors = build_detectors(spec, DEMO_META, workers=3)
    assert len({id(d.backend) for d in detectors}) == 3 and len(spec.made) == 3
    with pytest.raises(ValueError, match="workers must be in"):
        build_detectors(spec, DEMO_META, workers=9)


@pytest.mark.parametrize("error,expected", [
    (ValueError("overlay not found: x.bit; install pynq-dpu"), "^overlay not found: x.bit; install pynq-dpu$"),
    (RuntimeError("xrt: device busy"), "^RuntimeError: xrt: device busy; the DPU runtime .* yolov5-dpu doctor"),
    (AssertionError(), "^AssertionError; pynq-dpu's load_model asserts exactly one DPU subgraph"),
    (PermissionError(13, "Permission denied", "/etc/vart.conf"), "^PermissionError: .*vart.conf.*must run as root"),
    (ImportError("libvart-runner.so.2"), "^ImportError: libvart-runner.so.2; the dpu backend needs PYNQ 3.0"),
])
def test_a_failure_is_explained_with_its_type_message_and_fix(error, expected):
    import re

    assert re.search(expected, explain(error)), explain(error)
    assert NEEDS_ROOT in explain(PermissionError("x"))
