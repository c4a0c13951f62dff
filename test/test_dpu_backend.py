"""The dpu backend: pre-flight checks, runners and detections, on a VART-contract emulator and on
pynq-dpu 2.5.1's own dpu.py (TEST DOUBLES for the hardware: no KV260 here; see vart_emulator.py)."""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import sys
import threading

import numpy as np
import pytest
from vart_emulator import EmulatedDpu, emulated_backend, emulated_platform, overlay_files

from demo.shapes import make_sample
from yolov5_dpu_ros.backends import dpu as dpu_module
from yolov5_dpu_ros.backends import make_backend
from yolov5_dpu_ros.backends.dpu import NEEDS_PYNQ, NEEDS_ROOT, DpuBackend, PynqDpuRuntime
from yolov5_dpu_ros.backends.onnx import OnnxBackend
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

IMAGE = make_sample(5, "test", 0, (640, 480)).image


@pytest.fixture()
def meta():
    return load_meta(DEMO_META)


@pytest.fixture()
def dpu(meta):
    return EmulatedDpu(DEMO_ONNX, meta)


@pytest.fixture()
def bit(tmp_path):
    return overlay_files(tmp_path / "overlay")


def _detect(backend, meta, image=IMAGE):
    return Detector(backend, meta).detect(image)[0]


def _same_as_onnx(found, meta, image=IMAGE):
    reference = _detect(OnnxBackend(DEMO_ONNX, meta), meta, image)
    assert len(found) >= 2
    np.testing.assert_array_equal(found.xyxy, reference.xyxy)
    np.testing.assert_array_equal(found.class_id, reference.class_id)


def test_without_pynq_one_clear_line(meta, dpu, bit, tmp_path):
    with pytest.raises(ValueError) as e:
        make_backend("dpu", meta, dpu.write_xmodel(tmp_path / "m.xmodel"), bit=bit)
    assert str(e.value) == NEEDS_PYNQ


def test_scrambled_outputs_are_matched_by_shape(meta, tmp_path):
    dpu = EmulatedDpu(DEMO_ONNX, meta, output_order=(2, 0, 1))
    backend = emulated_backend(dpu, tmp_path)
    assert [s.shape[1] for s in backend.output_specs] == [10, 40, 20]
    _same_as_onnx(_detect(backend, meta), meta)
    assert [b.name for _, b in dpu.loaded] == ["dpu.bit"]


def test_fix_points_come_from_the_tensors(meta, tmp_path):
    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta, input_fix_point=6, output_fix_points=(4, 4, 3)), tmp_path)
    assert meta.input_fix_point == 7 and list(meta.output_fix_points) == [3, 3, 2]  # the metadata disagrees
    assert backend.input_spec.fix_point == 6
    assert sorted((s.shape[1], s.fix_point) for s in backend.output_specs) == [(10, 3), (20, 4), (40, 4)]
    detector = Detector(backend, meta)
    found, _ = detector.detect(IMAGE)
    assert detector._preprocess.buffer.max() <= 64  # pixels quantized with 2**6, not the metadata's 2**7
    reference = _detect(OnnxBackend(DEMO_ONNX, meta.with_fix_points(6, (4, 4, 3))), meta)
    np.testing.assert_array_equal(found.xyxy, reference.xyxy)


def test_a_negative_input_fix_point_feeds_halved_pixels(meta, tmp_path):
    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta, input_fix_point=-1), tmp_path)
    detector = Detector(backend, meta)
    detector.detect(np.full((480, 640, 3), 255, np.uint8))
    assert backend.input_spec.fix_point == -1
    assert detector._preprocess.buffer.max() == 0  # 255 / 255 * 2**-1 rounds to 0: a model fed 0..1 pixels


@pytest.mark.parametrize("missing", [".hwh", ".xclbin", ".bit"])
def test_overlay_needs_bit_hwh_and_xclbin_of_one_name(meta, dpu, tmp_path, missing):
    custom = overlay_files(tmp_path / "custom", "mydpu", tuple(s for s in (".bit", ".hwh", ".xclbin") if s != missing))
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    expected = "overlay not found" if missing == ".bit" else f"overlay files missing: .*mydpu\\{missing}"
    with pytest.raises(ValueError, match=expected):
        DpuBackend(xmodel, meta, bit=custom, runtime=dpu)
    assert dpu.loaded == []  # refused before the DPU was touched


@pytest.mark.parametrize("stem", ["dpu_kit", "yolo_b", "overlay.", "kv260_dpu_bit"])
def test_overlay_names_pynq_dpu_would_mangle_are_refused(meta, dpu, tmp_path, stem):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    with pytest.raises(ValueError, match="strips the characters '.', 'b', 'i', 't'.*rename"):
        DpuBackend(xmodel, meta, bit=overlay_files(tmp_path / "ov", stem), runtime=dpu)
    assert dpu.loaded == []


