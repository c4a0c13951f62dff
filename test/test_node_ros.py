"""The ROS 2 node end to end with rclpy: real Image and CompressedImage messages in, Detection2DArray,
LabelInfo and diagnostics out. Runs where ROS 2 Humble (rclpy, vision_msgs) is installed and sourced;
skipped elsewhere (CI here has no ROS 2)."""

from __future__ import annotations

import contextlib
import threading
import time

import cv2
import numpy as np
import pytest

from demo.shapes import NAMES, make_sample

try:  # the module imports everywhere; without ROS 2 every test here skips with the reason (marker below)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import CompressedImage, Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    from yolov5_dpu_ros.ros.diagnostics import camera_report
    from yolov5_dpu_ros.ros.node import DetectorNode
except ImportError:
    pass

pytestmark = pytest.mark.needs("rclpy", "vision_msgs", "onnxruntime")


@pytest.fixture()
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _wait(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _image_msg(bgr, stamp_s, frame_id):
    msg = Image(height=bgr.shape[0], width=bgr.shape[1], encoding="bgr8", is_bigendian=0, step=bgr.shape[1] * 3,
                data=bgr.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = stamp_s, frame_id
    return msg


def _jpeg_msg(bgr, stamp_s, frame_id):
    msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", bgr)[1].tobytes())
    msg.header.stamp.sec, msg.header.frame_id = stamp_s, frame_id
    return msg


def _stop(executor, node, probe) -> None:
    executor.shutdown()
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.destroy_node()
    probe.destroy_node()


def test_two_cameras_raw_and_compressed(ros):
    node = DetectorNode(parameter_overrides=[
        Parameter("input_topics", value=["/front/image_raw", "/rear/image_raw/compressed"]),
        Parameter("input_reliability", value="reliable"), Parameter("autostart", value=False)])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = rclpy.create_node("probe")
    got = {"front": [], "rear": [], "labels": [], "diag": []}
    probe.create_subscription(Detection2DArray, "/front/detections", got["front"].append, 10)
    probe.create_subscription(Detection2DArray, "/rear/detections", got["rear"].append, 10)
    probe.create_subscription(LabelInfo, "/front/label_info", got["labels"].append,
                              QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 10)
    raw_pub = probe.create_publisher(Image, "/front/image_raw", 10)
    jpeg_pub = probe.create_publisher(CompressedImage, "/rear/image_raw/compressed", 10)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert _wait(lambda: raw_pub.get_subscription_count() and jpeg_pub.get_subscription_count())
        sample = make_sample(2, "test", 0, (640, 480))
        for i in range(5):
            raw_pub.publish(_image_msg(sample.image, 100 + i, "front_optical"))
            jpeg_pub.publish(_jpeg_msg(sample.image, 200 + i, "rear_optical"))
            time.sleep(0.3)
        bad = Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64))
        raw_pub.publish(bad)
        assert _wait(lambda: len(got["front"]) >= 3 and len(got["rear"]) >= 3)
        assert _wait(lambda: any(kv.key == "bad frames" and kv.value == "1"
                                 for d in got["diag"] for s in d.status if "front" in s.name for kv in s.values))
    finally:
        _stop(executor, node, probe)
    front = got["front"][-1]
    assert front.header.frame_id == "front_optical" and 100 <= front.header.stamp.sec < 105
    assert got["rear"][-1].header.frame_id == "rear_optical"
    assert len(front.detections) >= 1
    det = front.detections[0]
    assert det.header.frame_id == "front_optical"
    assert det.results[0].hypothesis.class_id in NAMES and 0 < det.results[0].hypothesis.score <= 1
    assert 0 <= det.bbox.center.position.x <= 640 and 0 < det.bbox.size_x <= 640
    labels = got["labels"][-1]
    assert [c.class_name for c in labels.class_map] == list(NAMES) and labels.threshold == pytest.approx(0.25)


def test_bad_parameter_fails_configure_with_its_name(ros):
    node = DetectorNode(parameter_overrides=[Parameter("backend", value="tensorrt"),
                                             Parameter("autostart", value=False)])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node.destroy_node()


