"""The dpu backend: pre-flight checks, runners and detections, on a VART-contract emulator and on
pynq-dpu 2.5.1's own dpu.py (TEST DOUBLES for the hardware: no KV260 here; see vart_emulator.py)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from logcapture import logged
from vart_emulator import EmulatedBoard, EmulatedDpu, binding, emulated_backend, emulated_platform, overlay_files

from demo.shapes import make_sample
from yolov5_dpu_ros.backends import DpuSpec
from yolov5_dpu_ros.backends import dpu as dpu_backend_module
from yolov5_dpu_ros.backends.dpu import DpuBackend, PynqDpuRuntime
from yolov5_dpu_ros.backends.onnx import OnnxBackend
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.dpu import board as dpu_board
from yolov5_dpu_ros.dpu import installed
from yolov5_dpu_ros.dpu.board import NEEDS_PYNQ, NEEDS_ROOT, explain
from yolov5_dpu_ros.dpu.exclusive import lock_holders
from yolov5_dpu_ros.dpu.stacks import STACKS

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
        DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel"), bit=bit).open(meta, 1)
    assert str(e.value) == NEEDS_PYNQ


def test_outputs_in_vart_name_order_are_matched_by_shape(meta, tmp_path):
    dpu = EmulatedDpu(DEMO_ONNX, meta)  # tensors head_s8/16/32_fix: VART lists them s16, s32, s8
    backend = emulated_backend(dpu, tmp_path)
    assert [s.name for s in backend.output_specs] == ["head_s16_fix", "head_s32_fix", "head_s8_fix"]
    assert [s.shape[1] for s in backend.output_specs] == [20, 10, 40]
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
    assert detector._preprocess.buffer.max() == 1  # 255 / 255 * 2**-1 = 0.5 rounds away from zero, as the quantizer


@pytest.mark.parametrize("missing", [".hwh", ".xclbin", ".bit"])
def test_overlay_needs_bit_hwh_and_xclbin_of_one_name(meta, dpu, tmp_path, missing):
    custom = overlay_files(tmp_path / "custom", "dpu", tuple(s for s in (".bit", ".hwh", ".xclbin") if s != missing))
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    expected = "overlay not found" if missing == ".bit" else f"overlay files missing: .*custom/dpu\\{missing}"
    with pytest.raises(ValueError, match=expected):
        DpuBackend.load(xmodel, meta, bit=custom, dpu_runtime=dpu.stack.name, runtime=dpu)
    assert dpu.loaded == []  # refused before the DPU was touched


@pytest.mark.parametrize("stem", ["dpu_kit", "yolo_b", "overlay.", "kv260_dpu_bit", "kv260_custom", "DPU"])
def test_overlays_not_named_dpu_bit_are_refused(meta, dpu, tmp_path, stem):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    with pytest.raises(ValueError, match=f"copies {re.escape(stem)}.xclbin to /usr/lib but points VART at "
                                         "/usr/lib/dpu.xclbin"):
        DpuBackend.load(xmodel, meta, bit=overlay_files(tmp_path / "ov", stem), dpu_runtime=dpu.stack.name, runtime=dpu)
    assert dpu.loaded == []


def test_model_path_must_end_in_xmodel(meta, dpu, bit, tmp_path):
    model = dpu.write_xmodel(tmp_path / "m.bin")
    with pytest.raises(ValueError, match="only files named \\*.xmodel"):
        DpuBackend.load(model, meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)


@pytest.mark.parametrize("kwargs,message", [
    (dict(dpu_subgraphs=0), "no DPU subgraph"),
    (dict(dpu_subgraphs=3, cpu_ops=("sigmoid", "mul")), "3 DPU subgraphs.*mul, sigmoid"),
    (dict(fingerprint=0x101000056010407), "CHECK fingerprint fail.*Vitis AI 2.5"),
    (dict(compiler="3.5.0"), "compiled by Vitis AI 3.5.0 .a model for pynq-dpu 3.5.0.*Vitis AI 2.5 docker.*"
                             "or set the board up with pynq-dpu 3.5.0"),
])
def test_preflight_refuses_before_loading(meta, dpu, bit, tmp_path, kwargs, message):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", **kwargs)
    with pytest.raises(ValueError, match=message):
        DpuBackend.load(xmodel, meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
    assert dpu.loaded == []


def test_other_compiler_allowed_explicitly_warns(meta, dpu, bit, tmp_path):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", compiler="3.5.0")
    with logged("yolov5_dpu_ros.backends.dpu") as messages:
        DpuBackend.load(xmodel, meta, bit=bit, allow_other_compiler=True, dpu_runtime=dpu.stack.name, runtime=dpu)
    assert any("allowed by allow_other_compiler" in m for m in messages) and len(dpu.loaded) == 1


def test_a_custom_overlay_fingerprint(meta, dpu, bit, tmp_path):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel", fingerprint=0x101000016010200, dpu_name="DPUCZDX8G_ISA1_B512")
    with pytest.raises(ValueError, match="DPUCZDX8G_ISA1_B512"):
        DpuBackend.load(xmodel, meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
    with pytest.raises(binding().WouldAbort, match="CHECK fingerprint fail"):
        dpu.load(xmodel, bit)  # what VART itself would do with it on the stock overlay: abort the process
    dpu.fingerprint = 0x101000016010200  # a custom B512 overlay
    DpuBackend.load(xmodel, meta, bit=bit, fingerprint=0x101000016010200, dpu_runtime=dpu.stack.name, runtime=dpu)


def test_quantizer_output_is_named(meta, dpu, bit, tmp_path):
    int_model = dpu.write_xmodel(tmp_path / "YOLOv5_int.xmodel", dpu_subgraphs=0)
    with pytest.raises(ValueError, match="_int.xmodel: compile it with vai_c_xir first"):
        DpuBackend.load(int_model, meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)


def test_missing_and_foreign_model_files(meta, dpu, bit, tmp_path):
    with pytest.raises(ValueError, match="xmodel not found"):
        DpuBackend.load(tmp_path / "nope.xmodel", meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
    shutil.copy(DEMO_ONNX, tmp_path / "onnx.xmodel")
    with pytest.raises(ValueError, match="not an xmodel"):
        DpuBackend.load(tmp_path / "onnx.xmodel", meta, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
    assert dpu.loaded == []


def test_metadata_mismatch_is_refused(meta, dpu, bit, tmp_path):
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    other_classes = meta.__class__(**{**meta.__dict__, "names": meta.names + ("hexagon",)})
    with pytest.raises(ValueError, match="matches no head"):
        DpuBackend.load(xmodel, other_classes, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
    other_size = meta.__class__(**{**meta.__dict__, "input_hw": (640, 640)})
    with pytest.raises(ValueError, match="metadata expects one"):
        DpuBackend.load(xmodel, other_size, bit=bit, dpu_runtime=dpu.stack.name, runtime=dpu)
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
        except binding().WouldAbort as e:  # on the board: CHECK(my_input_.empty()) aborts the process
            errors.append(str(e))

    def both(backends):
        threads = [threading.Thread(target=call, args=(b, o)) for b, o in zip(backends, outs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    both((backend, backend))
    assert len(errors) == 1 and "serves one caller" in errors[0]
    errors.clear()
    both((backend, backend.worker()))
    assert errors == [] and len(dpu.runners) == 2
    np.testing.assert_array_equal(outs[0][0], outs[1][0])


# --- the runner through the VART binding's own argument conversions (vart_binding/runner_standin.cpp) ---

def test_wait_takes_the_pair_and_a_bare_int_is_refused_by_the_binding(meta, tmp_path):
    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta), tmp_path)
    runner = backend._runner
    buffers = [np.zeros(backend.input_spec.shape, np.int8)], [np.empty(s.shape, np.int8) for s in backend.output_specs]
    job = runner.execute_async(*buffers)
    assert job == (1, 0)  # DpuRunnerDdr's job id on Zynq, always
    with pytest.raises(TypeError, match="incompatible function arguments"):
        runner.wait(job[0])  # what this backend did before: every frame failed on the board
    assert runner.wait(job) == 0
    _same_as_onnx(_detect(backend, meta), meta)  # the backend's own calls pass the binding


def test_a_non_zero_status_is_an_error_naming_it(meta, tmp_path):
    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta), tmp_path)
    backend._runner.run_job = lambda inputs, outputs: 3
    with pytest.raises(RuntimeError, match="execute_async returned status 3"):
        _detect(backend, meta)


def _bad_buffers(spec):
    ok = np.zeros(spec.shape, np.int8)
    read_only = ok.copy()
    read_only.setflags(write=False)
    wide = np.zeros((*spec.shape[:-1], spec.shape[-1] * 2), np.int8)
    return {"uint8": ok.astype(np.uint8), "read-only": read_only, "non-contiguous": wide[..., ::2],
            "wrong size": np.zeros((1, *spec.shape[1:-1], spec.shape[-1] + 1), np.int8)}


@pytest.mark.parametrize("kind,binding_error", [("uint8", "unsupported data type"), ("read-only", "read-only"),
                                                ("non-contiguous", "not C-contiguous"),
                                                ("wrong size", "elements for a tensor of")])
def test_a_bad_buffer_is_caught_before_the_dpu_would_see_it(meta, tmp_path, kind, binding_error):
    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta), tmp_path)
    bad = _bad_buffers(backend.input_spec)[kind]
    outputs = [np.empty(s.shape, np.int8) for s in backend.output_specs]
    with pytest.raises((binding().WouldAbort, ValueError), match=binding_error):
        backend._runner.execute_async([bad], outputs)  # what VART itself would do with it
    with pytest.raises(ValueError, match=f"DPU input buffer for tensor '{backend.input_spec.name}'"):
        backend.run(bad, outputs)
    out_bad = _bad_buffers(backend.output_specs[0])[kind]
    with pytest.raises(ValueError, match="DPU output buffer"):
        backend.run(np.zeros(backend.input_spec.shape, np.int8), [out_bad, *outputs[1:]])


def test_buffers_are_checked_once_then_reused_unchecked(meta, tmp_path, monkeypatch):
    from yolov5_dpu_ros.backends import dpu as dpu_backend

    backend = emulated_backend(EmulatedDpu(DEMO_ONNX, meta), tmp_path)
    checks = []
    real = dpu_backend.check_buffer
    monkeypatch.setattr(dpu_backend, "check_buffer", lambda *a: (checks.append(a[2]), real(*a)))
    detector = Detector(backend, meta)
    for _ in range(3):
        detector.detect(IMAGE)
    assert checks == ["input", "output", "output", "output"]


def test_the_stand_in_converts_float32_as_vart_does(meta, tmp_path):
    """VART's float path (tensor_buffer.cpp): input (int8_t)(x * 2^fix), truncated; output int8 * 2^-fix."""
    dpu = EmulatedDpu(DEMO_ONNX, meta)
    backend = emulated_backend(dpu, tmp_path)
    fix = backend.input_spec.fix_point
    ints = np.random.default_rng(0).integers(0, 127, backend.input_spec.shape).astype(np.int8)
    floats = ((ints.astype(np.float32) + 0.75) * 2.0**-fix).astype(np.float32)  # truncates back to ints
    int_out = [np.empty(s.shape, np.int8) for s in backend.output_specs]
    float_out = [np.empty(s.shape, np.float32) for s in backend.output_specs]
    backend._runner.execute_async([ints], int_out)
    backend._runner.execute_async([floats], float_out)
    for i, f, s in zip(int_out, float_out, backend.output_specs):
        np.testing.assert_array_equal(f, i * np.float32(2.0**-s.fix_point))


