"""``yolov5-dpu doctor`` (dpu.doctor): a KV260 as the checks read it (device tree, package metadata, XRT's
version file, VART's libraries, uid, environment, pynq-dpu 2.5.1's real package layout, the real xmodels), and
each broken variant failing on exactly its line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from vart_emulator import overlay_files
from xmodel_writer import write_xmodel

from yolov5_dpu_ros.cli.main import main
from yolov5_dpu_ros.core.model_meta import load_meta, save_meta
from yolov5_dpu_ros.dpu.board import NEEDS_ROOT, pynq_version_note
from yolov5_dpu_ros.dpu.doctor import FAIL, OK, WARN, Environment, diagnose
from yolov5_dpu_ros.dpu.exclusive import Holder
from yolov5_dpu_ros.dpu.stacks import STACKS

PRESET = "config/models/yolox_nano_coco.yaml"


@pytest.fixture()
def kv260(tmp_path, pynq_dpu_source):
    """A KV260 with Kria-PYNQ 3.0.1, pynq-dpu 2.5.1 (its real package folder with the stock overlay's files), XRT
    2.14, VART 2.5, root, the PYNQ venv, ROS 2 Humble with vision_msgs 4.1.1 and this package, a big rmem_max."""
    root = tmp_path / "kv260"
    package = root / "site" / "pynq_dpu"
    shutil.copytree(pynq_dpu_source, package)
    overlay_files(package)
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "model").write_text("Xilinx Kria KV260 Vision AI Starter Kit\x00")
    (root / "proc" / "meminfo").write_text("MemTotal:        4030460 kB\n")
    (root / "proc" / "rmem_max").write_text("67108864\n")
    (root / "os-release").write_text('PRETTY_NAME="Ubuntu 22.04.3 LTS"\n')
    (root / "xrt").mkdir()
    (root / "xrt" / "version.json").write_text('{"BUILD_VERSION" : "2.14.354"}')
    (root / "lib").mkdir()
    (root / "lib" / "libvart-runner.so.2.5.0").write_bytes(b"")
    (root / "lib" / "libvart-runner.so.2").write_bytes(b"")
    (root / "vart.conf").write_text("firmware: /usr/lib/dpu.xclbin\n")
    ament = root / "ros"
    (ament / "share" / "vision_msgs").mkdir(parents=True)
    (ament / "share" / "vision_msgs" / "package.xml").write_text("<package><version>4.1.1</version></package>")
    index = ament / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "yolov5_dpu_ros").write_text("")
    versions = {"pynq": "3.0.1", "pynq-dpu": "2.5.1"}
    return Environment(
        device_tree_model=root / "proc" / "model", meminfo=root / "proc" / "meminfo", os_release=root / "os-release",
        vart_conf=root / "vart.conf", xrt_version_file=root / "xrt" / "version.json", vart_libraries=root / "lib",
        rmem_max=root / "proc" / "rmem_max",
        environ={"VIRTUAL_ENV": "/usr/local/share/pynq-venv", "ROS_DISTRO": "humble",
                 "AMENT_PREFIX_PATH": str(ament), "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
        version=versions.get, run_version=lambda command: None, geteuid=lambda: 0, pynq_dpu=lambda: package,
        importable=lambda name: name in ("pynq", "pynq_dpu", "vart", "xir", "rclpy", "onnxruntime"),
        interpreter="/usr/local/share/pynq-venv/bin/python3", dpu_holders=lambda: [], cpu_count=lambda: 4,
        kernel=lambda: "5.15.0-1027-xilinx-zynqmp")


def _statuses(report):
    return {c.name: c.status for c in report.checks}


def test_a_kv260_with_pynq_3_0_1_and_the_stock_overlay_passes(kv260, real_xmodels):
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    assert set(_statuses(report).values()) == {OK}, report.text()
    assert report.dpu_ready and report.onnx_ready
    assert "Xilinx Kria KV260" in report.text() and "4 cores, 3935 MiB memory" in report.text()


def _only_problem(report, name, status=FAIL):
    statuses = _statuses(report)
    assert statuses[name] == status, report.text()
    assert {n: s for n, s in statuses.items() if n != name} == dict.fromkeys(set(statuses) - {name}, OK), \
        report.text()


def test_pynq_3_1_is_a_warning_on_its_line(kv260, real_xmodels):
    kv260.version = {"pynq": "3.1.0", "pynq-dpu": "2.5.1"}.get
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "PYNQ", WARN)
    assert pynq_version_note(STACKS["2.5"]) in report.text() and report.dpu_ready


def test_not_root_fails_on_its_line_with_the_backends_words(kv260, real_xmodels):
    kv260.geteuid = lambda: 1000
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "root")
    assert NEEDS_ROOT in report.text() and not report.dpu_ready


def test_a_missing_xclbin_fails_the_overlay_line(kv260, real_xmodels):
    (kv260.pynq_dpu() / "dpu.xclbin").unlink()
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "overlay")
    assert "overlay files missing" in report.text()


def test_an_overlay_named_dpu_kit_fails_the_overlay_line(kv260, real_xmodels, tmp_path):
    bit = overlay_files(tmp_path / "custom", "dpu_kit")
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET, bit=str(bit))
    _only_problem(report, "overlay")
    assert "named dpu.bit, dpu.hwh and dpu.xclbin" in report.text()


def test_the_venv_line_reads_what_the_interpreter_imports_not_the_environment(kv260, real_xmodels):
    """The node built with colcon's /usr/bin/python3 in its shebang, started after sourcing the PYNQ venv:
    VIRTUAL_ENV names the venv, but the interpreter sees none of it."""
    kv260.environ = {**kv260.environ, "VIRTUAL_ENV": "/usr/local/share/pynq-venv"}
    kv260.interpreter = "/usr/bin/python3"
    kv260.importable = lambda name: name in ("rclpy", "onnxruntime")
    kv260.pynq_dpu = lambda: None
    kv260.version = {}.get
    report = diagnose(kv260)
    assert _statuses(report)["PYNQ venv"] == FAIL and not report.dpu_ready
    assert "/usr/bin/python3 cannot import pynq, pynq_dpu, vart, xir" in report.text()
    assert "source /etc/profile.d/pynq_venv.sh" in report.text()


@pytest.mark.parametrize("text,raised", [(None, "FileNotFoundError"), ("", "IndexError"),
                                         ("firmware:/run/dpu.xclbin", "IndexError")])
def test_a_vart_conf_pynq_dpu_cannot_read_is_a_warning_saying_what_happens(kv260, real_xmodels, text, raised):
    kv260.vart_conf.unlink()
    if text is not None:
        kv260.vart_conf.write_text(text)
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "/etc/vart.conf", WARN)
    assert raised in report.text() and "the dpu backend writes 'firmware: /usr/lib/dpu.xclbin'" in report.text()
    assert report.dpu_ready


def test_another_process_holding_the_dpu_fails_its_line_naming_it(kv260, real_xmodels):
    kv260.dpu_holders = lambda: [Holder(4242, "/usr/bin/python3 detect_node", Path("/tmp/DPU_0"))]
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "DPU")
    assert "pid 4242 (/usr/bin/python3 detect_node)" in report.text() and not report.dpu_ready


def test_the_node_middleware_line_as_root_on_fast_dds(kv260, tmp_path):
    index = Path(kv260.environ["AMENT_PREFIX_PATH"]) / "share" / "ament_index" / "resource_index" / "packages"
    kv260.environ = {k: v for k, v in kv260.environ.items() if k != "RMW_IMPLEMENTATION"}  # Humble's default
    report = diagnose(kv260)
    assert _statuses(report)["node middleware"] == FAIL and report.dpu_ready  # not the DPU's business
    assert "apt install ros-humble-rmw-cyclonedds-cpp" in report.text()
    (index / "rmw_cyclonedds_cpp").write_text("")
    report = diagnose(kv260)
    assert _statuses(report)["node middleware"] == OK
    assert "the node runs on rmw_cyclonedds_cpp: the node runs as root" in report.text()
    assert "camera driver run by another user on rmw_fastrtps_cpp reaches the root node over UDP" in report.text()
    kv260.geteuid = lambda: 1000
    assert "the node runs on rmw_fastrtps_cpp: Humble's default (the node does not run as root)" in \
        diagnose(kv260).text()


def test_a_vai_3_5_model_fails_the_xmodel_line(kv260, real_xmodels):
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai35.xmodel"), PRESET)
    _only_problem(report, "xmodel")
    assert "Vitis AI 3.5.0" in report.text()


def test_the_first_line_names_the_stack_the_checks_are_made_against(kv260):
    first = diagnose(kv260).checks[0]
    assert (first.name, first.status) == ("DPU stack", OK)
    assert first.found == ("pynq-dpu 2.5.1 with VART 2.5 (pynq-dpu 2.5.1, VART 2.5.0): runs models of Vitis AI 2.5.x "
                           "compiled for its overlay's DPU")
    assert diagnose(kv260).text().startswith("✔ DPU stack: pynq-dpu 2.5.1 with VART 2.5")


def _stack_3_5(kv260):
    """The same board set up by AMD's Kria robotics guide: pynq-dpu 3.5.0 and the Vitis AI 3.5 runtime."""
    kv260.version = {"pynq": "3.0.1", "pynq-dpu": "3.5.0"}.get
    for old in kv260.vart_libraries.glob("libvart-runner.so.*"):
        old.unlink()
    (kv260.vart_libraries / "libvart-runner.so.3.5.0").write_bytes(b"")


def _preset_model(path, compiler, fingerprint):
    meta = load_meta(PRESET)
    outputs = [(f"head_{i}", shape, 2) for i, shape in enumerate(meta.head_shapes)]
    return write_xmodel(path, (1, 416, 416, 3), -1, outputs, fingerprint=fingerprint, compiler=compiler)


def test_a_board_on_the_3_5_stack_runs_its_own_models_and_refuses_the_2_5_ones(kv260, real_xmodels, tmp_path):
    _stack_3_5(kv260)
    model = _preset_model(tmp_path / "vai35.xmodel", "3.5.0", 0x101000056010407)
    report = diagnose(kv260, str(model), PRESET)
    assert set(_statuses(report).values()) == {OK}, report.text()
    assert report.checks[0].found.startswith("pynq-dpu 3.5.0 with VART 3.5 (pynq-dpu 3.5.0, VART 3.5.0)")
    assert "DPU fingerprint 0x101000056010407" in report.text()
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), PRESET)
    _only_problem(report, "xmodel")
    assert "set the board up with pynq-dpu 2.5.1" in report.text() and "--dpu-runtime 3.5" in report.text()