def test_thresholds_change_at_runtime_and_bad_values_are_refused(ros):
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False)])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    ok = node.set_parameters([Parameter("conf_threshold", value=0.6)])[0]
    assert ok.successful and node._cycle.pipeline.detectors[0].config.conf_threshold == 0.6
    refused = node.set_parameters([Parameter("classes", value=[-1, 3])])[0]
    assert not refused.successful and "classes" in refused.reason
    node.trigger_cleanup()
    node.destroy_node()


@contextlib.contextmanager
def active_node(**kwargs):
    """A DetectorNode walked to active, and back down to destroyed afterwards."""
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False)], **kwargs)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    try:
        yield node
    finally:
        node.trigger_deactivate()
        node.trigger_cleanup()
        node.destroy_node()


def _totals(node, index=0):
    cycle = node._cycle
    return cycle.cameras[index].state.window(0.0, cycle.pipeline.dropped_by_source.get(index, 0)).totals


def test_node_keeps_running_on_bad_frames(ros):
    """The callback queues each frame; a worker decodes it (the one-frame slot: wait for each before the next)."""
    good = make_sample(1, "test", 0, (320, 240)).image
    with active_node() as node:
        cycle = node._cycle
        for msg in [Image(height=2, width=2, encoding="bgr8", step=6, data=bytes(5)),
                    Image(height=0, width=0, encoding="bgr8", step=0, data=b""),
                    Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8))]:
            cycle.on_image(0, msg)
            assert cycle.pipeline.wait_idle(10)
        assert _totals(node).bad == 3
        cycle.on_image(0, _image_msg(good, 1, "cam"))
        assert cycle.pipeline.wait_idle(10) and _totals(node).published == 1


def test_default_input_is_relative_to_the_namespace_and_reliability_follows_the_publisher(ros):
    probe = rclpy.create_node("probe")
    pub = probe.create_publisher(Image, "/robot1/image_raw", QoSProfile(depth=1))  # reliable, as drivers default
    try:
        with active_node(namespace="robot1") as node:
            qos, _, (subscription,) = node._inputs[(0, "colour")]
            assert subscription.topic_name == "/robot1/image_raw" and qos[0].reliability == "reliable"
            assert pub.get_subscription_count() == 1
    finally:
        probe.destroy_node()


def test_stamp_gaps_show_in_diagnostics(ros):
    good = make_sample(1, "test", 0, (320, 240)).image
    with active_node() as node:
        for i in list(range(8)) + [20]:  # a 10 Hz camera: frames 8..19 never arrived
            msg = _image_msg(good, 0, "cam")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i * 100_000_000, 1_000_000_000)
            node._cycle.on_image(0, msg)
            node._cycle.pipeline.wait_idle(10)
        status = camera_report("active", node._cycle, 0, 1.0, "reliable")
        assert status.values["never reached the node (from stamps)"] == "12" and "12 never reached" in status.message


def test_ctrl_c_under_ros2_run_exits_0_quickly(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "yolov5_dpu_ros.ros.detect_main"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(8)  # configured and spinning
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert code == 0 and time.monotonic() - start < 5 and "Traceback" not in err


@pytest.mark.parametrize("error,expected", [
    (RuntimeError("xrt: device busy"), "RuntimeError: xrt: device busy; the DPU runtime"),
    (AssertionError(), "AssertionError; pynq-dpu's load_model asserts exactly one DPU subgraph"),
    (PermissionError("/etc/vart.conf"), "PermissionError: /etc/vart.conf; the dpu backend must run as root"),
])
@pytest.mark.parametrize("where", ["open", "second worker"])
def test_configure_failures_are_logged_once_released_and_fail(ros, monkeypatch, capfd, error, expected, where):
    from yolov5_dpu_ros.backends import OnnxSpec
    from yolov5_dpu_ros.backends.onnx import OnnxBackend

    closed = []
    real_open, real_close = OnnxSpec.open, OnnxBackend.close

    def raise_(*args):
        raise error

    monkeypatch.setattr(OnnxBackend, "close", lambda self: (closed.append(self), real_close(self)))
    if where == "open":
        monkeypatch.setattr(OnnxSpec, "open", raise_)
    else:
        monkeypatch.setattr(OnnxBackend, "worker", raise_)
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False), Parameter("workers", value=2)])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    err = capfd.readouterr().err
    assert err.count("cannot configure") == 1 and expected in err
    assert len(closed) == (0 if where == "open" else 1)  # the first runner is released
    assert node._cycle is None and node._configured.names == []
    monkeypatch.setattr(OnnxSpec, "open", real_open)
    node.destroy_node()


