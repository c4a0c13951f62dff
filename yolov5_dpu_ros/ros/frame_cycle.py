"""A frame's way through the node, without rclpy: image message → pipeline → tracker → what each camera publishes,
the RGB-D pairing and every count on the way. The node binds the ``Outputs`` and the transform lookup to rclpy.

Threads: ``on_image``, ``on_depth``, ``on_lost`` and ``expire`` run on the executor, ``on_result`` on the worker
delivering that camera's frames (in their order). Counts live in each camera's CameraState (its own lock); the
depth waiting room has a lock of its own; nothing is published while a lock is held.
"""

from __future__ import annotations

import array
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from yolov5_dpu_ros.core.conversions import DetectionFields, detection_fields, image_from_message
from yolov5_dpu_ros.core.depth import Detection3DFields, Intrinsics, depth_boxes, detection3d_fields
from yolov5_dpu_ros.core.depth_wait import Decided, DepthWait
from yolov5_dpu_ros.core.draw import draw_detections
from yolov5_dpu_ros.core.latency import stamp_seconds
from yolov5_dpu_ros.core.pipeline import Detected, DetectionPipeline, Failed, FrameResult
from yolov5_dpu_ros.ros.camera_io import CameraTopics
from yolov5_dpu_ros.ros.camera_state import CameraState
from yolov5_dpu_ros.ros.node_config import NodeConfig, RuntimeUpdate
from yolov5_dpu_ros.ros.rgbd_inputs import DepthSetup

LOG_EVERY_S = 5.0
IDENTITY = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


class NoTransformError(Exception):
    """The transform into the target frame at a frame's stamp is not available (tf2's TransformException)."""


class Outputs(Protocol):
    """One camera's publishers, bound to rclpy by the node."""

    def detection_message(self, header: Any, fields: Sequence[DetectionFields]) -> Any: ...

    def publish_detections(self, message: Any) -> None: ...

    def detections_3d(self, header: Any, frame_id: str, fields: Sequence[Detection3DFields]) -> None: ...

    def wants_image(self) -> bool: ...

    def image(self, header: Any, pixels: array.array, height: int, width: int) -> None: ...

    def labels(self, header: Any, names: Sequence[str], threshold: float) -> None: ...


Transform = Callable[[str, Any, float], "tuple[Sequence[float], Sequence[float]]"]
Log = Callable[[str, str], None]  # (level: info | warning | error, text)


@dataclass(frozen=True)
class Waiting3D:
    """What a frame's 3D output needs once its depth is decided: the 2D result and the transform (or why none)."""

    header: Any
    xyxy: np.ndarray
    image_hw: tuple[int, int]
    fields: list[DetectionFields]
    transform: tuple[Sequence[float], Sequence[float]] | str  # (translation, rotation), or the lookup's error


@dataclass
class Rgbd:
    """A camera's depth side: its setup, and the colour frames waiting for their depth (behind their own lock)."""

    setup: DepthSetup
    waiting: DepthWait
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class CameraLink:
    """One camera as the frame cycle sees it: its topics, state, outputs, depth side and reused image buffer."""

    topics: CameraTopics
    state: CameraState
    outputs: Outputs
    rgbd: Rgbd | None = None
    image_buffer: array.array = field(default_factory=lambda: array.array("B"))


