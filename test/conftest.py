"""Shared fixtures: the YOLOv5 reference and a ReLU yolov5n exported to a raw-head ONNX."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from yolov5_dpu_ros.core.model_meta import ModelMeta, load_meta, save_meta

DATA = Path(__file__).parent / "data"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "needs(*modules): skip with the reason where one of these is not installed")
    config.addinivalue_line("markers", "integration: runs the detector over a whole sequence or demo set (in the "
                                       "suite; left out of mutation runs, where it costs a detector pass per mutant)")


STRICT = "YOLOV5_DPU_STRICT_SKIPS"  # set by .ci/run: a skip for a missing reference or fixture fails the run
ROS_ONLY = ("rclpy", "vision_msgs", "sensor_msgs", "message_filters", "diagnostic_updater", "tf2_ros", "launch_testing")
_SKIPS: Counter = Counter()


def pytest_runtest_logreport(report) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        _SKIPS[str(report.longrepr[2]).removeprefix("Skipped: ")] += 1


def _unexpected_skips() -> list[str]:
    """Skips other than the rclpy tests' (no ROS 2 here): a reference, a tool or a fixture that is missing."""
    return [reason for reason in _SKIPS if not any(reason.startswith(f"{name} ") for name in ROS_ONLY)]


def pytest_terminal_summary(terminalreporter) -> None:
    """One line saying what skipped and why; with YOLOV5_DPU_STRICT_SKIPS=1, a line naming what is missing."""
    if _SKIPS:
        terminalreporter.write_line("skipped: " + "; ".join(f"{n} × {reason}" for reason, n in _SKIPS.most_common()))
    if os.environ.get(STRICT) == "1" and _unexpected_skips():
        terminalreporter.write_line(f"{STRICT}: these tests must run here, their references or fixtures are missing: "
                                    + "; ".join(_unexpected_skips()), red=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get(STRICT) == "1" and _unexpected_skips() and exitstatus == 0:
        session.exitstatus = 1


def pytest_runtest_setup(item) -> None:
    """Optional dependencies are checked test by test (before any fixture), never when a module is imported:
    launch_testing's plugin imports every test module while collecting, and one skip there ends the session."""
    for marker in item.iter_markers("needs"):
        for name in marker.args:
            pytest.importorskip(name, reason=f"{name} is not installed here")


def _reference(module: str):
    """A reference implementation's ``load()`` from one of the tests' helper modules; skips the test saying why
    where torch or the reference is not installed."""
    import importlib

    pytest.importorskip("torch")
    try:
        return importlib.import_module(module).load()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def yolo_ref():
    """The YOLOv5 reference implementation (yolov5_reference.py)."""
    return _reference("yolov5_reference")


@pytest.fixture(scope="session")
def ultra():
    """Ultralytics, the YOLOv8 reference (ultralytics_reference.py)."""
    return _reference("ultralytics_reference")


def random_bgr(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour image with some structure (not uniform noise)."""
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    import cv2

    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 21, img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def batch_norm_from(model, images) -> None:
    """Batch-norm statistics of exactly these images (NCHW float), then eval mode: a randomly initialised network's
    activations then follow its inputs instead of drifting layer by layer."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()


def liven(model, seed: int) -> None:
    """Make a randomly initialised model answer like a trained one: a freshly built ReLU network's
    activations shrink layer by layer and YOLOv5's prior biases keep objectness near 0.001, so no anchor
    would ever fire. Batch-norm statistics are set from random images and the Detect convs are re-drawn
    (fixed seed) with objectness centred at sigmoid(-2), so outputs follow the image content."""
    import torch

    rng = np.random.default_rng(seed)
    images = np.stack([random_bgr(rng, 320, 320) for _ in range(8)])
    batch_norm_from(model, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    torch.manual_seed(seed)
    head = model.model[-1]
    for conv in head.m:
        torch.nn.init.normal_(conv.weight, std=2.0 / conv.weight.shape[1] ** 0.5)
        with torch.no_grad():
            conv.bias.zero_()
            conv.bias.view(head.na, -1)[:, 4] = -2.0


def export_test_model(yolo_ref, tmp: Path, input_hw=(320, 320), nc=80, seed=0) -> tuple[Path, ModelMeta, object]:
    """yolov5n from its yaml with ReLU, random init, raw-head ONNX + metadata with calibrated fix points.

    Built once per set of arguments and sources, then taken from a cache (the export takes seconds, and a mutation
    run sets this fixture up once per mutant): the ONNX, its metadata and the torch weights, written to a temporary
    folder and renamed into place, so a half-written entry is never read."""
    import hashlib
    import shutil

    import torch

    from model_prep import yolov5_model as ym

    sources = [Path(__file__), *sorted((Path(__file__).parents[1] / "model_prep").glob("*.py"))]
    key = hashlib.sha256(repr((input_hw, nc, seed, torch.__version__, yolo_ref.models_dir)).encode()
                         + b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    entry = Path.home() / ".cache" / "yolov5_dpu_ros" / "test-models" / key
    name = f"yolov5n_relu_{input_hw[0]}x{input_hw[1]}_{nc}"
    if not (entry / "weights.pt").is_file():
        entry.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=entry.parent))
        model = _build_test_model(yolo_ref, building / f"{name}.onnx", input_hw, nc, seed)
        torch.save(model.state_dict(), building / "weights.pt")
        try:
            building.rename(entry)
        except OSError:  # another process put the same entry in place first
            shutil.rmtree(building, ignore_errors=True)
    for suffix in (".onnx", ".yaml"):
        shutil.copyfile(entry / f"{name}{suffix}", tmp / f"{name}{suffix}")
    yolo = ym.yolov5_modules()
    model = ym.build_model(Path(yolo_ref.models_dir) / "yolov5n.yaml", yolo, nc=nc, seed=seed)
    ym.use_raw_heads(model, yolo)
    model.load_state_dict(torch.load(entry / "weights.pt"))
    model.eval()
    return tmp / f"{name}.onnx", load_meta(tmp / f"{name}.yaml"), model


def _build_test_model(yolo_ref, onnx_path: Path, input_hw, nc, seed):
    from model_prep import yolov5_model as ym
    from model_prep.calibrate import calibrate_heads

    yolo = ym.yolov5_modules()
    model = ym.build_model(Path(yolo_ref.models_dir) / "yolov5n.yaml", yolo, nc=nc, seed=seed)
    ym.check_dpu_activations(model)
    ym.use_raw_heads(model, yolo)
    liven(model, seed)
    ym.export_raw_onnx(model, input_hw, onnx_path)
    meta = ym.model_meta(model, yolo, input_hw, input_fix_point=7)

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    images = [random_bgr(rng, 240, 320) for _ in range(4)]
    fps = calibrate_heads(lambda x: session.run(None, {"images": x}), images, input_hw)
    meta = meta.with_fix_points(7, fps)
    save_meta(meta, onnx_path.with_suffix(".yaml"))
    return model



@pytest.fixture(scope="session")
def test_model(yolo_ref, tmp_path_factory):
    """(onnx path, metadata, torch model) of a 320x320, 80-class ReLU yolov5n."""
    return export_test_model(yolo_ref, tmp_path_factory.mktemp("model"))


FIXTURE_XMODELS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "xmodels"


@pytest.fixture(scope="session")
def real_xmodels() -> Path:
    """The real compiled KV260 xmodels of ../shared/fixtures/xmodels (skips where that folder is absent)."""
    if not (FIXTURE_XMODELS / "yolox_nano_b4096_vai25.xmodel").is_file():
        pytest.skip(f"the real xmodel fixtures are not here ({FIXTURE_XMODELS}): they come with the project's "
                    "shared/ folder beside the checkout")
    return FIXTURE_XMODELS


def _reference_folder(name: str, package: str) -> Path:
    """A reference source's package folder from the cache (reference_sources), or skip with the reason."""
    import reference_sources

    try:
        return getattr(reference_sources, name).folder() / package
    except reference_sources.SourceUnavailableError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def pynq_dpu_source() -> Path:
    """pynq-dpu 2.5.1's own source folder (``pynq_dpu/dpu.py``, the YOLOv3 notebook and its VOC names)."""
    return _reference_folder("PYNQ_DPU", "pynq_dpu")


@pytest.fixture(scope="session")
def yolox_source() -> Path:
    """Megvii's YOLOX 0.3.0 source folder (``yolox/data/data_augment.py``, ``yolox/utils/demo_utils.py``)."""
    return _reference_folder("YOLOX", "yolox")