def test_every_vendor_call_is_listed_with_its_source_and_the_doubles_have_it(dpu):
    from yolov5_dpu_ros.backends.dpu import VENDOR_CALLS

    platform = emulated_platform(dpu)
    runner = dpu.create_runner()
    tensor = runner.get_output_tensors()[0]
    provided = {
        "pynq.Overlay": platform["pynq"].Overlay, "vart.Runner.create_runner": platform["vart"].Runner.create_runner,
        "Runner.get_input_tensors": runner.get_input_tensors, "Runner.execute_async": runner.execute_async,
        "Runner.wait": runner.wait, "xir.Tensor": tensor.get_attr,
    }
    calls = {c.call: c for c in VENDOR_CALLS}
    assert set(provided) <= set(calls)
    assert all(c.signature and ("v2.5" in c.source or "2.5.1" in c.source or "v3.0.1" in c.source)
               for c in VENDOR_CALLS)
    assert "tuple[int, int]" in calls["Runner.wait"].signature
    assert tensor.dims == list(tensor.dims) and isinstance(tensor.get_attr("fix_point"), int)


def test_the_overlay_stand_in_behaves_like_pynq(dpu, tmp_path, monkeypatch):
    """PYNQ 3.0.1 pynq/bitstream.py: str names only, made absolute, IOError for a missing file."""
    overlay = emulated_platform(dpu)["pynq"].Overlay
    with pytest.raises(TypeError, match="has to be a string"):
        overlay(tmp_path / "dpu.bit")
    with pytest.raises(OSError, match="does not exist"):
        overlay(str(tmp_path / "missing.bit"))
    bit = overlay_files(tmp_path / "ov")
    monkeypatch.chdir(tmp_path)
    assert overlay("ov/dpu.bit").bitfile_name == str(bit)


