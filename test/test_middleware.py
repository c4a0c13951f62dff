"""Middleware settings for camera-sized images (core.middleware, config/*.xml, the launch file's handling)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from yolov5_dpu_ros.core.middleware import (
    FRAME_720P_BGR8,
    MIN_RMEM,
    RMW_CHOICE,
    RMW_REASON,
    middleware_environment,
    node_middleware,
    prepare_node_environment,
    read_rmem_max,
    rmem_advice,
)
from yolov5_dpu_ros.ros.param_spec import respawn_wanted

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
FASTDDS_NS = "{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}"


@pytest.mark.parametrize("env,expected", [
    ({}, {"FASTRTPS_DEFAULT_PROFILES_FILE": str(CONFIG / "fastdds.xml")}),  # Humble's default RMW
    ({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": str(CONFIG / "fastdds.xml")}),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, {"CYCLONEDDS_URI": f"file://{CONFIG / 'cyclonedds.xml'}"}),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp", "CYCLONEDDS_URI": "file:///mine.xml"}, {}),  # the user's wins
    ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}, {}),
    ({"RMW_IMPLEMENTATION": "rmw_connextdds"}, {}),  # not one we ship a config for
])
def test_the_config_for_the_active_middleware_unless_the_user_set_one(env, expected):
    assert middleware_environment(env, CONFIG) == expected
    assert middleware_environment(env, CONFIG, enabled=False) == {}


def test_the_cyclonedds_config_asks_a_large_receive_buffer_with_max():
    root = ET.parse(CONFIG / "cyclonedds.xml").getroot()
    assert root.tag == "CycloneDDS"
    element = root.find("./Domain/Internal/SocketReceiveBufferSize")
    assert root.find("./Domain").get("Id") == "any"
    assert element.get("max") == "64MB" and element.get("min") is None  # min fails to start below it


def test_the_fastdds_profile_has_a_shared_memory_segment_of_several_frames_and_no_builtin_transports():
    root = ET.parse(CONFIG / "fastdds.xml").getroot()
    assert root.tag == f"{FASTDDS_NS}profiles"
    transports = {d.findtext(f"{FASTDDS_NS}transport_id"): d for d in root.iter(f"{FASTDDS_NS}transport_descriptor")}
    shm = next(d for d in transports.values() if d.findtext(f"{FASTDDS_NS}type") == "SHM")
    assert int(shm.findtext(f"{FASTDDS_NS}segment_size")) >= 4 * FRAME_720P_BGR8
    assert FRAME_720P_BGR8 <= int(shm.findtext(f"{FASTDDS_NS}maxMessageSize")) <= \
        int(shm.findtext(f"{FASTDDS_NS}segment_size"))
    udp = next(d for d in transports.values() if d.findtext(f"{FASTDDS_NS}type") == "UDPv4")
    assert int(udp.findtext(f"{FASTDDS_NS}receiveBufferSize")) >= MIN_RMEM
    participant = root.find(f"{FASTDDS_NS}participant")
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find(f"{FASTDDS_NS}rtps")
    assert rtps.findtext(f"{FASTDDS_NS}useBuiltinTransports") == "false"
    assert {t.text for t in rtps.iter(f"{FASTDDS_NS}transport_id")} == set(transports)


def test_a_kernel_cap_below_the_frames_gets_the_sysctl_line(tmp_path):
    cap = tmp_path / "rmem_max"
    cap.write_text("212992\n")  # Ubuntu 22.04's default
    advice = rmem_advice(read_rmem_max(cap))
    assert "212992 bytes" in advice and "sudo sysctl -w net.core.rmem_max=" in advice and "/etc/sysctl.d/" in advice
    assert rmem_advice(4 * 1024 * 1024) is None and rmem_advice(None) is None
    assert read_rmem_max(tmp_path / "absent") is None


def test_the_launch_file_applies_the_config_with_an_off_switch():
    tree = ast.parse((ROOT / "launch" / "detect.launch.py").read_text())
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"middleware_environment", "SetEnvironmentVariable", "launch_flag"} <= calls
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "middleware_config" in strings


def _index(tmp_path, *packages):
    """An ament prefix whose index lists these packages."""
    index = tmp_path / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    for package in packages:
        (index / package).write_text("")
    return str(tmp_path)


@pytest.mark.parametrize("shell,root,requested,installed,rmw,why", [
    ({}, True, "auto", True, "rmw_cyclonedds_cpp", "runs as root"),  # Humble's default shell, node as root
    ({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, True, "auto", True, "rmw_cyclonedds_cpp", "runs as root"),
    ({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, True, "auto", False, "rmw_fastrtps_cpp", "not installed"),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, True, "auto", False, "rmw_cyclonedds_cpp", "runs as root"),
    ({}, False, "auto", True, "rmw_fastrtps_cpp", "Humble's default (the node does not run as root)"),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, False, "auto", True, "rmw_cyclonedds_cpp", "shell's"),
    ({}, True, "rmw_fastrtps_cpp", True, "rmw_fastrtps_cpp", "asked for"),  # the user's word for this node
    ({}, True, " ", True, "rmw_cyclonedds_cpp", "runs as root"),  # empty is auto
])
def test_the_nodes_rmw_is_cyclonedds_as_root_unless_asked_otherwise(tmp_path, shell, root, requested, installed,
                                                                     rmw, why):
    env = {**shell, "AMENT_PREFIX_PATH": _index(tmp_path, *(["rmw_cyclonedds_cpp"] if installed else ["rclpy"]))}
    chosen = node_middleware(env, CONFIG, root, requested)
    assert chosen.rmw == rmw and why in chosen.reason
    assert chosen.environment["RMW_IMPLEMENTATION"] == rmw and chosen.environment[RMW_REASON] == chosen.reason
    variable, name = {"rmw_cyclonedds_cpp": ("CYCLONEDDS_URI", f"file://{CONFIG / 'cyclonedds.xml'}"),
                      "rmw_fastrtps_cpp": ("FASTRTPS_DEFAULT_PROFILES_FILE", str(CONFIG / "fastdds.xml"))}[rmw]
    assert chosen.environment[variable] == name  # the package's config for the RMW the node gets
    assert set(node_middleware(env, CONFIG, root, requested, config=False).environment) == {
        "RMW_IMPLEMENTATION", RMW_REASON}


def test_the_users_own_config_for_the_nodes_rmw_wins(tmp_path):
    env = {"CYCLONEDDS_URI": "file:///mine.xml", "AMENT_PREFIX_PATH": _index(tmp_path, "rmw_cyclonedds_cpp")}
    assert "CYCLONEDDS_URI" not in node_middleware(env, CONFIG, True).environment


def test_ros2_run_gets_the_launch_files_rule_and_a_launch_files_choice_stands(tmp_path):
    env = {"AMENT_PREFIX_PATH": _index(tmp_path, "rmw_cyclonedds_cpp")}
    why = prepare_node_environment(env, CONFIG, root=True)
    assert env["RMW_IMPLEMENTATION"] == "rmw_cyclonedds_cpp" and "runs as root" in why
    assert env["CYCLONEDDS_URI"] == f"file://{CONFIG / 'cyclonedds.xml'}"
    launched = {RMW_REASON: "asked for (rmw:=rmw_fastrtps_cpp)", "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    assert prepare_node_environment(launched, CONFIG, root=True) == "asked for (rmw:=rmw_fastrtps_cpp)"
    assert launched["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    asked = {RMW_CHOICE: "rmw_fastrtps_cpp"}
    prepare_node_environment(asked, CONFIG, root=True)
    assert asked["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"


@pytest.mark.parametrize("text,backend,root,wanted", [
    ("auto", "dpu", False, True), ("auto", "", True, True), ("auto", "onnx", False, False),
    ("auto", "", False, False), ("false", "dpu", True, False), ("true", "onnx", False, True), ("AUTO", "dpu", 0, True),
])
def test_respawn_is_on_by_default_where_the_dpu_runs(text, backend, root, wanted):
    assert respawn_wanted(text, backend, root) is wanted


def test_respawn_refuses_other_words():
    with pytest.raises(ValueError, match="respawn:=sometimes: give true or false"):
        respawn_wanted("sometimes", "dpu", True)


def test_the_launch_file_gives_the_node_its_rmw_and_respawn():
    tree = ast.parse((ROOT / "launch" / "detect.launch.py").read_text())
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"node_middleware", "respawn_wanted"} <= calls
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LifecycleNode")
    assert {"additional_env", "respawn", "respawn_delay"} <= {k.arg for k in node.keywords}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"rmw", "respawn"} <= strings


def test_rmw_cyclonedds_is_an_exec_depend():
    assert "<exec_depend>rmw_cyclonedds_cpp</exec_depend>" in (ROOT / "package.xml").read_text()
