"""The node's ROS-free parts: its parameter table (shared with the launch file), the frame accounting behind
its diagnostics, and the input QoS choice."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import yaml
from props import given, settings, st

from yolov5_dpu_ros.core import run_record
from yolov5_dpu_ros.core.input_health import CameraCounts, StampGaps, choose_reliability, health
from yolov5_dpu_ros.ros.param_spec import LAUNCH_ARGUMENTS, PARAMETERS, RELIABILITY, launch_value
from yolov5_dpu_ros.ros.rgbd_inputs import depth_setups

ROOT = Path(__file__).resolve().parents[1]
TUNED = ("workers", "autostart", "input_reliability", "compressed", "conf_threshold", "iou_threshold",
         "max_detections", "agnostic_nms", "class_id_format", "publish_debug_image", "threads", "onnx_spin",
         "backend", "xmodel", "bit", "model_meta", "onnx_model", "dpu_fingerprint", "allow_other_compiler")


def test_every_tuned_parameter_is_a_launch_argument():
    assert set(TUNED) <= set(LAUNCH_ARGUMENTS)
    launch = (ROOT / "launch" / "detect.launch.py").read_text()
    tree = ast.parse(launch)
    imported = {a.name for n in ast.walk(tree) for a in getattr(n, "names", [])
                if isinstance(n, ast.ImportFrom) and n.module == "yolov5_dpu_ros.ros.param_spec"}
    assert {"LAUNCH_ARGUMENTS", "PARAMETERS", "launch_value", "launch_flag"} <= imported


def test_what_the_launch_file_imports_from_the_package_pulls_no_opencv_numpy_or_rclpy():
    """``ros2 launch`` imports the launch file in the launch process: it must stay light."""
    import subprocess
    import sys

    tree = ast.parse((ROOT / "launch" / "detect.launch.py").read_text())
    modules = sorted({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                      and n.module.startswith("yolov5_dpu_ros")})
    assert modules == ["yolov5_dpu_ros.core.middleware", "yolov5_dpu_ros.ros.param_spec"]
    code = (f"import sys\nimport {', '.join(modules)}\n"
            "print(sorted(m for m in ('cv2', 'numpy', 'rclpy', 'yaml') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_params_file_names_only_declared_parameters_with_their_types():
    values = yaml.safe_load((ROOT / "config" / "detect.yaml").read_text())["/**"]["ros__parameters"]
    for name, value in values.items():
        assert name in PARAMETERS, name
        assert type(value) is type(PARAMETERS[name].default), name
    assert values["input_reliability"] == "auto" and values["input_topics"] == ["image_raw"]


def test_the_default_input_topic_is_relative():
    assert PARAMETERS["input_topics"].default == ["image_raw"] and PARAMETERS["input_reliability"].default == "auto"
    assert RELIABILITY == ("auto", "best_effort", "reliable")


@pytest.mark.parametrize("name,text,value", [("conf_threshold", "1", 1.0), ("conf_threshold", "0.4", 0.4),
                                             ("workers", "3", 3), ("autostart", "False", False),
                                             ("compressed", "true", True), ("class_id_format", "index", "index")])
def test_launch_arguments_take_the_parameter_type(name, text, value):
    got = launch_value(name, text)
    assert got == value and type(got) is type(PARAMETERS[name].default)


@pytest.mark.parametrize("name,text", [("workers", "2.5"), ("autostart", "yes"), ("conf_threshold", "high")])
def test_bad_launch_arguments_are_named(name, text):
    with pytest.raises(ValueError, match=f"launch argument {name}:={text}"):
        launch_value(name, text)


@pytest.mark.parametrize("publishers,expected", [([], "best_effort"), (["reliable"], "reliable"),
                                                 (["reliable", "reliable"], "reliable"),
                                                 (["reliable", "best_effort"], "best_effort"),
                                                 (["best_effort"], "best_effort")])
def test_input_reliability_matches_the_publishers(publishers, expected):
    assert choose_reliability(publishers) == expected


def _stamps(period, received):
    return [i * period for i in received]


def test_gaps_count_the_frames_that_never_arrived():
    gaps = StampGaps()
    arrived = [i for i in range(300) if i % 4 == 0 or i < 12]  # a 30 Hz camera of which 1 in 4 frames arrives
    for t in _stamps(1 / 30, arrived):
        gaps.add(1000.0 + t)
    assert gaps.camera_period() == pytest.approx(1 / 30)
    assert gaps.input_period() == pytest.approx(4 / 30)
    assert gaps.unseen == arrived[-1] + 1 - len(arrived)


@settings(max_examples=200, deadline=None)
@given(period=st.floats(0.005, 0.5), arrive=st.lists(st.booleans(), min_size=30, max_size=300),
       jitter=st.sampled_from([0.0, 0.05, 0.15]), seed=st.integers(0, 2**16))
def test_stamp_gaps_estimate_the_lost_frames(period, arrive, jitter, seed):
    """Property: with the first 8 frames in (to learn the period), the estimate counts the frames that did not
    arrive between the first and the last that did: exactly with exact stamps, within 10 % (or one frame)
    with up to 15 % stamp jitter."""
    arrive = [True] * 8 + arrive
    last = max(i for i, a in enumerate(arrive) if a)
    rng = np.random.default_rng(seed)
    gaps = StampGaps()
    for i, a in enumerate(arrive[: last + 1]):
        if a:
            gaps.add(100.0 + i * period + rng.uniform(-jitter, jitter) * period * 0.5)
    missing = (last + 1) - sum(arrive[: last + 1])
    assert abs(gaps.unseen - missing) <= (0 if jitter == 0 else max(1, 0.1 * missing))


def test_repeated_or_backward_stamps_are_not_gaps():
    gaps = StampGaps()
    for t in [0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.0, 0.1, 0.2]:  # a bag played in a loop
        gaps.add(t)
    assert gaps.unseen == 0


@pytest.mark.parametrize("window,ok,words", [
    (CameraCounts(received=30, published=30), True, "ok"),
    (CameraCounts(received=30, published=28, replaced=2), True, "ok"),
    (CameraCounts(received=10, published=10, unseen=20), False, "67 % .*20 never reached the node"),
    (CameraCounts(received=10, published=10, lost=5, unseen=4), False, "33 % .*5 never reached"),
    (CameraCounts(received=30, published=12, replaced=18), False, "60 % .*18 replaced in the queue"),
    (CameraCounts(received=30, published=20, bad=10), False, "10 bad frames"),
    (CameraCounts(received=30, published=25, failed=5), False, "5 failed in the detector"),
    (CameraCounts(), True, "no input"),
])
def test_health_warns_above_ten_percent_and_says_why(window, ok, words):
    import re

    got_ok, message = health(window)
    assert got_ok == ok and re.search(words, message), message


def test_counts_subtract_field_by_field():
    a, b = CameraCounts(5, 4, 3, 2, 1, 1, 1), CameraCounts(1, 1, 1, 1, 1, 1, 1)
    assert a - b == CameraCounts(4, 3, 2, 1, 0, 0, 0)


# --- RGB-D inputs per camera (ros/rgbd_inputs.py) ---------------------------------------------------------------

def _rgbd(depths, infos=("",), topics=("front/color/image_raw", "rear/color/image_raw")):
    values = {"depth_topics": list(depths), "camera_info_topics": list(infos), "depth_sync_slop": 0.05,
              "depth_scale": 0.0, "target_frame": "base_link"}
    return depth_setups(values, topics)


def test_each_camera_pairs_with_its_own_depth_and_camera_info():
    front, rear = _rgbd(["front/depth/image_raw", "rear/depth/image_raw"], ["", "/rear/info"])
    assert (front.depth_topic, front.info_topic) == ("front/depth/image_raw", "front/color/camera_info")
    assert (rear.depth_topic, rear.info_topic) == ("rear/depth/image_raw", "/rear/info")
    assert front.target_frame == rear.target_frame == "base_link"


def test_a_camera_without_depth_and_none_at_all():
    assert _rgbd([""]) == (None, None)
    assert _rgbd([]) == (None, None)
    front, rear = _rgbd(["front/depth/image_raw", ""])
    assert front is not None and rear is None


@pytest.mark.parametrize("depths,infos,message", [
    (["a/depth"], [""], "depth_topics: \\['a/depth'\\] has 1 entries for 2 input_topics"),
    (["a/depth", "b/depth"], ["x"], "camera_info_topics: \\['x'\\] has 1 entries"),
    (["a/depth", ""], ["", "b/info"], "'b/info' is given for rear/color/image_raw, which has no depth"),
    (["a/depth", "a/depth"], [""], "names one depth topic for two cameras"),
    (["a depth", ""], [""], "depth_topics: 'a depth' is not a valid topic name"),
])
def test_depth_topics_that_do_not_fit_the_cameras_are_refused_naming_the_parameter(depths, infos, message):
    with pytest.raises(ValueError, match=message):
        _rgbd(depths, infos)


# --- restart after an abnormal exit (core/run_record.py) ---------------------------------------------------------

def test_a_record_left_by_a_killed_node_is_reported_once_and_a_clean_exit_leaves_none(tmp_path):
    import signal
    import subprocess
    import sys

    record = run_record.record_path("/robot1/yolov5_dpu", tmp_path)
    assert record.name == "yolov5_dpu_ros.robot1_yolov5_dpu.run"
    code = ("import sys, time; from pathlib import Path; from yolov5_dpu_ros.core import run_record; "
            "run_record.start(Path(sys.argv[1])); print('started', flush=True); time.sleep(60)")
    node = subprocess.Popen([sys.executable, "-c", code, str(record)], stdout=subprocess.PIPE, text=True)
    assert node.stdout.readline().strip() == "started"
    assert run_record.previous_abnormal_exit(record) is None  # it still runs: another node of the same name
    node.send_signal(signal.SIGABRT)  # what VART's glog CHECK does to the process
    node.wait()
    message = run_record.previous_abnormal_exit(record)
    assert message.startswith(f"restarted after an abnormal exit: the previous run (pid {node.pid}, started ")
    run_record.start(record)
    assert run_record.previous_abnormal_exit(record) is None  # this process's own record
    run_record.finish(record)
    assert not record.exists() and run_record.previous_abnormal_exit(record) is None


def test_finish_leaves_another_processs_record(tmp_path):
    record = run_record.record_path("yolov5_dpu", tmp_path)
    record.write_text("1 2026-12-06 00:00:00\n")
    run_record.finish(record)
    assert record.exists()