def test_model_path_must_end_in_xmodel(meta, dpu, bit, tmp_path):
    model = dpu.write_xmodel(tmp_path / "m.bin")
    with pytest.raises(ValueError, match="only files named \\*.xmodel"):
        DpuBackend(model, meta, bit=bit, runtime=dpu)


@pytest.mark.parametrize("kwargs,message", [
    (dict(dpu_subgraphs=0), "no DPU subgraph"),
    (dict(dpu_subgraphs=3, cpu_ops=("sigmoid", "mul")), "3 DPU subgraphs.*mul, sigmoid"),
    (dict(fingerprint=0x101000056010407), "CHECK fingerprint fail.*Vitis AI 2.5"),
    (dict(compiler="3.5.0"), "compiled by Vitis AI 3.5.0.*allow_other_compiler"),
])
def test_preflight_refuses_before_loading(meta, dpu, bit, tmp_path, kwargs, message):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", **kwargs)
    with pytest.raises(ValueError, match=message):
        DpuBackend(xmodel, meta, bit=bit, runtime=dpu)
    assert dpu.loaded == []


def test_other_compiler_allowed_explicitly_warns(meta, dpu, bit, tmp_path, caplog):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", compiler="3.5.0")
    with caplog.at_level(logging.WARNING):
        DpuBackend(xmodel, meta, bit=bit, allow_other_compiler=True, runtime=dpu)
    assert "allowed by allow_other_compiler" in caplog.text and len(dpu.loaded) == 1


def test_a_custom_overlay_fingerprint(meta, dpu, bit, tmp_path):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", fingerprint=0x101000016010200, dpu_name="DPUCZDX8G_ISA1_B512")
    with pytest.raises(ValueError, match="DPUCZDX8G_ISA1_B512"):
        DpuBackend(xmodel, meta, bit=bit, runtime=dpu)
    DpuBackend(xmodel, meta, bit=bit, fingerprint=0x101000016010200, runtime=dpu)


def test_quantizer_output_is_named(meta, dpu, bit, tmp_path):
    int_model = dpu.write_xmodel(tmp_path / "YOLOv5_int.xmodel", dpu_subgraphs=0)
    with pytest.raises(ValueError, match="_int.xmodel: compile it with vai_c_xir first"):
        DpuBackend(int_model, meta, bit=bit, runtime=dpu)


def test_missing_and_foreign_model_files(meta, dpu, bit, tmp_path):
    with pytest.raises(ValueError, match="xmodel not found"):
        DpuBackend(tmp_path / "nope.xmodel", meta, bit=bit, runtime=dpu)
    shutil.copy(DEMO_ONNX, tmp_path / "onnx.xmodel")
    with pytest.raises(ValueError, match="not an xmodel"):
        DpuBackend(tmp_path / "onnx.xmodel", meta, bit=bit, runtime=dpu)
    assert dpu.loaded == []


def test_metadata_mismatch_is_refused(meta, dpu, bit, tmp_path):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    other_classes = meta.__class__(**{**meta.__dict__, "names": meta.names + ("hexagon",)})
    with pytest.raises(ValueError, match="matches no head"):
        DpuBackend(xmodel, other_classes, bit=bit, runtime=dpu)
    other_size = meta.__class__(**{**meta.__dict__, "input_hw": (640, 640)})
    with pytest.raises(ValueError, match="metadata expects one"):
        DpuBackend(xmodel, other_size, bit=bit, runtime=dpu)
    assert dpu.loaded == []