def test_an_invalid_topic_name_is_refused_at_configure_naming_the_rule(ros, capfd):
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("input_topics", value=["cam 1/image_raw"])])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "'cam 1/image_raw' is not a valid topic name: a topic name may hold only" in capfd.readouterr().err
    node.destroy_node()


def test_a_second_sigint_during_shutdown_is_absorbed_without_a_terminal(tmp_path):
    """launch 1.0.7 forwards SIGINT to the node itself when stdin is not a TTY: two SIGINTs arrive."""
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "yolov5_dpu_ros.ros.detect_main"], stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err


def test_a_bad_model_with_autostart_exits_1_after_one_error_line(tmp_path):
    """autostart (the default): configure fails, the process exits 1 (ros2 launch: 'process has died')."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "yolov5_dpu_ros.ros.detect_main", "--ros-args", "-p",
                           f"model_meta:={tmp_path / 'missing.yaml'}"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "cannot configure" in line]
    assert len(errors) == 1 and "missing.yaml" in errors[0] and "Traceback" not in done.stderr


def test_a_bad_model_under_a_lifecycle_manager_leaves_the_node_unconfigured(ros, tmp_path):
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("model_meta", value=str(tmp_path / "missing.yaml"))])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node._state_machine.current_state[1] == "unconfigured"
    node.destroy_node()


def _spin(*nodes):
    executor = MultiThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    threading.Thread(target=executor.spin, daemon=True).start()
    return executor


def test_track_ids_latency_and_nothing_after_deactivate(ros):
    """Detection2D.id fills once tracks are confirmed and stays for the same object; diagnostics carry the
    latency keys; after deactivate returns, nothing more is published."""
    from demo.make_demo_inputs import moving_shapes

    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("input_reliability", value="reliable")])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = rclpy.create_node("probe_tracks")
    got = {"det": [], "diag": []}
    probe.create_subscription(Detection2DArray, "detections", got["det"].append, 50)
    probe.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 50)
    pub = probe.create_publisher(Image, "image_raw", 10)
    executor = _spin(node, probe)
    try:
        assert _wait(lambda: pub.get_subscription_count())
        for i, frame in enumerate(moving_shapes(3, 30)):
            msg = _image_msg(frame, 0, "cam")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(1_000_000_000 + i * 33_333_333, 1_000_000_000)
            pub.publish(msg)
            time.sleep(0.05)
        assert _wait(lambda: len(got["det"]) >= 20)
        assert _wait(lambda: any(kv.key == "latency ms (callback to publish)" and kv.value != "-"
                                 for d in got["diag"] for s in d.status for kv in s.values))
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        count = len(got["det"])
        pub.publish(_image_msg(next(moving_shapes(3, 1)), 5, "cam"))
        time.sleep(1.0)
        assert len(got["det"]) == count
    finally:
        executor.shutdown()
        node.trigger_cleanup()
        node.destroy_node()
        probe.destroy_node()
    ids = [d.id for a in got["det"][5:] for d in a.detections]
    assert ids and sum(i != "" for i in ids) >= 0.8 * len(ids)
    assert all(d.id == "" for d in got["det"][0].detections)


@pytest.mark.parametrize("cameras,outputs", [
    ({"/camera/color/image_raw": "/camera/aligned_depth_to_color/image_raw"}, ["/detections_3d"]),
    ({"/front/color/image_raw": "/front/depth/image_raw", "/rear/color/image_raw": "/rear/depth/image_raw"},
     ["/front/color/detections_3d", "/rear/color/detections_3d"]),  # several RGB-D cameras on one DPU
])
def test_detections_3d_from_depth_and_camera_info(ros, cameras, outputs):
    from sensor_msgs.msg import CameraInfo
    from vision_msgs.msg import Detection3DArray

    node = DetectorNode(parameter_overrides=[
        Parameter("autostart", value=False), Parameter("input_topics", value=list(cameras)),
        Parameter("depth_topics", value=list(cameras.values())), Parameter("input_reliability", value="reliable")])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = rclpy.create_node("probe_3d")
    got = {out: [] for out in outputs}
    for out in outputs:
        probe.create_subscription(Detection3DArray, out, got[out].append, 10)
    pubs = [(probe.create_publisher(Image, colour, 10), probe.create_publisher(Image, depth, 10),
             probe.create_publisher(CameraInfo, colour.rpartition("/")[0] + "/camera_info", 10))
            for colour, depth in cameras.items()]
    executor = _spin(node, probe)
    sample = make_sample(2, "test", 0, (640, 480))
    try:
        assert _wait(lambda: all(c.get_subscription_count() and d.get_subscription_count() for c, d, _ in pubs))
        for i in range(6):
            for colour, depth_pub, info_pub in pubs:
                image = _image_msg(sample.image, 100 + i, "camera_color_optical_frame")
                depth = Image(header=image.header, height=480, width=640, encoding="32FC1", step=640 * 4,
                              data=(np.full((480, 640), 2.5, np.float32)).tobytes())
                info = CameraInfo(header=image.header, height=480, width=640,
                                  k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0])
                info_pub.publish(info)
                depth_pub.publish(depth)
                colour.publish(image)
            time.sleep(0.3)
        assert _wait(lambda: all(any(len(a.detections) for a in arrays) for arrays in got.values()))
    finally:
        _stop(executor, node, probe)
    for arrays in got.values():
        d3 = next(a for a in arrays if a.detections).detections[0]
        assert d3.bbox.center.position.z == pytest.approx(2.5, rel=0.02)
        assert d3.header.frame_id == "camera_color_optical_frame" and d3.results[0].hypothesis.class_id in NAMES


def test_a_failed_configure_is_retried_after_a_corrected_param_set(ros, tmp_path):
    """As a lifecycle manager drives it: configure fails on a bad value, ``ros2 param set`` corrects it while
    unconfigured, the next configure succeeds; once configured, a load-time parameter is refused with the fix."""
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("model_meta", value=str(tmp_path / "missing.yaml")),
                                             Parameter("conf_threshold", value=2.0)])  # out of range: declared 0.25
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.set_parameters([Parameter("conf_threshold", value=0.3)])[0].successful
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # model_meta is still wrong
        assert node.set_parameters([Parameter("model_meta", value="")])[0].successful
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        refused = node.set_parameters([Parameter("onnx_model", value="other.onnx")])[0]
        assert not refused.successful and "clean up" in refused.reason
        assert not node.set_parameters([Parameter("autostart", value=True)])[0].successful
        assert node._cycle.pipeline.detectors[0].config.conf_threshold == pytest.approx(0.3)
    finally:
        node.trigger_cleanup()
        node.destroy_node()


def test_cleanup_configure_cycles_leave_one_set_of_subscriptions(ros):
    """Each cycle builds colour, depth, camera info and tf subscriptions; cleanup releases every one (the tf
    listener unregistered, message_filters' subscriptions destroyed)."""
    node = DetectorNode(parameter_overrides=[
        Parameter("autostart", value=False), Parameter("input_topics", value=["/cam/color/image_raw"]),
        Parameter("depth_topics", value=["/cam/depth/image_raw"]), Parameter("target_frame", value="base_link")])
    baseline = len(list(node.subscriptions))
    try:
        counts = []
        for _ in range(3):
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            counts.append(len(list(node.subscriptions)) - baseline)
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
            assert len(list(node.subscriptions)) == baseline and node._configured.names == []
        assert counts == [5, 5, 5]  # colour, depth, camera_info, /tf, /tf_static
    finally:
        node.destroy_node()


def test_compressed_input_is_image_transports_topic_and_an_integer_fingerprint_is_accepted(ros):
    node = DetectorNode(parameter_overrides=[Parameter("autostart", value=False), Parameter("compressed", value=True),
                                             Parameter("dpu_fingerprint", value=0x101000016010407)])
    try:
        assert node._declare_errors == {} and node.get_parameter("dpu_fingerprint").value == 0x101000016010407
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        (subscription,) = node._inputs[(0, "colour")][2]
        assert subscription.topic_name == "/image_raw/compressed" and subscription.msg_type is CompressedImage
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()
