"""The dpu backend on a VART-contract emulator (TEST DOUBLE: no KV260 here; see vart_emulator.py)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from vart_emulator import EmulatedDpu, overlay_files

from demo.shapes import make_sample
from yolov5_dpu_ros.backends import make_backend
from yolov5_dpu_ros.backends.dpu import NEEDS_PYNQ, DpuBackend
from yolov5_dpu_ros.backends.onnx import OnnxBackend
from yolov5_dpu_ros.cli import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.detector import Detector
from yolov5_dpu_ros.model_meta import load_meta


@pytest.fixture()
def meta():
    return load_meta(DEMO_META)


@pytest.fixture()
def xmodel(tmp_path):
    path = tmp_path / "shapes.xmodel"
    path.write_bytes(b"emulated")
    return path


@pytest.fixture()
def bit(tmp_path):
    return overlay_files(tmp_path / "overlay")


def _emulator(meta, bit, **kwargs):
    return EmulatedDpu(DEMO_ONNX, meta, bit, **kwargs)


def _detect(backend, meta, image):
    return Detector(backend, meta).detect(image)[0]


def test_without_pynq_one_clear_line(meta, xmodel):
    with pytest.raises(ValueError) as e:
        make_backend("dpu", meta, xmodel)
    assert str(e.value).startswith(NEEDS_PYNQ) and "\n" not in str(e.value)


def test_scrambled_outputs_are_matched_by_shape(meta, xmodel, bit):
    dpu = _emulator(meta, bit, output_order=(2, 0, 1))
    backend = DpuBackend(xmodel, meta, runtime=dpu)
    assert [s.shape[1] for s in backend.output_specs] == [10, 40, 20]
    image = make_sample(5, "test", 0, (640, 480)).image
    found = _detect(backend, meta, image)
    reference = _detect(OnnxBackend(DEMO_ONNX, meta), meta, image)
    assert len(found) >= 2
    np.testing.assert_array_equal(found.xyxy, reference.xyxy)
    np.testing.assert_array_equal(found.class_id, reference.class_id)
    assert dpu.loaded == [(xmodel, bit)]


def test_fix_points_come_from_the_tensors(meta, xmodel, bit):
    dpu = _emulator(meta, bit, input_fix_point=6, output_fix_points=(4, 4, 3))
    backend = DpuBackend(xmodel, meta, runtime=dpu)
    assert meta.input_fix_point == 7 and list(meta.output_fix_points) == [3, 3, 2]  # the metadata disagrees
    assert backend.input_spec.fix_point == 6
    assert sorted((s.shape[1], s.fix_point) for s in backend.output_specs) == [(10, 3), (20, 4), (40, 4)]
    detector = Detector(backend, meta)
    image = make_sample(5, "test", 1, (640, 480)).image
    found, _ = detector.detect(image)
    assert detector._preprocess.buffer.max() <= 64  # pixels quantized with 2**6, not the metadata's 2**7
    reference = _detect(OnnxBackend(DEMO_ONNX, meta.with_fix_points(6, (4, 4, 3))), meta, image)
    np.testing.assert_array_equal(found.xyxy, reference.xyxy)


def test_default_overlay_is_pynq_dpu_s(meta, xmodel, bit):
    dpu = _emulator(meta, bit)
    DpuBackend(xmodel, meta, runtime=dpu)
    assert dpu.loaded[0][1] == bit


@pytest.mark.parametrize("missing", [".hwh", ".xclbin", ".bit"])
def test_overlay_needs_bit_hwh_and_xclbin_of_one_name(meta, xmodel, tmp_path, missing):
    custom = overlay_files(tmp_path / "custom", "mydpu", tuple(s for s in (".bit", ".hwh", ".xclbin") if s != missing))
    dpu = _emulator(meta, overlay_files(tmp_path / "default"))
    with pytest.raises(ValueError, match=f"overlay files missing: .*mydpu\\{missing}"):
        DpuBackend(xmodel, meta, bit=custom, runtime=dpu)
    assert dpu.loaded == []  # refused before the DPU was touched


@pytest.mark.parametrize("kwargs,message", [
    (dict(dpu_subgraphs=0), "no DPU subgraph"),
    (dict(dpu_subgraphs=3, cpu_ops=("sigmoid", "mul")), "3 DPU subgraphs.*sigmoid, mul"),
    (dict(fingerprint=0x101000056010407), "Vitis AI 3.x.*Recompile with the Vitis AI 2.5"),
])
def test_preflight_refuses_before_loading(meta, xmodel, bit, kwargs, message):
    dpu = _emulator(meta, bit, **kwargs)
    with pytest.raises(ValueError, match=message):
        DpuBackend(xmodel, meta, runtime=dpu)
    assert dpu.loaded == []


def test_quantizer_output_is_named(meta, tmp_path, bit):
    int_model = tmp_path / "YOLOv5_int.xmodel"
    int_model.write_bytes(b"x")
    with pytest.raises(ValueError, match="_int.xmodel: compile it with vai_c_xir first"):
        DpuBackend(int_model, meta, runtime=_emulator(meta, bit, dpu_subgraphs=0))


def test_missing_xmodel(meta, tmp_path, bit):
    with pytest.raises(ValueError, match="xmodel not found"):
        DpuBackend(tmp_path / "nope.xmodel", meta, runtime=_emulator(meta, bit))


def test_metadata_mismatch_is_refused(meta, xmodel, bit):
    dpu = _emulator(meta, bit)
    other_classes = meta.__class__(**{**meta.__dict__, "names": meta.names + ("hexagon",)})
    with pytest.raises(ValueError, match="matches no head"):
        DpuBackend(xmodel, other_classes, runtime=dpu)
    other_size = meta.__class__(**{**meta.__dict__, "input_hw": (640, 640)})
    with pytest.raises(ValueError, match="metadata expects one"):
        DpuBackend(xmodel, other_size, runtime=dpu)
    assert dpu.loaded == []


def test_unknown_fingerprint_only_warns(meta, xmodel, bit, caplog):
    with caplog.at_level(logging.WARNING):
        DpuBackend(xmodel, meta, runtime=_emulator(meta, bit, fingerprint=0x101000016010307))
    assert "not a Vitis AI 2.5 DPUCZDX8G B4096 build" in caplog.text


def test_one_runner_refuses_a_second_caller_and_workers_get_their_own(meta, xmodel, bit):
    dpu = _emulator(meta, bit, latency_s=0.05)
    backend = DpuBackend(xmodel, meta, runtime=dpu)
    buf = np.zeros(backend.input_spec.shape, np.int8)
    outs = [[np.empty(s.shape, np.int8) for s in backend.output_specs] for _ in range(2)]
    errors = []

    def call(b, o):
        try:
            b.run(buf, o)
        except RuntimeError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=call, args=(backend, outs[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "one caller at a time" in errors[0]

    other = backend.worker()
    errors.clear()
    threads = [threading.Thread(target=call, args=(b, o)) for b, o in zip((backend, other), outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(dpu.runners) == 2
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