class Throttle:
    """One log line per key every ``every_s`` seconds."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self._clock = every_s, clock
        self._last: dict[Any, float] = {}

    def __call__(self, key: Any) -> bool:
        now = self._clock()
        if now - self._last.get(key, -np.inf) < self.every_s:
            return False
        self._last[key] = now
        return True


class FrameCycle:
    """Every frame of every camera from its message to its outputs, counted once, in one place."""

    def __init__(self, config: NodeConfig, names: Sequence[str], log: Log, ros_time: Callable[[], float],
                 transform: Transform | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.names, self._log, self._ros_time = config, tuple(names), log, ros_time
        self._transform, self._clock = transform, clock
        self.cameras: list[CameraLink] = []
        self.pipeline: DetectionPipeline | None = None
        self.active = False
        self._throttle = Throttle(clock=clock)

    def add_camera(self, topics: CameraTopics, setup: DepthSetup | None, outputs: Outputs) -> CameraLink:
        """One more camera, in input_topics order (its index is its place)."""
        rgbd = None if setup is None else Rgbd(setup, DepthWait(setup.slop, self.config.depth_wait))
        link = CameraLink(topics, CameraState(self.config.tracker, setup is not None), outputs, rgbd)
        self.cameras.append(link)
        return link

    def running(self) -> DetectionPipeline:
        """The pipeline, which exists from configure to cleanup."""
        if self.pipeline is None:
            raise RuntimeError("the node is not configured")
        return self.pipeline

    def _warn(self, key: Any, text: str) -> None:
        if self._throttle(key):
            self._log("warning", text)

    # inputs (executor thread)
    def on_image(self, index: int, msg: Any) -> None:
        """Count the frame and queue it; the worker that takes it decodes it (a replaced frame costs nothing)."""
        cam = self.cameras[index]
        received = self._clock()
        cam.state.received(stamp_seconds(msg.header.stamp.sec, msg.header.stamp.nanosec))
        self.running().submit_lazy(partial(image_from_message, msg, cam.topics.compressed),
                                  tag=(index, msg.header, received), source=index)

    def on_lost(self, index: int, n: int) -> None:
        self.cameras[index].state.count("lost", n)

    def on_depth(self, index: int, depth: Any, info: Any) -> None:
        """A synchronised depth image and camera info: frames waiting for it get their 3D output."""
        cam = self.cameras[index]
        if cam.rgbd is None:
            return
        try:
            intrinsics = Intrinsics.from_camera_info(info.k, info.d, info.distortion_model)
        except ValueError as e:
            cam.state.count_depth("bad camera info")
            self._warn((index, "info"), f"{info.header.frame_id or cam.topics.colour.topic}: {e}")
            return
        item = (depth, intrinsics, (int(info.width), int(info.height)))
        with cam.rgbd.lock:
            decided = cam.rgbd.waiting.add_depth(stamp_seconds(depth.header.stamp.sec, depth.header.stamp.nanosec),
                                                 item, self._clock())
        self._publish_3d(cam, cam.rgbd.setup, decided)

    def expire(self) -> None:
        """Frames whose depth did not come within ``depth_wait``: decided now (timer on the executor)."""
        for cam in self.cameras:
            if cam.rgbd is not None:
                with cam.rgbd.lock:
                    decided = cam.rgbd.waiting.decide(self._clock())
                self._publish_3d(cam, cam.rgbd.setup, decided)

    def flush(self) -> None:
        """Deactivate: every waiting frame is decided with the depth at hand, before the outputs go quiet."""
        for cam in self.cameras:
            if cam.rgbd is not None:
                with cam.rgbd.lock:
                    decided = cam.rgbd.waiting.decide(np.inf)
                    cam.rgbd.waiting.clear()
                self._publish_3d(cam, cam.rgbd.setup, decided)

    def update(self, change: RuntimeUpdate) -> None:
        """Runtime parameters: the detectors' selection now, the trackers' settings before each camera's next
        frame."""
        if self.pipeline is not None:
            self.pipeline.set_config(change.selection)
        for cam in self.cameras:
            cam.state.change_tracker(change.tracker)

    # results (the worker delivering the camera's frames)
    def on_result(self, result: FrameResult) -> None:
        index, header, received = result.tag
        cam = self.cameras[index]
        outcome = result.outcome
        if isinstance(outcome, Failed):
            kind = "bad" if outcome.unreadable else "failed"
            so_far = cam.state.count(kind)
            what = "skipped a bad frame" if outcome.unreadable else "frame failed"
            self._warn((index, kind), f"{cam.topics.colour.topic}: {what} ({so_far} so far): {outcome.error}")
            return
        if not self.active:
            cam.state.count("discarded")
            return
        stamp = stamp_seconds(header.stamp.sec, header.stamp.nanosec)
        start = time.perf_counter()
        update = cam.state.track(stamp, outcome.detections, outcome.low)
        tracked = time.perf_counter()
        track_ids = None if update is None else update.ids
        if update is not None and update.reset:
            self._log("info", f"{cam.topics.colour.topic}: tracks start afresh: {update.reset}")
        fields = detection_fields(outcome.detections, self.names, self.config.class_id_format, track_ids)
        message = cam.outputs.detection_message(header, fields)
        built = time.perf_counter()
        cam.outputs.publish_detections(message)
        sent = time.perf_counter()
        t = outcome.timings
        stage_ms = (outcome.decode_ms, t.preprocess_ms, t.inference_ms, t.postprocess_ms,
                    (tracked - start) * 1e3, (built - tracked) * 1e3, (sent - built) * 1e3)
        cam.state.published(received, stamp, self._clock(), self._ros_time(), stage_ms)
        if cam.rgbd is not None:
            waiting = Waiting3D(header, outcome.detections.xyxy, outcome.image.shape[:2], fields,
                                self._lookup(cam.rgbd.setup.target_frame, header))
            with cam.rgbd.lock:
                decided = cam.rgbd.waiting.add_frame(stamp, waiting, self._clock())
            self._publish_3d(cam, cam.rgbd.setup, decided)
        if self.config.publish_debug_image and cam.outputs.wants_image():
            self._debug_image(cam, header, outcome, track_ids)

    def _lookup(self, target: str, header: Any) -> tuple[Sequence[float], Sequence[float]] | str:
        if not target:
            return IDENTITY
        if self._transform is None:
            return "no tf buffer"
        try:
            return self._transform(target, header, self.config.tf_timeout)
        except NoTransformError as e:
            return str(e)

    def _publish_3d(self, cam: CameraLink, setup: DepthSetup, decided: list[Decided]) -> None:
        """Each decided frame's Detection3DArray, or the count saying why it has none."""
        for frame in decided:
            waiting: Waiting3D = frame.payload
            if frame.depth is None:
                cam.state.count_depth("unsynchronised frames")
                continue
            depth_msg, intrinsics, info_wh = frame.depth
            try:
                boxes = depth_boxes(depth_msg, waiting.xyxy, waiting.image_hw, intrinsics, info_wh, setup.estimate)
            except ValueError as e:
                cam.state.count_depth("bad depth images")
                self._warn((cam.topics.index, "depth"), f"{setup.depth_topic}: {e}")
                continue
            if isinstance(waiting.transform, str):
                cam.state.count_depth("frames without transform")
                self._warn((cam.topics.index, "tf"), f"{cam.topics.colour.topic}: no 3D output, no transform "
                                                     f"{waiting.header.frame_id} → {setup.target_frame}: "
                                                     f"{waiting.transform}")
                continue
            translation, rotation = waiting.transform
            frame_id = setup.target_frame or waiting.header.frame_id
            cam.outputs.detections_3d(waiting.header, frame_id,
                                      detection3d_fields(waiting.fields, boxes, translation, rotation))
            cam.state.count_depth("frames with depth")
            cam.state.count_depth("detections without valid depth", int((~boxes.valid).sum()))

    def _debug_image(self, cam: CameraLink, header: Any, outcome: Detected, track_ids: Any) -> None:
        """The annotated frame in the camera's reused buffer: one copy of the frame, no other."""
        height, width = outcome.image.shape[:2]
        if len(cam.image_buffer) != height * width * 3:
            cam.image_buffer = array.array("B", bytes(height * width * 3))
        canvas = np.frombuffer(cam.image_buffer, np.uint8).reshape(height, width, 3)
        draw_detections(outcome.image, outcome.detections, self.names, outcome.encoding, track_ids, out=canvas)
        cam.outputs.image(header, cam.image_buffer, height, width)
