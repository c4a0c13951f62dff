"""The xmodel reader and the verdict on the pynq-dpu 2.5.1 stack, on the real compiled KV260 fixtures and on bad files
(the verdict on every stack: test_stacks.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from props import given, settings, st
from xmodel_writer import write_xmodel

from model_prep import inspect as inspect_step
from yolov5_dpu_ros.core.model_meta import ModelMeta, load_meta, save_meta
from yolov5_dpu_ros.demo_model import DEMO_ONNX
from yolov5_dpu_ros.dpu.stacks import STACKS
from yolov5_dpu_ros.dpu.verdict import judge, parse_fingerprint
from yolov5_dpu_ros.dpu.xmodel import XmodelError, read_xmodel

VAI25 = "yolox_nano_b4096_vai25.xmodel"
VAI35 = "yolox_nano_b4096_vai35.xmodel"
VAI25_STACK = STACKS["2.5"]
STOCK_FINGERPRINT = VAI25_STACK.fingerprint
YOLOX_HEADS = [(1, 13, 13, 85), (1, 26, 26, 85), (1, 52, 52, 85)]


def yolox_meta(**changes) -> ModelMeta:
    """The fixtures' heads in metadata form: one anchor a cell, 80 classes, strides 8/16/32 at 416."""
    values = dict(input_hw=(416, 416), strides=(8, 16, 32), anchors_px=(((8.0, 8.0),), ((16.0, 16.0),),
                  ((32.0, 32.0),)), names=tuple(f"c{i}" for i in range(80)), input_fix_point=0)
    return ModelMeta(**{**values, **changes})


def test_the_vai25_fixture_runs(real_xmodels):
    info = read_xmodel(real_xmodels / VAI25)
    assert [c.device for c in info.children] == ["USER", "DPU", "CPU", "CPU", "CPU"]
    assert [c.op_types for c in info.children[2:]] == [("fix2float",)] * 3
    assert info.compilers == ("2.5.0",)
    (dpu,) = info.dpu
    assert dpu.dpu_name == "DPUCZDX8G_ISA1_B4096" and dpu.fingerprint == STOCK_FINGERPRINT
    assert [(t.shape, t.fix_point) for t in info.inputs] == [((1, 416, 416, 3), -1)]
    # VART's runner order, sorted by tensor name (ModuleList_0, _1, __..._2), as a KV260 notebook printed
    # get_output_tensors() for this very model: 52x52 first
    assert [t.shape for t in info.outputs] == YOLOX_HEADS[::-1]
    assert [t.name for t in info.outputs] == sorted(t.name for t in info.outputs)
    assert {t.fix_point for t in info.outputs} == {2}
    assert info.cpu_op_types == ()  # fix2float is never a problem
    verdict = judge(info, VAI25_STACK)
    assert verdict.runs and verdict.problems == () and verdict.notes == ()


def test_the_vai35_fixture_is_refused_naming_the_compiler(real_xmodels):
    info = read_xmodel(real_xmodels / VAI35)
    assert info.compilers == ("3.5.0",)
    assert info.dpu[0].fingerprint == STOCK_FINGERPRINT  # the fingerprint alone would let it through
    assert info.dpu[0].dpu_name == "DPUCZDX8G_ISA1_B4096_0101000016010407"
    verdict = judge(info, VAI25_STACK)
    assert not verdict.runs
    (problem,) = verdict.problems
    assert "Vitis AI 3.5.0" in problem and "Vitis AI 2.5.x" in problem and "allow_other_compiler" not in problem
    allowed = judge(info, VAI25_STACK, allow_other_compiler=True)
    assert allowed.runs and "allowed by allow_other_compiler" in allowed.notes[0]


def test_another_overlay_refuses_even_a_good_model(real_xmodels):
    info = read_xmodel(real_xmodels / VAI25)
    verdict = judge(info, VAI25_STACK, overlay_fingerprint=0x101000016010200, allow_other_compiler=True)
    assert not verdict.runs and "CHECK fingerprint fail" in verdict.problems[0]
    assert "DPUCZDX8G_ISA1_B512" in verdict.problems[0] and "DPUCZDX8G_ISA1_B4096" in verdict.problems[0]


