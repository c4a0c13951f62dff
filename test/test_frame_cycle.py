"""Whole frame cycles through the node's ROS-free part (frame_cycle, camera_state, camera_io, node_config,
diagnostics) with message-shaped plain objects and the real demo model on ONNX Runtime: what is published for
each frame, what is counted, depth pairing (also late depth), replaced and bad frames, runtime parameter updates,
deactivate. The rclpy node binds exactly these calls (test_node_ros.py checks the binding on a ROS machine)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from bag_helpers import bag_messages, write_rgbd_bag

from demo.shapes import make_sample
from yolov5_dpu_ros.core.conversions import detection_fields
from yolov5_dpu_ros.core.depth import DepthConfig, Intrinsics, depth_boxes
from yolov5_dpu_ros.core.pipeline import DetectionPipeline
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.ros.camera_io import camera_topics
from yolov5_dpu_ros.ros.camera_state import STAGES
from yolov5_dpu_ros.ros.diagnostics import OK, WARN, camera_report, node_report
from yolov5_dpu_ros.ros.frame_cycle import FrameCycle, NoTransformError
from yolov5_dpu_ros.ros.node_config import read, runtime_update
from yolov5_dpu_ros.ros.param_spec import PARAMETERS

pytestmark = pytest.mark.needs("onnxruntime")

FRAMES = [make_sample(5, "test", i, (320, 240)).image for i in range(8)]
K = (300.0, 0.0, 160.0, 0.0, 290.0, 120.0, 0.0, 0.0, 1.0)


def _values(**changed):
    return {name: p.default for name, p in PARAMETERS.items()} | {"threads": 1} | changed


def _header(stamp_s: float, frame_id: str = "cam_optical"):
    sec, nanosec = divmod(round(stamp_s * 1e9), 1_000_000_000)
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_msg(bgr: np.ndarray, stamp_s: float, encoding: str = "bgr8"):
    return SimpleNamespace(header=_header(stamp_s), height=bgr.shape[0], width=bgr.shape[1], encoding=encoding,
                           is_bigendian=0, step=bgr.shape[1] * 3, data=bgr.tobytes())


def depth_msg(metres: float, stamp_s: float, hw=(120, 160)):
    mm = np.full(hw, round(metres * 1000), np.uint16)
    return SimpleNamespace(header=_header(stamp_s), height=hw[0], width=hw[1], encoding="16UC1", is_bigendian=0,
                           step=hw[1] * 2, data=mm.tobytes())


def info_msg(stamp_s: float, d=(), model="plumb_bob"):
    return SimpleNamespace(header=_header(stamp_s), k=K, d=d, distortion_model=model, width=320, height=240)


class Recorded:
    """The Outputs protocol as a recorder (the node binds it to lifecycle publishers)."""

    def __init__(self, wants_image: bool = False) -> None:
        self.sent: list[tuple] = []
        self._wants_image = wants_image

    def detection_message(self, header, fields):
        return ("2d", header, list(fields))

    def publish_detections(self, message):
        self.sent.append(message)

    def detections_3d(self, header, frame_id, fields):
        self.sent.append(("3d", header, frame_id, list(fields)))

    def wants_image(self):
        return self._wants_image

    def image(self, header, pixels, height, width):
        self.sent.append(("image", header, bytes(pixels), height, width))

    def labels(self, header, names, threshold):
        self.sent.append(("labels", header, tuple(names), threshold))

    def of(self, kind):
        return [s for s in self.sent if s[0] == kind]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def cycle_with():
    made = []

    def make(transform=None, wants_image=False, **changed):
        config = read(_values(**changed))
        detectors = build_detectors(config.backend_spec, config.model_meta, config.workers, config.selection)
        logs: list[tuple[str, str]] = []
        clock = Clock()
        cycle = FrameCycle(config, detectors[0].meta.names, lambda level, text: logs.append((level, text)),
                           lambda: 1000.0, transform, clock)
        cycle.pipeline = DetectionPipeline(detectors, cycle.on_result)
        for index, (topic, setup) in enumerate(zip(config.input_topics, config.depth)):
            topics = camera_topics(index, topic, config.compressed, len(config.input_topics) > 1, setup)
            cycle.add_camera(topics, setup, Recorded(wants_image))
        cycle.active = True
        made.append(cycle)
        return cycle, logs, clock

    yield make
    for cycle in made:
        cycle.pipeline.close()


def _drain(cycle):
    assert cycle.pipeline.wait_idle(20)


def test_each_frame_publishes_what_the_detector_finds_under_the_input_header(cycle_with):
    cycle, logs, _ = cycle_with(tracking=False, workers=2)
    for i, frame in enumerate(FRAMES[:4]):
        cycle.on_image(0, image_msg(frame, 10 + i * 0.1))
        _drain(cycle)
    sent = cycle.cameras[0].outputs.of("2d")
    reference = cycle.pipeline.detectors[0]
    assert len(sent) == 4
    for (_, header, fields), frame, i in zip(sent, FRAMES, range(4)):
        assert (header.stamp.sec, header.stamp.nanosec) == divmod(round((10 + i * 0.1) * 1e9), 1_000_000_000)
        want = detection_fields(reference.detect(frame)[0], cycle.names, "name")
        assert [f.class_id for f in fields] == [f.class_id for f in want]
        np.testing.assert_allclose([[f.center_x, f.center_y, f.size_x, f.size_y, f.score] for f in fields],
                                   [[f.center_x, f.center_y, f.size_x, f.size_y, f.score] for f in want], atol=1e-4)
    window = cycle.cameras[0].state.window(1.0, 0)
    assert (window.totals.received, window.totals.published, window.totals.bad) == (4, 4, 0)
    assert node_report("active", cycle).values["processed frames (all cameras)"] == "4"


def test_each_stage_of_a_frame_is_timed_under_its_own_diagnostics_key(cycle_with):
    """A frame whose decode, message building and publishing each take a known extra time, 100 ms apart: the
    window's mean of each stage holds its own time and no other stage holds any of them (the undelayed stages stay
    under the shortest delay, with room for a slow machine); every stage of STAGES is reported."""
    cycle, _, _ = cycle_with(tracking=True, workers=1)
    outputs = cycle.cameras[0].outputs
    delays = {"decode": 0.1, "message": 0.2, "publish": 0.3}

    class SlowData(SimpleNamespace):
        @property
        def data(self):  # read by the worker's decode
            time.sleep(delays["decode"])
            return FRAMES[0].tobytes()

    built, published = outputs.detection_message, outputs.publish_detections
    outputs.detection_message = lambda *a: (time.sleep(delays["message"]), built(*a))[1]
    outputs.publish_detections = lambda m: (time.sleep(delays["publish"]), published(m))[1]
    msg = image_msg(FRAMES[0], 1)
    cycle.on_image(0, SlowData(header=msg.header, height=240, width=320, encoding="bgr8", is_bigendian=0, step=960))
    _drain(cycle)
    values = camera_report("active", cycle, 0, 2.0, "reliable").values
    stage_ms = {stage: float(values[f"{stage} ms"]) for stage in STAGES}
    for stage, seconds in delays.items():
        assert seconds * 1e3 <= stage_ms[stage] < seconds * 1e3 + 90, (stage, stage_ms)
    assert all(stage_ms[s] < 90 for s in STAGES if s not in delays), stage_ms
    assert stage_ms["inference"] > 0 and stage_ms["tracking"] > 0


def test_bad_frames_are_counted_with_the_reason_and_the_next_frame_goes_through(cycle_with):
    cycle, logs, _ = cycle_with()
    def raw(stamp, height, width, encoding, step, data):
        return SimpleNamespace(header=_header(stamp), height=height, width=width, encoding=encoding, is_bigendian=0,
                               step=step, data=data)

    bad = [raw(1, 2, 2, "bgr8", 6, bytes(5)), raw(2, 0, 0, "bgr8", 0, b""), raw(3, 4, 4, "16UC1", 8, bytes(32))]
    for msg in bad:
        cycle.on_image(0, msg)
        _drain(cycle)
    cycle.on_image(0, image_msg(FRAMES[1], 4))
    _drain(cycle)
    state = cycle.cameras[0].state
    window = state.window(1.0, 0)
    assert (window.totals.bad, window.totals.published) == (3, 1)
    assert len(cycle.cameras[0].outputs.of("2d")) == 1
    warnings = [text for level, text in logs if level == "warning"]
    assert len(warnings) == 1 and "truncated" in warnings[0]  # one line per kind per 5 s, the first one's reason
    status = camera_report("active", cycle, 0, 2.0, "reliable")
    assert status.level == OK and status.values["bad frames"] == "3"
    state.window(3.0, 0)  # a window with only bad frames: WARN naming them
    for msg in bad:
        cycle.on_image(0, msg)
        _drain(cycle)
    status = camera_report("active", cycle, 0, 4.0, "reliable")
    assert status.level == WARN and "3 bad frames" in status.message


def test_a_frame_replaced_in_the_slot_is_counted_once_as_replaced(cycle_with):
    cycle, _, _ = cycle_with(workers=1)
    gate, taken = threading.Event(), threading.Event()

    class Slow(SimpleNamespace):
        @property
        def data(self):  # the worker decodes the frame: it holds it until the gate opens
            taken.set()
            gate.wait(10)
            return FRAMES[0].tobytes()

    first = image_msg(FRAMES[0], 1)
    cycle.on_image(0, Slow(header=first.header, height=240, width=320, encoding="bgr8", is_bigendian=0, step=960))
    assert taken.wait(10)
    for i in range(5):
        cycle.on_image(0, image_msg(FRAMES[1 + i], 2 + i))
    gate.set()
    _drain(cycle)
    window = cycle.cameras[0].state.window(1.0, cycle.pipeline.dropped_by_source.get(0, 0))
    assert (window.totals.received, window.totals.published, window.totals.replaced) == (6, 2, 4)
    assert [h.stamp.sec for _, h, _ in cycle.cameras[0].outputs.of("2d")] == [1, 6]


def _rgbd(cycle_with, **changed):
    return cycle_with(depth_topics=["depth/image_raw"], tracking=False, depth_wait=0.1, **changed)


def test_late_depth_still_gives_the_3d_box_and_missing_depth_is_counted_after_the_wait(cycle_with):
    cycle, _, clock = _rgbd(cycle_with)
    cam = cycle.cameras[0]
    cycle.on_image(0, image_msg(FRAMES[2], 5.0))
    _drain(cycle)
    assert len(cam.outputs.of("2d")) == 1 and cam.outputs.of("3d") == []  # its depth has not come yet
    clock.now += 0.03
    cycle.on_depth(0, depth_msg(2.0, 5.01), info_msg(5.01))  # 10 ms after the frame's stamp, within the slop
    (_, header, frame_id, fields3d), = cam.outputs.of("3d")
    fields2d = cam.outputs.of("2d")[0][2]
    assert header.stamp.sec == 5 and frame_id == "cam_optical" and len(fields3d) == len(fields2d) > 0
    detections = cycle.pipeline.detectors[0].detect(FRAMES[2])[0]
    boxes = depth_boxes(depth_msg(2.0, 5.01), detections.xyxy, (240, 320), Intrinsics.from_k(K), (320, 240),
                        DepthConfig())
    np.testing.assert_allclose([f.center for f in fields3d], boxes.center[boxes.valid], rtol=1e-6)
    cycle.on_image(0, image_msg(FRAMES[3], 6.0))  # no depth near 6.0 ever comes
    _drain(cycle)
    clock.now += 0.05
    cycle.expire()
    assert len(cam.outputs.of("3d")) == 1
    clock.now += 0.06  # the wait (0.1 s) is over
    cycle.expire()
    window = cam.state.window(1.0, 0)
    assert window.depth["frames with depth"] == 1 and window.depth["unsynchronised frames"] == 1


def test_depth_already_there_pairs_at_once_and_a_bad_camera_info_is_counted(cycle_with):
    cycle, logs, _ = _rgbd(cycle_with)
    cam = cycle.cameras[0]
    cycle.on_depth(0, depth_msg(1.5, 7.0), info_msg(7.0))
    cycle.on_depth(0, depth_msg(1.5, 7.1), info_msg(7.1, d=(0.1, 0.2, 0.3), model="plumb_bob"))  # 3 coefficients
    cycle.on_image(0, image_msg(FRAMES[4], 7.0))
    _drain(cycle)
    assert len(cam.outputs.of("3d")) == 1
    window = cam.state.window(1.0, 0)
    assert window.depth["bad camera info"] == 1 and any("coefficients" in t for _, t in logs)


def test_3d_boxes_go_into_the_target_frame_or_are_counted_without_a_transform(cycle_with):
    calls = []

    def transform(target, header, timeout):
        calls.append((target, header.frame_id, timeout))
        if header.stamp.sec == 9:
            raise NoTransformError("extrapolation into the future")
        return (1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0)

    cycle, _, _ = _rgbd(cycle_with, transform=transform, target_frame="base_link", tf_timeout=0.03)
    cam = cycle.cameras[0]
    for stamp in (8.0, 9.0):
        cycle.on_depth(0, depth_msg(2.0, stamp), info_msg(stamp))
        cycle.on_image(0, image_msg(FRAMES[2], stamp))
        _drain(cycle)
    (_, _, frame_id, fields3d), = cam.outputs.of("3d")
    detections = cycle.pipeline.detectors[0].detect(FRAMES[2])[0]
    boxes = depth_boxes(depth_msg(2.0, 8.0), detections.xyxy, (240, 320), Intrinsics.from_k(K), (320, 240),
                        DepthConfig())
    assert frame_id == "base_link" and calls == [("base_link", "cam_optical", 0.03)] * 2
    np.testing.assert_allclose([f.center for f in fields3d], boxes.center[boxes.valid] + [1.0, 2.0, 3.0], rtol=1e-6)
    assert cam.state.window(1.0, 0).depth["frames without transform"] == 1


def _three_frames(cycle) -> None:
    """Three frames of one scene at 10 Hz: its tracks are confirmed."""
    for i in range(3):
        cycle.on_image(0, image_msg(FRAMES[5], 1 + i * 0.1))
        _drain(cycle)


def test_a_parameter_update_mid_stream_applies_from_the_next_frame(cycle_with):
    cycle, _, _ = cycle_with(workers=1)
    cam = cycle.cameras[0]
    _three_frames(cycle)
    ids_before = [f.id for f in cam.outputs.of("2d")[-1][2]]
    assert any(ids_before)  # tracks confirmed after three frames
    values = _values(threads=1, workers=1)
    cycle.update(runtime_update(values, {"conf_threshold": 0.9, "tracking": False}))
    cycle.on_image(0, image_msg(FRAMES[5], 1.3))
    _drain(cycle)
    after = cam.outputs.of("2d")[-1][2]
    assert all(f.score > 0.9 for f in after) and len(after) < len(cam.outputs.of("2d")[0][2])
    assert all(f.id == "" for f in after)  # tracking off from this frame on
    assert cam.state.window(1.0, 0).active_tracks is None


def test_frames_finishing_after_deactivate_are_counted_not_published(cycle_with):
    cycle, _, _ = cycle_with(wants_image=True)
    cycle.on_image(0, image_msg(FRAMES[0], 1))
    _drain(cycle)
    cycle.active = False
    cycle.on_image(0, image_msg(FRAMES[1], 2))
    _drain(cycle)
    cam = cycle.cameras[0]
    assert len(cam.outputs.of("2d")) == 1 and len(cam.outputs.of("image")) == 1
    totals = cam.state.window(1.0, 0).totals
    assert (totals.received, totals.published, totals.discarded) == (2, 1, 1)
    _, _, pixels, height, width = cam.outputs.of("image")[0]
    assert (height, width, len(pixels)) == (240, 320, 240 * 320 * 3)


def test_new_tracking_settings_reach_the_tracker_before_the_next_frame_not_during_one(cycle_with):
    cycle, logs, _ = cycle_with(workers=1)
    cam = cycle.cameras[0]
    _three_frames(cycle)
    tracks = cam.state.window(1.0, 0).active_tracks
    cycle.update(runtime_update(_values(), {"track_lifetime": 0.1}))
    assert cam.state.window(2.0, 0).active_tracks == tracks > 0  # nothing changes between frames but the setting
    cycle.on_image(0, image_msg(FRAMES[5], 1.5))  # 0.3 s after the last stamp: longer than the new lifetime
    _drain(cycle)
    assert any("tracks start afresh" in text for _, text in logs)
    assert all(f.id == "" for f in cam.outputs.of("2d")[-1][2])  # new tracks are not confirmed yet


@pytest.mark.needs("rosbags")
@pytest.mark.parametrize("d", [(0.0,) * 5, (-0.25, 0.08, 0.001, -0.002, 0.0)], ids=["rectified", "distorted"])
def test_an_rgbd_bag_played_in_arrival_order_gives_the_3d_boxes_yolov5_dpu_bag_gives(cycle_with, tmp_path, d):
    """The bag's messages in recorded order through the frame cycle, each colour frame's detections ready before
    its depth arrives (the late-depth case a live node meets): every frame has the 3D boxes that the whole-bag
    pairing of ``yolov5-dpu bag --depth-topic`` writes for the same bag."""
    from rosbags.highlevel import AnyReader

    from yolov5_dpu_ros.cli.main import main
    from yolov5_dpu_ros.replay.bag_io import typestore

    source = tmp_path / "rgbd"
    write_rgbd_bag(source, frames=6, d=d)
    colour, depth = "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw"
    assert main(["bag", str(source), "--out", str(tmp_path / "out"), "--no-progress", "--topics", colour,
                 "--depth-topic", depth]) == 0
    want = {(a.header.stamp.sec, a.header.stamp.nanosec): a
            for _, _, a in bag_messages(tmp_path / "out", "vision_msgs/msg/Detection3DArray")}
    cycle, _, _ = cycle_with(input_topics=[colour], depth_topics=[depth], tracking=False, depth_wait=1.0)
    pending: dict = {}  # message_filters' synchroniser, for depth and info of one stamp
    with AnyReader([source], default_typestore=typestore()) as reader:
        for connection, _, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            if connection.topic == colour:
                cycle.on_image(0, msg)
                _drain(cycle)  # the 2D result is out before its depth comes
                continue
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            pending.setdefault(stamp, {})["info" if connection.topic.endswith("camera_info") else "depth"] = msg
            if len(pending[stamp]) == 2:
                pair = pending.pop(stamp)
                cycle.on_depth(0, pair["depth"], pair["info"])
    got = cycle.cameras[0].outputs.of("3d")
    assert len(got) == len(want) == 6
    for _, header, frame_id, fields3d in got:
        expected = want[(header.stamp.sec, header.stamp.nanosec)]
        assert frame_id == expected.header.frame_id and len(fields3d) == len(expected.detections) > 0
        np.testing.assert_allclose([f.center for f in fields3d],
                                   [(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z)
                                    for d in expected.detections], rtol=1e-5)


def test_deactivate_publishes_the_3d_output_still_waiting_with_the_depth_at_hand(cycle_with):
    """A frame whose depth has not come when the node deactivates: flush decides it now (no 3D box, counted
    unsynchronised) instead of leaving it waiting; the frame whose depth is there gets its box."""
    cycle, _, _ = _rgbd(cycle_with)
    cam = cycle.cameras[0]
    cycle.on_depth(0, depth_msg(2.0, 9.0), info_msg(9.0))
    cycle.on_image(0, image_msg(FRAMES[4], 9.0))
    _drain(cycle)
    cycle.on_image(0, image_msg(FRAMES[2], 12.0))  # no depth near 12 s
    _drain(cycle)
    assert len(cam.outputs.of("3d")) == 1
    cycle.flush()
    window = cam.state.window(1.0, 0)
    assert (window.depth["frames with depth"], window.depth["unsynchronised frames"]) == (1, 1)
    cycle.flush()  # nothing left waiting: a second flush decides nothing again
    assert cam.state.window(2.0, 0).depth["unsynchronised frames"] == 1


def test_frames_the_middleware_lost_are_counted_on_their_camera(cycle_with):
    cycle, _, _ = cycle_with(input_topics=["front/image_raw", "rear/image_raw"])
    cycle.on_lost(1, 3)
    cycle.on_lost(1, 2)
    assert cycle.cameras[1].state.window(1.0, 0).totals.lost == 5
    assert cycle.cameras[0].state.window(1.0, 0).totals.lost == 0


def test_reset_tracks_starts_the_ids_afresh_from_the_next_frame(cycle_with):
    """Deactivate forgets the tracks: the same object seen on afterwards starts a new track (a new ID once
    confirmed), where without the reset it keeps its ID."""
    cycle, _, _ = cycle_with(tracking=True)
    cam = cycle.cameras[0]

    def ids(start: float) -> list[str]:
        for i in range(3):
            cycle.on_image(0, image_msg(FRAMES[5], start + i * 0.1))
            _drain(cycle)
        return [f.id for f in cam.outputs.of("2d")[-1][2]]

    first = ids(1.0)
    assert first and all(first)
    assert ids(1.3) == first  # the same scene goes on: the same IDs
    cam.state.reset_tracks()
    again = ids(1.6)
    assert again and all(again) and not set(again) & set(first)