# --- pynq-dpu 2.5.1's own dpu.py, with only pynq.Overlay, vart and xir emulated -----------------------

@pytest.fixture()
def board(pynq_dpu_source, dpu, tmp_path, monkeypatch):
    """pynq_dpu imported from its real source, installed as on the board (dpu.bit/.hwh/.xclbin inside the
    package), as root, with /etc/vart.conf, /usr/lib and VART's lock folder (/tmp) redirected into tmp_path;
    the emulated VART loads the xclbin vart.conf names and takes the DPU lock as VART does."""
    site = tmp_path / "site"
    shutil.copytree(pynq_dpu_source, site / "pynq_dpu")
    overlay_files(site / "pynq_dpu")
    (site / "pynq_dpu-2.5.1.dist-info").mkdir()  # what pip leaves beside the package: the stack is read from it
    (site / "pynq_dpu-2.5.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: pynq-dpu\n"
                                                                  "Version: 2.5.1\n")
    for name, module in emulated_platform(dpu).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "pynq_dpu", raising=False)
    monkeypatch.delitem(sys.modules, "pynq_dpu.dpu", raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(dpu_board.os, "geteuid", lambda: 0)
    import pynq_dpu.dpu as real

    sandbox = EmulatedBoard(tmp_path / "vart.conf", tmp_path / "usr_lib", tmp_path / "locks")
    sandbox.usr_lib.mkdir()
    sandbox.locks.mkdir()
    (sandbox.usr_lib / "libvart-runner.so.2.5.0").write_bytes(b"")  # VART 2.5's runner library, as the debs install
    monkeypatch.setattr(installed, "VART_LIBRARIES", sandbox.usr_lib)
    sandbox.vart_conf.write_text("firmware: /run/media/mmcblk0p1/dpu.xclbin\n")
    dpu.board = sandbox
    monkeypatch.setattr(real, "XCL_DST_PATH", str(sandbox.usr_lib))
    monkeypatch.setattr(real, "open", lambda f, *a, **k: open(sandbox.vart_conf if f == "/etc/vart.conf" else f,
                                                              *a, **k), raising=False)
    monkeypatch.setattr(dpu_backend_module, "VART_CONF", sandbox.vart_conf)
    monkeypatch.setattr(dpu_backend_module, "DPU_LOCKS", sandbox.locks)
    yield real, site / "pynq_dpu", sandbox
    monkeypatch.delitem(sys.modules, "pynq_dpu", raising=False)
    monkeypatch.delitem(sys.modules, "pynq_dpu.dpu", raising=False)


def test_real_pynq_dpu_detects_with_the_stock_overlay(board, dpu, meta, tmp_path):
    real, package, root = board
    xmodel = dpu.write_xmodel(tmp_path / "yolov5n_kv260.xmodel")
    first = Detector(DpuSpec(xmodel).open(meta, 1), meta)  # no bit: pynq_dpu's own dpu.bit
    workers = [first, first.worker()]
    assert dpu.overlays == [str(package / "dpu.bit")]
    assert (root.usr_lib / "dpu.xclbin").is_file()  # pynq-dpu copied the overlay's xclbin
    assert root.vart_conf.read_text() == "firmware: /usr/lib/dpu.xclbin"
    assert dpu.firmware == [str(package / "dpu.xclbin").encode()]  # VART loaded the stock design's xclbin
    assert len(dpu.live_runners()) == 2  # overlay.runner serves the first worker; one more for the second
    assert first.backend._runner is dpu.runners[0]()
    for detector in workers:
        _same_as_onnx(detector.detect(IMAGE)[0], meta)


def _stale_stock_xclbin(root: EmulatedBoard, package) -> None:
    """/usr/lib/dpu.xclbin left by an earlier run of the stock overlay, as on a board that ran the notebooks."""
    shutil.copy(package / "dpu.xclbin", root.usr_lib / "dpu.xclbin")


def test_a_custom_dpu_bit_in_its_own_folder_runs_its_own_xclbin(board, dpu, meta, tmp_path):
    _, package, root = board
    _stale_stock_xclbin(root, package)
    custom = overlay_files(tmp_path / "kv260_custom")
    detector = Detector(DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel"), bit=custom).open(meta, 1), meta)
    assert dpu.overlays == [str(custom)]
    assert dpu.firmware == [str(custom.with_suffix(".xclbin")).encode()]  # the custom design's, not the stock's
    _same_as_onnx(detector.detect(IMAGE)[0], meta)


def test_a_custom_overlay_of_another_name_runs_another_designs_xclbin_in_pynq_dpu_and_is_refused(board, dpu, meta,
                                                                                                tmp_path):
    real, package, root = board
    _stale_stock_xclbin(root, package)
    custom = overlay_files(tmp_path / "custom", "kv260_custom")
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")
    overlay = real.DpuOverlay(str(custom))  # what pynq-dpu itself does with it
    overlay.load_model(str(xmodel))
    assert (root.usr_lib / "kv260_custom.xclbin").is_file()  # copied beside the stock one ...
    assert dpu.firmware == [str(package / "dpu.xclbin").encode()]  # ... and VART runs the stock design's
    overlay.runner = None
    dpu.overlays.clear()
    dpu.firmware.clear()
    with pytest.raises(ValueError, match="points VART at /usr/lib/dpu.xclbin.*named dpu.bit, dpu.hwh and dpu.xclbin"):
        DpuSpec(xmodel, bit=custom).open(meta, 1)
    overlay_files(package, "kv260_custom")  # inside the package, found by name: the same trap
    with pytest.raises(ValueError, match="points VART at /usr/lib/dpu.xclbin"):
        DpuSpec(xmodel, bit="kv260_custom.bit").open(meta, 1)
    assert dpu.overlays == [] and dpu.firmware == []


def test_the_naming_trap_is_real_and_refused_before_the_overlay(board, dpu, meta, tmp_path):
    real, _, _ = board
    custom = overlay_files(tmp_path / "custom", "dpu_kit")
    with pytest.raises(ValueError, match="dpu_k.xclbin does not exist"):  # what pynq-dpu itself does
        real.DpuOverlay(str(custom))
    dpu.overlays.clear()
    with pytest.raises(ValueError, match="named dpu.bit"):
        DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel"), bit=custom).open(meta, 1)
    assert dpu.overlays == []


def test_the_model_suffix_trap_is_real_and_refused_before_the_overlay(board, dpu, meta, tmp_path):
    real, package, _ = board
    model = dpu.write_xmodel(tmp_path / "model.bin")
    overlay = real.DpuOverlay("dpu.bit")
    with pytest.raises(RuntimeError, match="only xmodel files"):  # what pynq-dpu itself does
        overlay.load_model(str(model))
    dpu.overlays.clear()
    with pytest.raises(ValueError, match="only files named"):
        DpuSpec(model).open(meta, 1)
    assert dpu.overlays == []


@pytest.mark.parametrize("kwargs", [dict(fingerprint=0x101000056010407), dict(compiler="3.5.0"),
                                    dict(dpu_subgraphs=2)])
def test_refusals_come_before_pynq_dpu_touches_anything(board, dpu, meta, tmp_path, kwargs):
    with pytest.raises(ValueError):
        DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel", **kwargs)).open(meta, 1)
    assert dpu.overlays == [] and dpu.runners == []


def test_the_stack_is_read_from_the_board_before_pynq_dpu_is_touched(board, dpu, meta, tmp_path):
    """The board's pynq-dpu 2.5.1 (its dist-info) on VART 3.5 (its library): refused naming both, unless
    dpu_runtime names the stack; a 3.5 stack then refuses the 2.5 model before loading anything."""
    _, package, root = board
    (root.usr_lib / "libvart-runner.so.2.5.0").rename(root.usr_lib / "libvart-runner.so.3.5.0")
    model = dpu.write_xmodel(tmp_path / "m.xmodel")
    with pytest.raises(ValueError, match="pynq-dpu 2.5.1 runs on VART 2.5, but VART 3.5.0 is installed"):
        DpuSpec(model).open(meta, 1)
    with pytest.raises(ValueError, match="on pynq-dpu 3.5.0 with VART 3.5 is 0x101000056010407"):
        DpuSpec(model, dpu_runtime="3.5").open(meta, 1)
    assert dpu.overlays == [] and dpu.runners == []
    DpuSpec(model, dpu_runtime="2.5").open(meta, 1)
    assert dpu.overlays == [str(package / "dpu.bit")]


def test_not_root_is_refused_before_the_overlay(board, dpu, meta, tmp_path, monkeypatch):
    monkeypatch.setattr(dpu_board.os, "geteuid", lambda: 1000)
    with pytest.raises(ValueError) as e:
        DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel")).open(meta, 1)
    assert str(e.value) == NEEDS_ROOT and dpu.overlays == []


@pytest.mark.parametrize("text,raised", [(None, FileNotFoundError), ("", IndexError),
                                         ("firmware:/run/media/dpu.xclbin\n", IndexError)])
def test_a_vart_conf_pynq_dpu_cannot_read_is_rewritten_first(board, dpu, meta, tmp_path, text, raised):
    real, package, root = board
    xmodel = dpu.write_xmodel(tmp_path / "m.xmodel")

    def write_conf():
        root.vart_conf.unlink(missing_ok=True)
        if text is not None:
            root.vart_conf.write_text(text)

    write_conf()
    with pytest.raises(raised) as e:  # what pynq-dpu itself does with it
        real.DpuOverlay("dpu.bit").load_model(str(xmodel))
    assert "echo 'firmware: /usr/lib/dpu.xclbin' | sudo tee" in explain(e.value)
    assert "needs PYNQ" not in explain(e.value)
    write_conf()
    dpu.overlays.clear()
    with logged("yolov5_dpu_ros.backends.dpu") as messages:
        detector = Detector(DpuSpec(xmodel).open(meta, 1), meta)
    assert any("vart.conf was" in m and "wrote 'firmware: /usr/lib/dpu.xclbin'" in m for m in messages)
    assert root.vart_conf.read_text() == "firmware: /usr/lib/dpu.xclbin"
    assert dpu.firmware[-1] == str(package / "dpu.xclbin").encode()
    _same_as_onnx(detector.detect(IMAGE)[0], meta)


def _hold_the_dpu(locks) -> subprocess.Popen:
    """Another process holding VART's DPU lock as VART does (lockf F_LOCK on /tmp/DPU_0), until killed."""
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666); "
            "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(locks / "DPU_0"), "other-dpu-node"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_dpu_process_is_refused_naming_the_first(board, dpu, meta, tmp_path):
    _, _, root = board
    holder = _hold_the_dpu(root.locks)
    try:
        with pytest.raises(ValueError) as e:
            DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel")).open(meta, 1)
    finally:
        holder.kill()
        holder.wait()
    assert f"in use by another process (pid {holder.pid}" in str(e.value) and "other-dpu-node" in str(e.value)
    assert "serve every camera from one node" in str(e.value)
    assert dpu.overlays == []  # the FPGA was not reprogrammed under the other process
    DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel")).open(meta, 1).close()  # free again once it has gone


def test_configure_cleanup_cycles_leave_one_device_handle_and_one_lock_holder(board, dpu, meta, tmp_path):
    _, _, root = board
    spec = DpuSpec(dpu.write_xmodel(tmp_path / "m.xmodel"))
    for _ in range(3):
        detectors = build_detectors(spec, DEMO_META, workers=2)
        assert len(dpu.live_runners()) == 2 and dpu.handles_open() == 1
        assert [h.pid for h in lock_holders(root.locks)] == [os.getpid()]
        for detector in detectors:
            detector.close()
        del detectors
        assert dpu.live_runners() == [] and dpu.handles_open() == 0  # no gc.collect() here: the backend's own
        assert dpu.live_overlays() == 0
        assert lock_holders(root.locks) == []
    assert len(dpu.overlays) == 3 and len(dpu.firmware) == 3


@pytest.mark.parametrize("version,warned", [("3.0.1", False), ("3.1.0", True), ("2.7.0", True)])
def test_pynq_other_than_3_0_is_warned_about(board, monkeypatch, version, warned):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    with logged("yolov5_dpu_ros.backends.dpu") as messages:
        PynqDpuRuntime(STACKS["2.5"])
    assert any("made for PYNQ 3.0.x" in m for m in messages) == warned