def test_inspect_on_the_real_fixtures(real_xmodels, tmp_path, capsys):
    meta_path = tmp_path / "yolox.yaml"
    save_meta(yolox_meta(), meta_path)
    assert inspect_step.main([str(real_xmodels / VAI25), "--meta", str(meta_path), "--write"]) == 0
    out = capsys.readouterr().out
    assert "Vitis AI 2.5.0" in out and "DPUCZDX8G_ISA1_B4096" in out and "0x101000016010407" in out
    assert out.index("[1, 52, 52, 85]") < out.index("[1, 26, 26, 85]") < out.index("[1, 13, 13, 85]")
    assert "output 0: [1, 52, 52, 85]" in out and "VART's runner order (sorted by tensor name" in out
    assert "outputs → strides [8, 16, 32]" in out and "verdict (2.5 stack): runs" in out
    written = load_meta(meta_path)
    assert written.input_fix_point == -1 and written.output_fix_points == (2, 2, 2)

    assert inspect_step.main([str(real_xmodels / VAI35)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "Vitis AI 3.5.0" in out
    assert inspect_step.main([str(real_xmodels / VAI35), "--dpu-runtime", "2.5", "--allow-other-compiler"]) == 0
    assert inspect_step.main([str(real_xmodels / VAI25), "--dpu-runtime", "2.5", "--fingerprint",
                              "0x101000056010407"]) == 1
    assert "pynq-dpu 3.5.0's KV260 overlay" in capsys.readouterr().out


def test_inspect_refuses_metadata_of_another_model(real_xmodels, tmp_path, capsys):
    meta_path = tmp_path / "other.yaml"
    save_meta(yolox_meta(names=("a", "b")), meta_path)
    before = meta_path.read_text()
    assert inspect_step.main([str(real_xmodels / VAI25), "--meta", str(meta_path), "--write"]) == 1
    assert "matches no head" in capsys.readouterr().out
    assert meta_path.read_text() == before


def _demo_shapes(tmp_path, **kwargs):
    outputs = [("h32", (1, 10, 10, 30), 3), ("h8", (1, 40, 40, 30), 3), ("h16", (1, 20, 20, 30), 3)]
    return write_xmodel(tmp_path / kwargs.pop("name", "m.xmodel"), (1, 320, 320, 3), 6, outputs, **kwargs)


@pytest.mark.parametrize("kwargs,expected", [
    (dict(dpu_subgraphs=3, cpu_ops=("sigmoid", "mul")), "3 DPU subgraphs.*split the graph: mul, sigmoid"),
    (dict(fingerprint=0x101000056010407), "pynq-dpu 3.5.0's KV260 overlay.*CHECK fingerprint fail"),
    (dict(compiler="3.0.0"), "compiled by Vitis AI 3.0.0"),
    (dict(compiler=None), "unknown version"),
    (dict(dpu_subgraphs=0, name="DetectionModel_int.xmodel"), "no DPU subgraph; this is the quantizer's _int"),
    (dict(dpu_subgraphs=0), "no DPU subgraph; it was not compiled"),
])
def test_each_refusal_names_its_reason(tmp_path, kwargs, expected, capsys):
    path = _demo_shapes(tmp_path, **kwargs)
    verdict = judge(read_xmodel(path), VAI25_STACK)
    assert not verdict.runs
    assert any(re.search(expected, p) for p in verdict.problems), verdict.problems
    assert inspect_step.main([str(path)]) == 1


def test_a_written_model_runs_and_lists_its_outputs_by_name_not_graph_order(tmp_path):
    info = read_xmodel(_demo_shapes(tmp_path))
    assert judge(info, VAI25_STACK).runs
    assert [t.name for t in info.outputs] == ["h16_download_t", "h32_download_t", "h8_download_t"]  # graph: 32, 8, 16
    assert [t.shape[1] for t in info.outputs] == [20, 10, 40]
    assert [(t.shape, t.fix_point) for t in info.inputs] == [((1, 320, 320, 3), 6)]


@pytest.mark.parametrize("make", [
    lambda p, fx: p.write_bytes(b""),
    lambda p, fx: p.write_bytes(DEMO_ONNX.read_bytes()),
    lambda p, fx: p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    lambda p, fx: p.write_text("input_size: [320, 320]\n"),
    lambda p, fx: p.write_bytes(fx.read_bytes()[:100_000]),
    lambda p, fx: p.write_bytes(fx.read_bytes()[:-1]),
], ids=["empty", "onnx", "random", "yaml", "truncated", "one-byte-short"])
def test_bad_files_get_a_clear_error(real_xmodels, tmp_path, make, capsys):
    path = tmp_path / "bad.xmodel"
    make(path, real_xmodels / VAI25)
    with pytest.raises(XmodelError, match="bad.xmodel: .*not an xmodel"):
        read_xmodel(path)
    assert inspect_step.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1


def test_missing_file(tmp_path):
    with pytest.raises(XmodelError, match="xmodel not found"):
        read_xmodel(tmp_path / "none.xmodel")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_read_or_refused_cleanly(tmp_path_factory, data):
    """Property: whatever the bytes, the reader returns facts or raises an XmodelError naming the file."""
    path = tmp_path_factory.mktemp("x") / "f.xmodel"
    path.write_bytes(data)
    try:
        read_xmodel(path)
    except XmodelError as e:
        assert "f.xmodel" in str(e)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=2000), st.integers(min_value=0, max_value=255))
def test_cut_or_corrupted_models_read_or_refused_cleanly(tmp_path_factory, at, byte):
    """Property: a written xmodel cut short or with one byte changed never escapes as another exception."""
    folder = tmp_path_factory.mktemp("x")
    data = bytearray(_demo_shapes(folder).read_bytes())
    at = at % len(data)
    for variant in (bytes(data[:at]), bytes(data[:at]) + bytes([byte]) + bytes(data[at + 1:])):
        (folder / "v.xmodel").write_bytes(variant)
        try:
            judge(read_xmodel(folder / "v.xmodel"), VAI25_STACK)
        except XmodelError:
            pass


@pytest.mark.parametrize("text,value", [("", None), ("0x101000016010200", 0x101000016010200),
                                        (str(STOCK_FINGERPRINT), STOCK_FINGERPRINT)])
def test_fingerprint_parameter(text, value):
    assert parse_fingerprint(text) == value


@pytest.mark.parametrize("text", ["B4096", "0x", "-5", "0x1" + "0" * 17])
def test_bad_fingerprint_parameter(text):
    with pytest.raises(ValueError, match="fingerprint"):
        parse_fingerprint(text)
