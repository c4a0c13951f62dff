"""model_prep on yolov5n built from its yaml (random init): the steps runnable without Vitis AI, and the
guards and arguments of the ones that need it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from demo.shapes import write_dataset
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.dpu.stacks import STACKS


@pytest.fixture(scope="module")
def yolo(yolo_ref):
    from model_prep import yolov5_model as ym

    return ym.yolov5_modules()


@pytest.fixture(scope="module")
def stock_yaml(yolo_ref):
    return Path(yolo_ref.models_dir) / "yolov5n.yaml"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root, {"val": 6, "test": 6})
    return root


def test_relu_check_fails_on_the_stock_silu_yaml(yolo, stock_yaml):
    from model_prep import yolov5_model as ym

    stock = ym.build_model(stock_yaml, yolo, activation=None)
    assert any("SiLU" in m for m in ym.dpu_incompatible_modules(stock))
    with pytest.raises(SystemExit, match="activation: nn.ReLU"):
        ym.check_dpu_activations(stock)


def test_blog_act_key_is_ignored_and_prepare_uses_activation(yolo, stock_yaml, capsys):
    from model_prep import yolov5_model as ym

    blog = {**yaml.safe_load(stock_yaml.read_text()), "act": "nn.ReLU()"}
    as_written = ym.build_model(blog, yolo, activation=None)
    assert ym.dpu_incompatible_modules(as_written)  # 'act:' left SiLU everywhere
    fixed = ym.build_model(blog, yolo)
    assert ym.dpu_incompatible_modules(fixed) == []
    assert "'act: nn.ReLU()' is ignored" in capsys.readouterr().err
    again = ym.build_model(stock_yaml, yolo, activation=None)  # YOLOv5 sets Conv.default_act class-wide
    assert ym.dpu_incompatible_modules(again), "the ReLU activation leaked into a later model"


def test_prepare_writes_training_yaml_and_metadata(yolo, stock_yaml, tmp_path):
    from model_prep import yolov5_model as ym
    from model_prep.prepare import main

    assert main(["--cfg", str(stock_yaml), "--nc", "5", "--img", "320", "--names-file",
                 str(Path(__file__).resolve().parents[1] / "config" / "shapes.names"),
                 "--out-cfg", str(tmp_path / "relu.yaml"), "--out-meta", str(tmp_path / "meta.yaml")]) == 0
    cfg = yaml.safe_load((tmp_path / "relu.yaml").read_text())
    assert cfg["activation"] == "nn.ReLU()" and cfg["nc"] == 5 and "act" not in cfg
    meta = load_meta(tmp_path / "meta.yaml")
    model = ym.build_model(tmp_path / "relu.yaml", yolo)
    head = ym.detect_layer(model, yolo)
    assert list(meta.strides) == head.stride.int().tolist()
    np.testing.assert_allclose(meta.anchors_array(), (head.anchors * head.stride.view(-1, 1, 1)).numpy())
    assert meta.names == ("circle", "square", "triangle", "star", "cross") and meta.input_hw == (320, 320)
    assert meta.activation == "relu"


def test_prepare_leakyrelu_uses_the_dpu_slope(yolo, stock_yaml, tmp_path):
    import torch

    from model_prep import yolov5_model as ym
    from model_prep.prepare import main

    assert main(["--cfg", str(stock_yaml), "--nc", "3", "--img", "256", "--activation", "leakyrelu",
                 "--out-cfg", str(tmp_path / "leaky.yaml"), "--out-meta", str(tmp_path / "meta.yaml")]) == 0
    cfg = yaml.safe_load((tmp_path / "leaky.yaml").read_text())
    assert cfg["activation"] == "nn.LeakyReLU(0.1015625)"
    assert load_meta(tmp_path / "meta.yaml").activation == "leakyrelu"
    model = ym.build_model(tmp_path / "leaky.yaml", yolo, activation=None)  # the yaml as YOLOv5 reads it
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {26 / 256} and ym.model_activation(model) == "leakyrelu"
    other = ym.build_model(stock_yaml, yolo, activation="nn.LeakyReLU(0.1)")
    with pytest.raises(SystemExit, match="LeakyReLU\\(0.1\\), the DPU's slope is 0.1015625"):
        ym.check_dpu_activations(other)


def test_export_onnx_reproduces_the_raw_heads(yolo, stock_yaml, shapes, tmp_path):
    import onnxruntime as ort
    import torch

    from model_prep import yolov5_model as ym
    from model_prep.export_onnx import main

    out = tmp_path / "m.onnx"
    assert main(["--cfg", str(stock_yaml), "--nc", "5", "--img", "320", "--calib", str(shapes / "images" / "val"),
                 "--data", str(shapes / "data.yaml"), "--out", str(out)]) == 0
    meta = load_meta(out.with_suffix(".yaml"))
    assert meta.output_fix_points is not None and len(meta.output_fix_points) == 3
    model = ym.build_model(stock_yaml, yolo, nc=5)  # same seed: the same weights as exported
    ym.use_raw_heads(model, yolo)
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = [h.numpy() for h in model(x)]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape
        assert np.abs(g - r).max() / np.abs(r).max() <= 1e-4
    head = ym.detect_layer(model, yolo)
    np.testing.assert_allclose(meta.anchors_array(), (head.anchors * head.stride.view(-1, 1, 1)).numpy())


def test_dpu_sim_end_to_end_on_a_tiny_labelled_set(yolo, stock_yaml, shapes, capsys):
    from model_prep.dpu_sim import main

    assert main(["--cfg", str(stock_yaml), "--nc", "5", "--img", "320", "--calib", str(shapes / "images" / "val"),
                 "--labelled", str(shapes / "images" / "test"), "--count", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: [float(v) for v in line.split()[-2:]] for line in lines[1:]}
    assert set(rows) == {"float", "dpu"} and all(0 <= v <= 1 for r in rows.values() for v in r)


def test_emulated_heads_sit_on_their_int8_grid(yolo, stock_yaml, shapes):
    import torch

    from model_prep import yolov5_model as ym
    from model_prep.dpu_sim import DpuEmulation

    model = ym.build_model(stock_yaml, yolo, nc=5)
    ym.use_raw_heads(model, yolo)
    emulation = DpuEmulation(model, yolo)
    inputs = [torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    emulation.calibrate(inputs)
    with torch.no_grad():
        emulated = emulation(inputs[0])
        reference = model(inputs[0])
    for e, r in zip(emulated, reference, strict=True):
        e = e.numpy()
        steps = [e * 2.0**fp for fp in range(-4, 12)]
        assert any(np.allclose(s, np.round(s), atol=1e-3) and np.abs(s).max() <= 128 for s in steps)
        assert 0 < np.abs(e - r.numpy()).max() < np.abs(r.numpy()).max()


@pytest.mark.parametrize("module", ["prepare", "export_onnx", "quantize", "compile", "inspect", "dpu_sim"])
def test_every_step_has_help(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"model_prep.{module}").main(["--help"])
    assert e.value.code == 0 and "usage: python -m model_prep." in capsys.readouterr().out


def test_vitis_ai_steps_name_their_environment(tmp_path, shapes, stock_yaml):
    from model_prep import compile as compile_step
    from model_prep import quantize

    docker = r"Vitis AI docker of the board's DPU stack.*2.5: xilinx/vitis-ai-cpu:2.5 \(Python 3.7, torch 1.10.1\); " \
             r"3.5: xilinx/vitis-ai-pytorch-cpu:3.5.0 \(Python 3.8, torch 1.13.1\)"
    with pytest.raises(SystemExit, match="pytorch_nndct.*" + docker):
        quantize.main(["--cfg", str(stock_yaml), "--img", "320", "--calib", str(shapes / "images" / "val")])
    with pytest.raises(SystemExit, match="vai_c_xir.*" + docker):
        compile_step.main(["--dpu-runtime", "3.5", "--xmodel", str(tmp_path / "m_int.xmodel")])


def test_compile_checks_the_arch_file_against_the_stack(tmp_path):
    from model_prep.compile import check_arch

    vai25, vai35 = STACKS["2.5"], STACKS["3.5"]
    with pytest.raises(SystemExit, match="arch file not found.*Vitis AI 3.5 docker"):
        check_arch(tmp_path / "none.json", vai35, vai35.fingerprint)
    (tmp_path / "bad.json").write_text('{"something": 1}')
    with pytest.raises(SystemExit, match="neither 'target' nor 'fingerprint'"):
        check_arch(tmp_path / "bad.json", vai25, vai25.fingerprint)
    (tmp_path / "kv260.json").write_text('{"target": "DPUCZDX8G_ISA1_B4096"}')
    check_arch(tmp_path / "kv260.json", vai25, vai25.fingerprint)
    (tmp_path / "vai35.json").write_text('{"fingerprint": "0x101000056010407"}')
    check_arch(tmp_path / "vai35.json", vai35, vai35.fingerprint)
    with pytest.raises(SystemExit, match="compiles for the DPU 0x101000056010407, but pynq-dpu 2.5.1 with VART 2.5's "
                                         "overlay has 0x101000016010407: use the KV260 arch.json of the Vitis AI 2.5"):
        check_arch(tmp_path / "vai35.json", vai25, vai25.fingerprint)


@pytest.fixture()
def fake_vai_c_xir(tmp_path, monkeypatch):
    """TEST DOUBLE of vai_c_xir (no Vitis AI docker here): its command line as UG1414 gives it (-x -a -o -n) and an
    output named OUT/NAME.xmodel, compiled as the Vitis AI release in FAKE_COMPILER for the arch.json's fingerprint."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "vai_c_xir"
    program.write_text(f"""#!{sys.executable}
import json, os, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from xmodel_writer import write_xmodel
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
arch = json.loads(Path(args["-a"]).read_text())
out = Path(args["-o"]) / (args["-n"] + ".xmodel")
out.parent.mkdir(parents=True, exist_ok=True)
write_xmodel(out, (1, 320, 320, 3), 6, [("h8", (1, 40, 40, 30), 3)], fingerprint=int(arch["fingerprint"], 0),
             compiler=os.environ["FAKE_COMPILER"])
""")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return program


