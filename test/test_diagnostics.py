"""What the node's diagnostics say (ros/diagnostics.py, ROS-free): the node's status and each camera's, level,
message and every value, for windows of known counts — the node only copies these into DiagnosticStatus."""

from __future__ import annotations

from yolov5_dpu_ros.core.input_health import CameraCounts
from yolov5_dpu_ros.core.latency import AGE, LATENCY, LATENCY_MAX
from yolov5_dpu_ros.ros.camera_state import DEPTH_COUNTS, Window
from yolov5_dpu_ros.ros.diagnostics import OK, WARN, camera_report, camera_status, node_report, node_status


def _window(window: CameraCounts, seconds: float = 2.0, **changes) -> Window:
    values = dict(totals=CameraCounts(received=100, published=90, bad=3, failed=2, replaced=4, lost=1, unseen=5,
                                      discarded=6),
                  window=window, seconds=seconds, stage_ms=(0.25, 1.234, 5.678, 0.5, 0.75, 0.125, 0.0625),
                  input_period=0.0333,
                  latency={LATENCY: "12.5", LATENCY_MAX: "20.0", AGE: "15.0"}, active_tracks=3,
                  depth=dict.fromkeys(DEPTH_COUNTS, 0) | {"frames with depth": 7})
    return Window(**{**values, **changes})


def test_the_node_before_and_after_configure():
    before = node_status("unconfigured", None)
    assert (before.level, before.message, before.values) == (OK, "unconfigured: no model loaded",
                                                              {"lifecycle state": "unconfigured"})
    after = node_status("active", {"backend": "dpu", "workers": "2"})
    assert (after.level, after.message) == (OK, "active: configured")
    assert after.values == {"lifecycle state": "active", "backend": "dpu", "workers": "2"}
    assert node_report("inactive", None) == node_status("inactive", None)


def test_a_camera_before_configure_is_ok_and_says_so():
    status = camera_status("unconfigured", None, "reliable")
    assert (status.level, status.message, status.values) == (OK, "unconfigured: not configured",
                                                              {"lifecycle state": "unconfigured"})
    assert camera_report("unconfigured", None, 0, 1.0, "reliable") == status


def test_every_value_of_an_active_camera_window():
    status = camera_status("active", _window(CameraCounts(received=60, published=60)), "best_effort")
    assert (status.level, status.message) == (OK, "active: ok")
    assert status.values == {
        "lifecycle state": "active", "input fps": "30.0", "output fps": "30.0", "input period ms": "33.3",
        LATENCY: "12.5", LATENCY_MAX: "20.0", AGE: "15.0",
        "decode ms": "0.25", "preprocess ms": "1.23", "inference ms": "5.68", "postprocess ms": "0.50",
        "tracking ms": "0.75", "message ms": "0.12", "publish ms": "0.06",
        "lost in transport": "1", "never reached the node (from stamps)": "5", "replaced in the queue": "4",
        "bad frames": "3", "failed frames": "2", "finished after deactivate": "6", "input reliability": "best_effort",
        "active tracks": "3", **{key: "0" for key in DEPTH_COUNTS}, "frames with depth": "7",
    }


def test_a_camera_losing_frames_while_active_warns_saying_why_and_stops_warning_when_inactive():
    losing = _window(CameraCounts(received=60, published=40, replaced=20))
    warned = camera_status("active", losing, "reliable")
    assert warned.level == WARN
    assert warned.message == "active: 33 % of the camera's frames not processed: 20 replaced in the queue (the " \
                             "detector is slower than the camera)"
    stopped = camera_status("inactive", losing, "reliable")
    assert (stopped.level, stopped.message) == (OK, "inactive: inputs stopped")


def test_values_without_data_read_as_a_dash():
    status = camera_status("active", _window(CameraCounts(), input_period=None, active_tracks=None, depth={}),
                           "reliable")
    assert status.values["input period ms"] == "-" and status.values["active tracks"] == "-"
    assert status.values["input fps"] == "0.0" and not set(DEPTH_COUNTS) & set(status.values)
    assert (status.level, status.message) == (OK, "active: no input")