def test_one_runner_refuses_a_second_caller_and_workers_get_their_own(meta, tmp_path):
    dpu = EmulatedDpu(DEMO_ONNX, meta, latency_s=0.05)
    backend = emulated_backend(dpu, tmp_path)
    buf = np.zeros(backend.input_spec.shape, np.int8)
    outs = [[np.empty(s.shape, np.int8) for s in backend.output_specs] for _ in range(2)]
    errors = []

    def call(b, o):
        try:
            b.run(buf, o)
        except RuntimeError as e:
            errors.append(str(e))

    def both(backends):
        threads = [threading.Thread(target=call, args=(b, o)) for b, o in zip(backends, outs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    both((backend, backend))
    assert len(errors) == 1 and "one caller at a time" in errors[0]
    errors.clear()
    both((backend, backend.worker()))
    assert errors == [] and len(dpu.runners) == 2
    np.testing.assert_array_equal(outs[0][0], outs[1][0])


# --- pynq-dpu 2.5.1's own dpu.py, with only pynq.Overlay, vart and xir emulated -----------------------

@pytest.fixture()
def board(pynq_dpu_source, dpu, tmp_path, monkeypatch):
    """pynq_dpu imported from its real source, installed as on the board (dpu.bit/.hwh/.xclbin inside the
    package), as root, with /etc/vart.conf and /usr/lib redirected into tmp_path."""
    site = tmp_path / "site"
    shutil.copytree(pynq_dpu_source, site / "pynq_dpu")
    overlay_files(site / "pynq_dpu")
    for name, module in emulated_platform(dpu).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "pynq_dpu", raising=False)
    monkeypatch.delitem(sys.modules, "pynq_dpu.dpu", raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(dpu_module.os, "geteuid", lambda: 0)
    import pynq_dpu.dpu as real

    (tmp_path / "usr_lib").mkdir()
    vart_conf = tmp_path / "vart.conf"
    vart_conf.write_text("firmware: /run/media/mmcblk0p1/dpu.xclbin\n")
    monkeypatch.setattr(real, "XCL_DST_PATH", str(tmp_path / "usr_lib"))
    monkeypatch.setattr(real, "open", lambda f, *a, **k: open(vart_conf if f == "/etc/vart.conf" else f, *a, **k),
                        raising=False)
    yield real, site / "pynq_dpu", tmp_path
    monkeypatch.delitem(sys.modules, "pynq_dpu", raising=False)
    monkeypatch.delitem(sys.modules, "pynq_dpu.dpu", raising=False)


def test_real_pynq_dpu_detects_with_the_stock_overlay(board, dpu, meta, tmp_path):
    real, package, root = board
    xmodel = dpu.write_xmodel(tmp_path / "yolov5n_kv260.xmodel")
    first = Detector(make_backend("dpu", meta, xmodel), meta)  # no bit: pynq_dpu's own dpu.bit
    workers = [first, first.worker()]
    assert dpu.overlays == [str(package / "dpu.bit")]
    assert (root / "usr_lib" / "dpu.xclbin").is_file()  # pynq-dpu copied the overlay's xclbin
    assert (root / "vart.conf").read_text() == "firmware: /usr/lib/dpu.xclbin"
    assert len(dpu.runners) == 2  # overlay.runner serves the first worker; one more for the second
    assert first.backend._runner is dpu.runners[0]
    for detector in workers:
        _same_as_onnx(detector.detect(IMAGE)[0], meta)


def test_the_naming_trap_is_real_and_refused_before_the_overlay(board, dpu, meta, tmp_path):
    real, _, _ = board
    custom = overlay_files(tmp_path / "custom", "dpu_kit")
    with pytest.raises(ValueError, match="dpu_k.xclbin does not exist"):  # what pynq-dpu itself does
        real.DpuOverlay(str(custom))
    dpu.overlays.clear()
    with pytest.raises(ValueError, match="would look for dpu_k.xclbin"):
        make_backend("dpu", meta, dpu.write_xmodel(tmp_path / "m.xmodel"), bit=custom)
    assert dpu.overlays == []


def test_the_model_suffix_trap_is_real_and_refused_before_the_overlay(board, dpu, meta, tmp_path):
    real, package, _ = board
    model = dpu.write_xmodel(tmp_path / "model.bin")
    overlay = real.DpuOverlay("dpu.bit")
    with pytest.raises(RuntimeError, match="only xmodel files"):  # what pynq-dpu itself does
        overlay.load_model(str(model))
    dpu.overlays.clear()
    with pytest.raises(ValueError, match="only files named"):
        make_backend("dpu", meta, model)
    assert dpu.overlays == []


@pytest.mark.parametrize("kwargs", [dict(fingerprint=0x101000056010407), dict(compiler="3.5.0"),
                                    dict(dpu_subgraphs=2)])
def test_refusals_come_before_pynq_dpu_touches_anything(board, dpu, meta, tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_backend("dpu", meta, dpu.write_xmodel(tmp_path / "m.xmodel", **kwargs))
    assert dpu.overlays == [] and dpu.runners == []


def test_not_root_is_refused_before_the_overlay(board, dpu, meta, tmp_path, monkeypatch):
    monkeypatch.setattr(dpu_module.os, "geteuid", lambda: 1000)
    with pytest.raises(ValueError) as e:
        make_backend("dpu", meta, dpu.write_xmodel(tmp_path / "m.xmodel"))
    assert str(e.value) == NEEDS_ROOT and dpu.overlays == []


def test_a_custom_overlay_found_inside_the_package(board, dpu, meta, tmp_path):
    _, package, _ = board
    overlay_files(package, "kv260_custom")
    make_backend("dpu", meta, dpu.write_xmodel(tmp_path / "m.xmodel"), bit="kv260_custom.bit")
    assert dpu.overlays == [str(package / "kv260_custom.bit")]


@pytest.mark.parametrize("version,warned", [("3.0.1", False), ("3.1.0", True), ("2.7.0", True)])
def test_pynq_other_than_3_0_is_warned_about(board, monkeypatch, caplog, version, warned):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    with caplog.at_level(logging.WARNING):
        PynqDpuRuntime()
    assert ("made for PYNQ 3.0.x" in caplog.text) == warned
