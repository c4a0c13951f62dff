"""Middleware settings for camera-sized images (core.middleware, config/*.xml, the launch file's handling)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from yolov5_dpu_ros.core.middleware import (
    FRAME_720P_BGR8,
    MIN_RMEM,
    middleware_environment,
    read_rmem_max,
    rmem_advice,
)

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