def test_pynq_dpu_3_5_on_vart_2_5_fails_the_stack_and_vart_lines(kv260):
    kv260.version = {"pynq": "3.0.1", "pynq-dpu": "3.5.0"}.get
    report = diagnose(kv260)
    assert {n: s for n, s in _statuses(report).items() if s != OK} == {"DPU stack": FAIL, "VART": FAIL}
    assert "but VART 2.5.0 is installed" in report.text() and not report.dpu_ready


def test_dpu_runtime_judges_against_the_named_stack(kv260, tmp_path):
    model = _preset_model(tmp_path / "vai35.xmodel", "3.5.0", 0x101000056010407)
    report = diagnose(kv260, str(model), PRESET, dpu_runtime="3.5")
    assert report.checks[0].found.startswith("pynq-dpu 3.5.0 with VART 3.5 (dpu_runtime 3.5)")
    assert _statuses(report)["xmodel"] == OK and _statuses(report)["VART"] == FAIL  # the board has VART 2.5


def test_on_a_pc_the_model_is_judged_on_every_stack(real_xmodels, capsys):
    assert main(["doctor", "--xmodel", str(real_xmodels / "yolox_nano_b4096_vai25.xmodel")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✗ DPU stack: pynq-dpu not installed, VART not found")
    assert "✔ xmodel on the 2.5 stack:" in out and "✗ xmodel on the 3.5 stack:" in out
    vai25 = str(real_xmodels / "yolox_nano_b4096_vai25.xmodel")
    assert main(["doctor", "--dpu-runtime", "2.5", "--xmodel", vai25]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✔ DPU stack: pynq-dpu 2.5.1 with VART 2.5 (dpu_runtime 2.5)")
    assert "✔ xmodel: " in out and "xmodel on the" not in out


def test_a_b512_model_fails_the_xmodel_line(kv260, tmp_path):
    meta = load_meta(PRESET)
    outputs = [(f"head_{i}", shape, 2) for i, shape in enumerate(meta.head_shapes)]
    xmodel = write_xmodel(tmp_path / "b512.xmodel", (1, 416, 416, 3), -1, outputs, fingerprint=0x101000016010200,
                          dpu_name="DPUCZDX8G_ISA1_B512")
    report = diagnose(kv260, str(xmodel), PRESET)
    _only_problem(report, "xmodel")
    assert "DPUCZDX8G_ISA1_B512" in report.text()


def test_heads_that_do_not_match_the_metadata_fail_the_metadata_line(kv260, real_xmodels, tmp_path):
    meta = load_meta(PRESET)
    other = tmp_path / "other.yaml"
    save_meta(meta.__class__(**{**meta.__dict__, "names": meta.names[:20]}), other)
    report = diagnose(kv260, str(real_xmodels / "yolox_nano_b4096_vai25.xmodel"), str(other))
    _only_problem(report, "model metadata")
    assert "matches no head" in report.text()


def test_a_small_rmem_max_and_no_ros_are_warnings_not_failures(kv260):
    kv260.rmem_max.write_text("212992\n")
    kv260.environ = {"VIRTUAL_ENV": "/usr/local/share/pynq-venv"}
    report = diagnose(kv260)
    statuses = _statuses(report)
    assert statuses["net.core.rmem_max"] == WARN and "sysctl -w net.core.rmem_max" in report.text()
    assert statuses["ROS 2"] == WARN and statuses["middleware"] == OK and report.dpu_ready
    assert "rmw_fastrtps_cpp (Humble's default" in report.text()


def test_on_this_pc_the_command_says_the_dpu_cannot_run_and_exits_1(capsys):
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ board" in out and "the dpu backend cannot start here" in out
    assert main(["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["dpu_ready"] is False and {"name", "status", "found", "fix"} == set(report["checks"][0])
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn", "fail"}


def test_bad_arguments_exit_2(capsys):
    assert main(["doctor", "--dpu-fingerprint", "zebra"]) == 2
    assert "--dpu-fingerprint" in capsys.readouterr().err


def test_an_unreadable_xmodel_fails_its_own_line_only(kv260, tmp_path):
    bad = tmp_path / "bad.xmodel"
    bad.write_bytes(b"not a model")
    report = diagnose(kv260, str(bad), PRESET)
    _only_problem(report, "xmodel")
