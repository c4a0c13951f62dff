"""Both Kria DPU stacks (pynq-dpu 2.5.1 on VART 2.5, pynq-dpu 3.5.0 on VART 3.5): which one a board has, and every
model judged against each, the real compiled KV260 fixtures among them."""

from __future__ import annotations

import re

import pytest
from xmodel_writer import write_xmodel

from model_prep import inspect as inspect_step
from yolov5_dpu_ros.dpu import stacks
from yolov5_dpu_ros.dpu.installed import detect_here, installed_version, vart_version
from yolov5_dpu_ros.dpu.stacks import NEEDS_PYNQ, STACKS, DpuStack, detect, stacks_running
from yolov5_dpu_ros.dpu.verdict import judge
from yolov5_dpu_ros.dpu.xmodel import read_xmodel

VAI25, VAI35 = STACKS["2.5"], STACKS["3.5"]
HEADS = [("h8", (1, 40, 40, 30), 3), ("h16", (1, 20, 20, 30), 3), ("h32", (1, 10, 10, 30), 3)]


def _model(tmp_path, compiler: str, fingerprint: int):
    name = f"m_{compiler}_{fingerprint:x}.xmodel"
    return read_xmodel(write_xmodel(tmp_path / name, (1, 320, 320, 3), 6, HEADS, fingerprint=fingerprint,
                                    compiler=compiler))


@pytest.mark.parametrize("pynq_dpu,vart,expected", [
    ("2.5.1", "2.5.0", "2.5"), ("2.5.1", None, "2.5"), ("3.5.0", "3.5.0", "3.5"), ("3.5.0", None, "3.5"),
    ("2.5.0", "2.5.0", "2.5"),
])
def test_the_installed_pynq_dpu_and_vart_decide_the_stack(pynq_dpu, vart, expected):
    found = detect("auto", pynq_dpu, vart)
    assert found.stack is STACKS[expected] and found.problem == ""
    assert f"pynq-dpu {pynq_dpu}" in found.how and f"VART {vart or 'not found'}" in found.how


def test_pynq_dpu_3_5_without_the_vitis_ai_3_5_runtime_is_refused_with_the_setup():
    """pynq-dpu 3.5.0's setup.py no longer installs VART (install_vart_pkg is commented out): AMD's guide installs
    the 3.5 runtime debs first. A board that skipped that step still has VART 2.5."""
    found = detect("auto", "3.5.0", "2.5.0")
    assert found.stack is VAI35
    assert "pynq-dpu 3.5.0 runs on VART 3.5, but VART 2.5.0 is installed" in found.problem
    assert "the Vitis AI 3.5 runtime debs" in found.problem and "dpu_runtime" in found.problem


def test_no_pynq_dpu_or_an_unknown_one_is_refused_naming_what_to_do():
    assert detect("auto", None, None).problem == NEEDS_PYNQ
    unknown = detect("auto", "3.0.0", "3.0.0")
    assert unknown.stack is None
    assert ("no known DPU stack (pynq-dpu 3.0.0, VART 3.0.0; known pynq-dpu: 2.5.1 (2.5), 3.5.0 (3.5))"
            in unknown.problem)


@pytest.mark.parametrize("choice", ["2.5", "3.5"])
def test_dpu_runtime_overrides_what_is_installed(choice):
    found = detect(choice, "3.5.0" if choice == "2.5" else "2.5.1", "2.5.0")
    assert found.stack is STACKS[choice] and found.problem == "" and found.how == f"dpu_runtime {choice}"
    with pytest.raises(ValueError, match=r"DPU runtime '3.0' is not one of \['auto', '2.5', '3.5'\]"):
        detect("3.0")


def test_this_machine_is_read_from_package_metadata_and_vart_library_names(tmp_path, monkeypatch):
    site, libraries = tmp_path / "site", tmp_path / "lib"
    (site / "pynq_dpu-3.5.0.dist-info").mkdir(parents=True)
    (site / "pynq_dpu-3.5.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: pynq-dpu\n"
                                                                 "Version: 3.5.0\n")
    libraries.mkdir()
    for name in ("libvart-runner.so.3", "libvart-runner.so.3.5.0", "libvart-util.so.2.5.0"):
        (libraries / name).write_bytes(b"")
    monkeypatch.syspath_prepend(str(site))
    assert installed_version("pynq-dpu") == "3.5.0" and vart_version(libraries) == "3.5.0"
    assert detect_here("auto", libraries=libraries).stack is VAI35
    assert vart_version(tmp_path / "none") is None and vart_version(site) is None


def test_the_real_vai25_model_runs_on_the_2_5_stack_only(real_xmodels):
    info = read_xmodel(real_xmodels / "yolox_nano_b4096_vai25.xmodel")
    assert judge(info, VAI25).runs
    refused = judge(info, VAI35)
    assert not refused.runs and len(refused.problems) == 2
    fingerprint, compiler = refused.problems
    assert "fingerprint 0x101000016010407 (the DPU of pynq-dpu 2.5.1's KV260 overlay)" in fingerprint
    assert "pynq-dpu 3.5.0 with VART 3.5 is 0x101000056010407" in fingerprint
    assert "compiled by Vitis AI 2.5.0 (a model for pynq-dpu 2.5.1 with VART 2.5)" in compiler
    for problem in refused.problems:  # the stack it was built for, and both fixes
        assert "Vitis AI 3.5 docker (xilinx/vitis-ai-pytorch-cpu:3.5.0)" in problem
        assert "--dpu-runtime 3.5" in problem and "set the board up with pynq-dpu 2.5.1" in problem
        assert "allow_other_compiler" not in problem