@pytest.mark.parametrize("compiler,runs", [("3.5.0", True), ("3.0.0", True), ("2.5.0", False)])
def test_compile_keeps_only_a_model_the_named_stack_runs(tmp_path, fake_vai_c_xir, monkeypatch, compiler, runs):
    from model_prep import compile as compile_step

    monkeypatch.setenv("FAKE_COMPILER", compiler)
    arch = tmp_path / "arch.json"
    arch.write_text('{"fingerprint": "0x101000056010407"}')
    (tmp_path / "m_int.xmodel").write_bytes(b"")
    argv = ["--dpu-runtime", "3.5", "--xmodel", str(tmp_path / "m_int.xmodel"), "--arch", str(arch), "--out",
            str(tmp_path / "out"), "--name", "m"]
    if runs:
        assert compile_step.main(argv) == 0
        assert (tmp_path / "out" / "m.xmodel").is_file()
    else:
        with pytest.raises(SystemExit, match="(?s)would not run on the board .removed.*compiled by Vitis AI 2.5.0"):
            compile_step.main(argv)
        assert not (tmp_path / "out" / "m.xmodel").exists()


def test_prepare_checks_a_trained_checkpoint(yolo, stock_yaml, tmp_path):
    import torch

    from model_prep import yolov5_model as ym
    from model_prep.prepare import main

    relu = ym.build_model(stock_yaml, yolo, nc=3)
    torch.save({"model": relu, "epoch": 1}, tmp_path / "relu.pt")
    assert main(["--weights", str(tmp_path / "relu.pt"), "--img", "256", "--names", "a", "b", "c",
                 "--out-meta", str(tmp_path / "m.yaml")]) == 0
    assert load_meta(tmp_path / "m.yaml").head_shapes[0] == (1, 32, 32, 24)
    silu = ym.build_model(stock_yaml, yolo, nc=3, activation=None)
    torch.save({"ema": silu}, tmp_path / "silu.pt")
    with pytest.raises(SystemExit, match="activations the KV260 DPU cannot run"):
        main(["--weights", str(tmp_path / "silu.pt"), "--img", "256", "--out-meta", str(tmp_path / "x.yaml")])
    with pytest.raises(SystemExit, match="multiples of 32"):
        main(["--weights", str(tmp_path / "relu.pt"), "--img", "300", "--out-meta", str(tmp_path / "x.yaml")])
