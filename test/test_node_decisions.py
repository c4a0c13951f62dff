"""The node's decisions without rclpy: topic names, types and QoS per camera (camera_io), which parameter may change
in which state and what a runtime change sets (node_config), the release order of lifecycle resources (held), and
colour frames waiting for their depth (depth_wait) against a whole-stream pairing."""

from __future__ import annotations

import pytest
from props import given, settings, st

from yolov5_dpu_ros.core.depth_wait import DepthWait
from yolov5_dpu_ros.core.tracking import TrackerConfig
from yolov5_dpu_ros.ros.camera_io import Qos, camera_topics, input_choice
from yolov5_dpu_ros.ros.held import Held
from yolov5_dpu_ros.ros.node_config import change_refusal, doctor_report, read, runtime_update
from yolov5_dpu_ros.ros.param_spec import PARAMETERS
from yolov5_dpu_ros.ros.rgbd_inputs import depth_setups


def _values(**changed):
    return {name: p.default for name, p in PARAMETERS.items()} | changed


@pytest.mark.parametrize("topic,compressed,subscribed,kind", [
    ("image_raw", False, "image_raw", "sensor_msgs/msg/Image"),
    ("image_raw", True, "image_raw/compressed", "sensor_msgs/msg/CompressedImage"),  # image_transport's name
    ("/cam/image_raw/compressed", False, "/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
    ("/cam/image_raw/compressed", True, "/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
])
def test_the_colour_input_is_named_and_typed_as_image_transport_publishes_it(topic, compressed, subscribed, kind):
    topics = camera_topics(0, topic, compressed, False, None)
    assert (topics.colour.topic, topics.colour.type) == (subscribed, kind)
    assert topics.inputs() == {"colour": [topics.colour]}


def test_outputs_go_under_each_cameras_namespace_with_their_types_and_qos():
    v = _values(input_topics=["front/image_raw", "rear/image_raw"], depth_topics=["front/depth", ""])
    setups = depth_setups(v, v["input_topics"])
    front = camera_topics(0, "front/image_raw", True, True, setups[0])
    rear = camera_topics(1, "rear/image_raw", True, True, setups[1])
    assert {r: (e.topic, e.type) for r, (e, _) in front.outputs(with_labels=True).items()} == {
        "detections": ("front/detections", "vision_msgs/msg/Detection2DArray"),
        "image": ("front/detections/image", "sensor_msgs/msg/Image"),
        "labels": ("front/label_info", "vision_msgs/msg/LabelInfo"),
        "detections_3d": ("front/detections_3d", "vision_msgs/msg/Detection3DArray")}
    assert front.outputs(True)["labels"][1] == Qos("reliable", 1, latched=True)
    assert set(rear.outputs(with_labels=False)) == {"detections", "image"}
    assert [(e.topic, e.type) for e in front.inputs()["depth"]] == [
        ("front/depth", "sensor_msgs/msg/Image"), ("front/camera_info", "sensor_msgs/msg/CameraInfo")]
    assert single_camera_outputs() == ["detections", "detections/image", "label_info"]


def single_camera_outputs():
    return [e.topic for e, _ in camera_topics(0, "/robot/cam/image_raw", False, False, None).outputs(True).values()]


@pytest.mark.parametrize("setting,offered,expected", [
    ("auto", [["reliable"], ["reliable", "reliable"]], ("reliable", "reliable")),
    ("auto", [["reliable", "best_effort"], []], ("best_effort", "best_effort")),  # nobody publishes: best effort
    ("auto", [["best_effort"], ["reliable"]], ("best_effort", "reliable")),  # each topic by its own publishers
    ("reliable", [["best_effort"], ["best_effort"]], ("reliable", "reliable")),
])
def test_depth_and_camera_info_qos_follow_their_publishers_by_the_colour_rule(setting, offered, expected):
    qos, publishers = input_choice(setting, "depth", offered)
    assert tuple(q.reliability for q in qos) == expected and publishers == sum(map(len, offered))
    assert all(q.depth == 5 for q in qos)
    colour, _ = input_choice(setting, "colour", offered[:1])
    assert colour[0].reliability == expected[0] and colour[0].depth == 1


def test_every_parameter_but_autostart_is_settable_while_unconfigured_and_runtime_ones_while_configured():
    for name, spec in PARAMETERS.items():
        unconfigured, configured = change_refusal(name, False), change_refusal(name, True)
        if name == "autostart":
            assert "cannot change in a running process" in unconfigured and configured
            continue
        assert unconfigured is None, name
        assert (configured is None) == spec.runtime, name
    assert "clean up" in change_refusal("onnx_model", True)
    assert change_refusal("use_sim_time", True) is None  # rclpy's own parameters are not ours to refuse


def test_a_runtime_update_sets_selection_and_tracker_and_says_when_labels_change():
    v = _values()
    assert runtime_update(v, {"onnx_model": "x.onnx"}) is None
    update = runtime_update(v, {"conf_threshold": 0.5, "track_lifetime": 2.0})
    assert update.selection.conf_threshold == 0.5 and update.tracker == TrackerConfig(lifetime_s=2.0, match_iou=0.2)
    assert update.thresholds_changed
    assert runtime_update(v, {"tracking": False}).tracker is None
    assert not runtime_update(v, {"iou_threshold": 0.6}).thresholds_changed
    with pytest.raises(ValueError, match="track_low_threshold"):
        runtime_update(v, {"conf_threshold": 0.05})


@pytest.mark.parametrize("value", ["0x101000016010407", 0x101000016010407, str(0x101000016010407)])
def test_dpu_fingerprint_is_read_from_a_string_or_the_integer_rcl_makes_of_unquoted_hex(value):
    config = read(_values(backend="dpu", xmodel="m.xmodel", model_meta="m.yaml", dpu_fingerprint=value))
    assert config.backend_spec.fingerprint == 0x101000016010407


def test_an_empty_fingerprint_leaves_it_to_the_stack_and_dpu_runtime_names_the_stack():
    config = read(_values(backend="dpu", xmodel="m.xmodel", model_meta="m.yaml", dpu_fingerprint=""))
    assert config.backend_spec.fingerprint is None and config.backend_spec.dpu_runtime == "auto"
    config = read(_values(backend="dpu", xmodel="m.xmodel", model_meta="m.yaml", dpu_runtime="3.5"))
    assert config.backend_spec.dpu_runtime == "3.5"
    with pytest.raises(ValueError, match=r"parameter dpu_runtime: '3.0' is not one of \['auto', '2.5', '3.5'\]"):
        read(_values(backend="dpu", xmodel="m.xmodel", model_meta="m.yaml", dpu_runtime="3.0"))


def test_a_bad_fingerprint_names_the_parameter():
    with pytest.raises(ValueError, match="parameter dpu_fingerprint"):
        read(_values(backend="dpu", xmodel="m.xmodel", model_meta="m.yaml", dpu_fingerprint="stock"))


def test_held_releases_the_last_built_first_every_one_even_when_one_fails():
    released = []
    held = Held()
    held.hold("pipeline", lambda: released.append("pipeline"))
    held.hold("publisher", lambda: (_ for _ in ()).throw(RuntimeError("already destroyed")))
    held.hold("tf listener", lambda: released.append("tf listener"))
    assert held.release() == ["publisher: RuntimeError: already destroyed"]
    assert released == ["tf listener", "pipeline"] and held.names == []
    assert held.release() == [] and released == ["tf listener", "pipeline"]  # releasing twice releases nothing


def _offline(frame: float, depths: list[float], slop: float) -> float | None:
    """The whole-stream pairing (what ``yolov5-dpu bag`` does): the nearest depth stamp within the slop."""
    near = [d for d in depths if abs(d - frame) <= slop]
    return min(near, key=lambda d: abs(d - frame)) if near else None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 130).map(lambda k: 3 * k + 1), min_size=1, max_size=40, unique=True),
       st.lists(st.integers(0, 130).map(lambda k: 3 * k), max_size=40, unique=True),
       st.integers(0, 30), st.integers(0, 30))