def test_the_real_vai35_model_for_the_old_dpu_runs_on_neither_stock_stack(real_xmodels):
    """Vitis AI 3.5 compiled it for the 2.5.1 overlay's DPU (0x101000016010407): the 2.5 stack's VART does not run
    3.5 models, the 3.5 stack's overlay has another DPU."""
    info = read_xmodel(real_xmodels / "yolox_nano_b4096_vai35.xmodel")
    on_25, on_35 = judge(info, VAI25), judge(info, VAI35)
    assert not on_25.runs and not on_35.runs
    (problem,) = on_25.problems
    assert "compiled by Vitis AI 3.5.0 (a model for pynq-dpu 3.5.0 with VART 3.5)" in problem
    assert "Vitis AI 2.5 docker" in problem and "set the board up with pynq-dpu 3.5.0" in problem
    (problem,) = on_35.problems
    assert "CHECK fingerprint fail" in problem and "pynq-dpu 2.5.1's KV260 overlay" in problem
    assert judge(info, VAI35, overlay_fingerprint=0x101000016010407).runs  # a custom overlay with the old DPU
    assert judge(info, VAI25, allow_other_compiler=True).runs


@pytest.mark.parametrize("compiler,fingerprint,runs_on", [
    ("3.5.0", 0x101000056010407, {"3.5"}),  # the stock Vitis AI 3.5 KV260 compile
    ("3.0.0", 0x101000056010407, {"3.5"}),  # the Vitis AI 3.0 model zoo for the KV260
    ("2.5.0", 0x101000016010407, {"2.5"}),
    ("2.5.0", 0x101000056010407, set()),
    ("3.5.0", 0x101000016010407, set()),
    ("3.5.0", 0x101000016010200, set()),  # a B512
    ("1.4.1", 0x101000016010407, set()),
])
def test_each_model_runs_on_exactly_the_stacks_made_for_it(tmp_path, compiler, fingerprint, runs_on):
    info = _model(tmp_path, compiler, fingerprint)
    assert {s.name for s in STACKS.values() if judge(info, s).runs} == runs_on
    for stack in STACKS.values():
        verdict = judge(info, stack)
        if not verdict.runs:
            assert all(stack.title in p or "Vitis AI" in p for p in verdict.problems)
            assert all(f"--dpu-runtime {stack.name}" in p for p in verdict.problems)


def test_inspect_gives_one_verdict_line_per_stack_and_exits_0_when_one_runs(tmp_path, capsys):
    model = write_xmodel(tmp_path / "m.xmodel", (1, 320, 320, 3), 6, HEADS, fingerprint=0x101000056010407,
                         compiler="3.5.0")
    assert inspect_step.main([str(model)]) == 0
    verdicts = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verdict")]
    assert verdicts == ["verdict (2.5 stack): REFUSED on pynq-dpu 2.5.1 with VART 2.5",
                        "verdict (3.5 stack): runs with pynq-dpu 3.5.0 with VART 3.5 on the overlay 0x101000056010407 "
                        "(the DPU of pynq-dpu 3.5.0's KV260 overlay)"]
    assert inspect_step.main([str(model), "--dpu-runtime", "3.5"]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("verdict")] == verdicts[1:]
    assert inspect_step.main([str(model), "--dpu-runtime", "2.5"]) == 1
    out = capsys.readouterr().out
    assert "verdict (3.5 stack)" not in out and "compiled by Vitis AI 3.5.0" in out


def test_a_third_stack_is_one_table_entry(tmp_path, monkeypatch):
    """A stack added to the table is detected, judged against and offered as a choice with nothing else changed."""
    third = DpuStack(name="4.0", pynq_dpu="4.0.0", vart="4.0", compilers=("4.0",), fingerprint=0x101000096010407,
                     fingerprint_source="test", vitis_ai="4.0", docker="test:4.0", python="Python 3.10",
                     pynq="3.1", setup="a test setup", loader="the same dpu.py")
    monkeypatch.setitem(stacks.STACKS, "4.0", third)
    assert detect("auto", "4.0.0", "4.0.1").stack is third
    assert stacks_running(("4.0.2",)) == [third]
    info = _model(tmp_path, "4.0.0", third.fingerprint)
    assert judge(info, third).runs and not judge(info, VAI35).runs
    assert re.search(r"compiled by Vitis AI 4.0.0 \(a model for pynq-dpu 4.0.0 with VART 4.0\)",
                     judge(info, VAI35).problems[-1])
    assert stacks.stack_named("4.0") is third


def test_every_stack_names_where_its_values_come_from():
    for stack in STACKS.values():
        assert stack.compilers and all(re.fullmatch(r"\d+\.\d+", c) for c in stack.compilers)
        assert stack.fingerprint_source and stack.setup and stack.loader and stack.docker and stack.python
        assert stack.runs_compiler(stack.vart + ".0")
    assert not VAI25.runs_compiler("2.50.0") and VAI35.runs_compiler("3.0.1") and not VAI35.runs_compiler("3.55")