def test_waiting_frames_pair_as_the_whole_stream_would_when_depth_comes_within_the_wait(frames, depths, c_ms, d_ms):
    """Colour results arrive c_ms after their stamp, depth d_ms after its own (in stamp order, ms); with a wait
    longer than the depth's delay every frame gets the depth the whole-stream pairing gives it, once. (Frame stamps
    ≡ 1 and depth stamps ≡ 0 mod 3 ms: no frame lies exactly between two depths, where the nearest is a tie.)"""
    slop, wait = 0.02, 0.05
    events = sorted([(f + c_ms, 1, f) for f in frames] + [(d + d_ms, 0, d) for d in depths])
    pairing, got = DepthWait(slop, wait, keep=64), {}
    for at, kind, stamp in events:
        decided = (pairing.add_depth(stamp / 1e3, stamp / 1e3, at / 1e3) if kind == 0
                   else pairing.add_frame(stamp / 1e3, stamp, at / 1e3))
        for d in decided:
            assert d.payload not in got
            got[d.payload] = d.depth
    for d in pairing.decide(1e9):
        got[d.payload] = d.depth
    assert set(got) == set(frames) and pairing.waiting == 0
    for f in frames:
        want = _offline(f / 1e3, [d / 1e3 for d in depths], slop)
        assert got[f] == (None if want is None else pytest.approx(want)), f


def test_a_failed_dpu_configure_logs_the_doctor_for_the_nodes_own_parameters(tmp_path):
    """The report the node logs after a failed configure: the doctor run with its dpu_runtime, xmodel, model_meta,
    bit and fingerprint; a bad fingerprint or runtime (already refused by read) falls back to the defaults."""
    report = doctor_report(_values(backend="dpu", dpu_runtime="3.5", xmodel=str(tmp_path / "m.xmodel"),
                                   model_meta=str(tmp_path / "m.yaml")))
    lines = report.splitlines()
    assert lines[0] == "✔ DPU stack: pynq-dpu 3.5.0 with VART 3.5 (dpu_runtime 3.5): runs models of Vitis AI 3.0.x " \
                       "and 3.5.x compiled for its overlay's DPU"
    assert any(line.startswith("✗ model metadata:") and "m.yaml" in line for line in lines)
    fallback = doctor_report(_values(backend="dpu", dpu_runtime="9.9", dpu_fingerprint="zebra"))
    assert fallback.splitlines()[0].startswith("✗ DPU stack: pynq-dpu not installed")  # auto, on this PC
    assert not any(line.startswith(("✗ xmodel", "✔ xmodel")) for line in fallback.splitlines())  # no model given
