"""The ROS 2 node: camera images in, vision_msgs/Detection2DArray out (rclpy, Humble API).

A lifecycle node: the model is loaded on configure and the image subscriptions live only while
active. With ``autostart`` (the default) it configures and activates itself, so ``ros2 run`` and
``ros2 launch`` need no lifecycle manager; with ``autostart:=false`` a manager drives it. Ctrl-C or
SIGTERM walks it through shutdown and exits 0.

Threads: the executor (``rclpy.spin``) only does ROS work. An image callback records the message and its
receive time in the camera's one-frame slot of the pipeline; the worker that takes the frame decodes it,
detects, tracks and publishes, outside any lock the workers share, each camera's frames in order.
"""

from __future__ import annotations

import array
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_updater import DiagnosticStatusWrapper, Updater
from message_filters import ApproximateTimeSynchronizer, Subscriber
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.time import Time
from rclpy.utilities import get_rmw_implementation_identifier
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_ros import Buffer, TransformException, TransformListener
from vision_msgs.msg import Detection2DArray, Detection3DArray

from yolov5_dpu_ros.core import run_record
from yolov5_dpu_ros.core.conversions import detection_fields, image_from_message
from yolov5_dpu_ros.core.depth import Intrinsics, StampPairing, depth_boxes, detection3d_fields
from yolov5_dpu_ros.core.draw import draw_detections
from yolov5_dpu_ros.core.input_health import CameraCounts, StampGaps, choose_reliability, health
from yolov5_dpu_ros.core.latency import LatencyWindow, stamp_seconds
from yolov5_dpu_ros.core.middleware import prepare_node_environment, read_rmem_max, rmem_advice
from yolov5_dpu_ros.core.pipeline import Detected, DetectionPipeline, Failed, FrameResult
from yolov5_dpu_ros.core.tracking import Tracker
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.dpu.board import explain
from yolov5_dpu_ros.dpu.doctor import diagnose
from yolov5_dpu_ros.dpu.verdict import STOCK_FINGERPRINT, parse_fingerprint
from yolov5_dpu_ros.ros import params
from yolov5_dpu_ros.ros.messages import LabelInfo, detection3d_array, detection_array, label_info

LOG_EVERY_S = 5.0
DEPTH_COUNTS = ("frames with depth", "detections without valid depth", "unsynchronised frames",
                "frames without transform", "bad depth images")
DRAIN_S = 2.0  # deactivate waits this long for frames in flight
POLICY_NAMES = {ReliabilityPolicy.RELIABLE: "reliable", ReliabilityPolicy.BEST_EFFORT: "best_effort"}


@dataclass
class Camera:
    """One input topic with its outputs, counters and tracker."""

    index: int
    topic: str
    namespace: str
    compressed: bool
    publishers: dict[str, Any] = field(default_factory=dict)
    subscription: Any = None
    reliability: str = ""  # of the current subscription
    publisher_count: int = -1  # publishers of the topic when the reliability was chosen
    counts: CameraCounts = CameraCounts()  # replaced: read from the pipeline when diagnostics are made
    stamps: StampGaps = field(default_factory=StampGaps)
    stage_ms: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    last: tuple = (CameraCounts(), 0.0)  # counts and time of the previous diagnostics
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    tracker: Tracker | None = None
    depth_setup: params.DepthSetup | None = None  # RGB-D: this camera's depth and camera-info topics
    debug_image: array.array = field(default_factory=lambda: array.array("B"))  # reused: one copy per frame
    depth: StampPairing | None = None  # RGB-D: the latest (depth message, intrinsics, info size) by depth stamp
    depth_subscriptions: list = field(default_factory=list)  # message_filters Subscribers and their synchronizer
    depth_counts: dict = field(default_factory=lambda: dict.fromkeys(DEPTH_COUNTS, 0))

    def out(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else name

    def count(self, **more: int) -> None:
        """Add to the counts (call with the node's lock held)."""
        self.counts = CameraCounts(**{k: getattr(self.counts, k) + more.get(k, 0)
                                      for k in CameraCounts.__dataclass_fields__})


def _camera(index: int, topic: str, compressed: bool, several: bool) -> Camera:
    """One camera: a single camera publishes at the node's names, several under their topics' namespaces."""
    base = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    namespace = base.rstrip("/").rpartition("/")[0] if several else ""
    return Camera(index, topic, namespace, compressed or topic.endswith("/compressed"))


class DetectorNode(LifecycleNode):
    """YOLO detection and tracking on one or more cameras through one model (DPU or ONNX Runtime)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("yolov5_dpu", **kwargs)
        self._declare_errors = params.declare(self)
        self._config: params.NodeConfig | None = None
        self._pipeline: DetectionPipeline | None = None
        self._names: tuple[str, ...] = ()
        self._cameras: list[Camera] = []
        self._timer: Any = None
        self._tf_buffer: Any = None
        self._tf_listener: Any = None
        self._lock = threading.Lock()
        self._updater = Updater(self, period=1.0)  # diagnostics in every lifecycle state
        self._updater.setHardwareID("yolov5_dpu_ros")
        self._updater.add("node", self._node_status)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # lifecycle: every transition catches everything (Humble's rclpy drops an exception raised here without a
    # word and the process exits 1), says what happened and what to do, and releases what it had built
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        detectors: list = []
        try:
            if self._declare_errors:
                raise ValueError("; ".join(self._declare_errors))
            config = params.read(self)
            detectors = build_detectors(config.backend_spec, config.model_meta, config.workers, config.selection)
            self._config, self._names = config, detectors[0].meta.names
            self._open_outputs(config)
            self._pipeline = DetectionPipeline(detectors, self._on_result)
        except Exception as e:
            if self._pipeline is None:
                for detector in detectors:
                    detector.close()
            self._release()
            self.get_logger().error(f"cannot configure: {explain(e)}")
            if self.get_parameter("backend").value == "dpu":
                self.get_logger().warning("the board as yolov5-dpu doctor sees it:\n" + self._doctor_report())
            return TransitionCallbackReturn.FAILURE
        self._updater.setHardwareID(f"yolov5_dpu_ros/{config.backend_spec.name}")
        advice = rmem_advice(read_rmem_max())
        if advice:
            self.get_logger().warning(advice)
        self.get_logger().info(
            f"{config.backend_spec.name} model {config.backend_spec.model} ({len(self._names)} classes), "
            f"{config.workers} workers, tracking {'on' if config.tracker else 'off'}, "
            f"cameras {[c.topic + (' (compressed)' if c.compressed else '') for c in self._cameras]}")
        return TransitionCallbackReturn.SUCCESS

    def _doctor_report(self) -> str:
        """``yolov5-dpu doctor`` for the node's dpu parameters, so a launch log shows the whole picture."""
        value = {name: self.get_parameter(name).value for name in ("xmodel", "model_meta", "bit",
                                                                   "dpu_fingerprint", "allow_other_compiler")}
        try:
            fingerprint = parse_fingerprint(value["dpu_fingerprint"])
        except ValueError:
            fingerprint = STOCK_FINGERPRINT
        return diagnose(xmodel=value["xmodel"] or None, meta=value["model_meta"] or None, bit=value["bit"] or None,
                        fingerprint=fingerprint, allow_other_compiler=value["allow_other_compiler"]).text()

    def _open_outputs(self, config: params.NodeConfig) -> None:
        """One Camera per input topic with its lifecycle publishers, tracker and diagnostics."""
        several = len(config.input_topics) > 1
        self._cameras = [_camera(i, t, config.compressed, several) for i, t in enumerate(config.input_topics)]
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for cam in self._cameras:
            cam.tracker = Tracker(config.tracker) if config.tracker else None
            cam.depth_setup = config.depth[cam.index]
            cam.publishers = {
                "detections": self.create_lifecycle_publisher(Detection2DArray, cam.out("detections"), 10),
                "image": self.create_lifecycle_publisher(Image, cam.out("detections/image"), 2),
            }
            if LabelInfo is not None:
                cam.publishers["labels"] = self.create_lifecycle_publisher(LabelInfo, cam.out("label_info"),
                                                                           latched)
            if cam.depth_setup is not None:
                cam.depth = StampPairing(cam.depth_setup.slop)
                cam.publishers["detections_3d"] = self.create_lifecycle_publisher(
                    Detection3DArray, cam.out("detections_3d"), 10)
            self._updater.add(cam.topic, partial(self._camera_status, cam))
        if any(s is not None and s.target_frame for s in config.depth):
            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            for cam in self._cameras:
                self._subscribe(cam)
                self._subscribe_depth(cam)
            self._timer = self.create_timer(1.0, self._follow_publishers)
            result = super().on_activate(state)  # activates the lifecycle publishers
            self._publish_labels()
        except Exception as e:
            self._stop_inputs()
            self.get_logger().error(f"cannot activate: {explain(e)}")
            return TransitionCallbackReturn.FAILURE
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Inputs stop, the frames in flight finish (bounded), then the publishers go quiet."""
        self._stop_inputs()
        if self._pipeline is not None and not self._pipeline.wait_idle(DRAIN_S):
            self.get_logger().warning(f"frames still in flight after {DRAIN_S} s; their results are not published")
        for cam in self._cameras:
            if cam.tracker is not None:
                cam.tracker.reset()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return self._transition("clean up", self._release)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self._transition("shut down", self._stop_inputs, self._release)

    def _transition(self, what: str, *steps: Any) -> TransitionCallbackReturn:
        """Run every step even if one fails; a failure is logged once and the transition fails."""
        failed = False
        for step in steps:
            try:
                step()
            except Exception as e:
                failed = True
                self.get_logger().error(f"while trying to {what}: {explain(e)}")
        return TransitionCallbackReturn.FAILURE if failed else TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the inputs and the workers before the node goes."""
        self._stop_inputs()
        self._release()
        super().destroy_node()

    def _stop_inputs(self) -> None:
        for cam in self._cameras:
            if cam.subscription is not None:
                self.destroy_subscription(cam.subscription)
                cam.subscription = None
            for subscriber in cam.depth_subscriptions[:2]:  # message_filters Subscribers hold the subscription
                self.destroy_subscription(subscriber.sub)
            cam.depth_subscriptions = []
            if cam.depth is not None:
                cam.depth.clear()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        for cam in self._cameras:
            self._updater.removeByName(cam.topic)
            for pub in cam.publishers.values():
                self.destroy_lifecycle_publisher(pub)
        self._cameras = []
        self._config = None
        self._tf_buffer = self._tf_listener = None

    def _state(self) -> tuple[params.NodeConfig, DetectionPipeline]:
        """The configured state: subscriptions, timers and results exist only between configure and cleanup."""
        if self._config is None or self._pipeline is None:
            raise RuntimeError("the node is not configured")
        return self._config, self._pipeline

    # inputs: QoS matched to the publishers, decided again only when the publishers change
    def _follow_publishers(self) -> None:
        for cam in self._cameras:
            if self.count_publishers(self.resolve_topic_name(cam.topic)) != cam.publisher_count:
                self._subscribe(cam)

    def _subscribe(self, cam: Camera) -> None:
        """(Re)create the camera's subscription with the reliability its publishers call for."""
        config, _ = self._state()
        infos = self.get_publishers_info_by_topic(self.resolve_topic_name(cam.topic))
        cam.publisher_count = len(infos)
        wanted = config.input_reliability if config.input_reliability != "auto" else choose_reliability(
            [POLICY_NAMES.get(i.qos_profile.reliability, "best_effort") for i in infos])
        if cam.subscription is not None and wanted == cam.reliability:
            return
        if cam.subscription is not None:
            self.destroy_subscription(cam.subscription)
        qos = QoSProfile(depth=1, reliability=(ReliabilityPolicy.RELIABLE if wanted == "reliable"
                                               else ReliabilityPolicy.BEST_EFFORT))
        kind = CompressedImage if cam.compressed else Image
        callback = partial(self._on_image, cam)
        try:
            events = SubscriptionEventCallbacks(message_lost=partial(self._on_lost, cam))
            cam.subscription = self.create_subscription(kind, cam.topic, callback, qos, event_callbacks=events)
        except UnsupportedEventTypeError:
            self.get_logger().info(f"{cam.topic}: this middleware does not report lost messages; frames that never "
                                   "arrive are estimated from header stamps only")
            cam.subscription = self.create_subscription(kind, cam.topic, callback, qos)
        cam.reliability = wanted
        self.get_logger().info(f"{cam.topic}: subscribed {wanted} (input_reliability {config.input_reliability}, "
                               f"{cam.publisher_count} publishers)")

    def _subscribe_depth(self, cam: Camera) -> None:
        """RGB-D: depth and camera info (sensor QoS) synchronised by message_filters' ApproximateTimeSynchronizer;
        each pair waits by its stamp for the colour frame of the same time (``StampPairing``), so the colour image
        keeps its own subscription and a depth stream that stops leaves the 2D output running."""
        setup = cam.depth_setup
        if setup is None:
            return
        depth = Subscriber(self, Image, setup.depth_topic, qos_profile=qos_profile_sensor_data)
        info = Subscriber(self, CameraInfo, setup.info_topic, qos_profile=qos_profile_sensor_data)
        synchronizer = ApproximateTimeSynchronizer([depth, info], 10, setup.slop)
        synchronizer.registerCallback(partial(self._on_depth, cam))
        cam.depth_subscriptions = [depth, info, synchronizer]
        self.get_logger().info(f"{cam.topic}: 3D from {setup.depth_topic} and {setup.info_topic}"
                               + (f" into {setup.target_frame}" if setup.target_frame else ""))

    def _on_depth(self, cam: Camera, depth: Any, info: Any) -> None:
        try:
            intrinsics = Intrinsics.from_k(info.k)
        except ValueError as e:
            self.get_logger().warning(f"{info.header.frame_id or cam.topic}: {e}", throttle_duration_sec=LOG_EVERY_S)
            return
        with self._lock:
            if cam.depth is not None:
                cam.depth.add(stamp_seconds(depth.header.stamp.sec, depth.header.stamp.nanosec),
                              (depth, intrinsics, (int(info.width), int(info.height))))

    def _on_lost(self, cam: Camera, info: Any) -> None:
        with self._lock:
            cam.count(lost=int(info.total_count_change))

    # data flow: message → (worker) image → detections → tracks → Detection2DArray
    def _on_image(self, cam: Camera, msg: Any) -> None:
        """Record the frame and when it came; a worker decodes it (a frame replaced in the slot costs nothing)."""
        received = time.monotonic()
        with self._lock:
            cam.count(received=1)
            cam.stamps.add(stamp_seconds(msg.header.stamp.sec, msg.header.stamp.nanosec))
        self._state()[1].submit_lazy(partial(image_from_message, msg, cam.compressed), tag=(cam, msg.header, received),
                                     source=cam.index)

    def _on_result(self, result: FrameResult) -> None:
        """A worker delivers one frame of one camera, in that camera's order; no lock is shared while publishing."""
        cam, header, received = result.tag
        outcome = result.outcome
        if isinstance(outcome, Failed):
            kind = "bad" if outcome.unreadable else "failed"
            with self._lock:
                cam.count(**{kind: 1})
                so_far = getattr(cam.counts, kind)
            what = "skipped a bad frame" if outcome.unreadable else "frame failed"
            self.get_logger().warning(f"{cam.topic}: {what} ({so_far} so far): {outcome.error}",
                                      throttle_duration_sec=LOG_EVERY_S)
            return
        config, _ = self._state()
        stamp = stamp_seconds(header.stamp.sec, header.stamp.nanosec)
        track_ids = None
        if cam.tracker is not None:
            update = cam.tracker.update(stamp, outcome.detections, outcome.low)
            track_ids = update.ids
            if update.reset:
                self.get_logger().info(f"{cam.topic}: tracks start afresh: {update.reset}")
        fields = detection_fields(outcome.detections, self._names, config.class_id_format, track_ids)
        cam.publishers["detections"].publish(detection_array(header, fields))
        published = time.monotonic()
        with self._lock:
            cam.count(published=1)
            cam.latency.add(received, stamp, published, self.get_clock().now().nanoseconds * 1e-9)
            t = outcome.timings
            cam.stage_ms = [a + b for a, b in zip(cam.stage_ms, (t.preprocess_ms, t.inference_ms, t.postprocess_ms))]
        if cam.depth_setup is not None:
            self._publish_3d(cam, cam.depth_setup, header, stamp, outcome, fields)
        image_pub = cam.publishers["image"]
        if config.publish_debug_image and image_pub.get_subscription_count() > 0:
            image_pub.publish(self._debug_image(cam, header, outcome, track_ids))

    def _publish_3d(self, cam: Camera, setup: params.DepthSetup, header: Any, stamp: float, outcome: Detected,
                    fields: list) -> None:
        """Detection3DArray for one frame: its depth paired by stamp, boxes in the optical or the target frame."""
        with self._lock:
            paired = cam.depth.nearest(stamp) if cam.depth is not None else None
        if paired is None:
            self._count_depth(cam, "unsynchronised frames")
            return
        depth_msg, intrinsics, info_wh = paired
        try:
            boxes = depth_boxes(depth_msg, outcome.detections.xyxy, outcome.image.shape[:2], intrinsics, info_wh,
                                setup.estimate)
        except ValueError as e:
            self._count_depth(cam, "bad depth images")
            self.get_logger().warning(f"{setup.depth_topic}: {e}", throttle_duration_sec=LOG_EVERY_S)
            return
        out_header, translation, rotation = header, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
        if setup.target_frame:
            try:
                transform = self._tf_buffer.lookup_transform(setup.target_frame, header.frame_id,
                                                             Time.from_msg(header.stamp)).transform
            except TransformException as e:
                self._count_depth(cam, "frames without transform")
                self.get_logger().warning(f"{cam.topic}: no 3D output, no transform {header.frame_id} → "
                                          f"{setup.target_frame}: {e}", throttle_duration_sec=LOG_EVERY_S)
                return
            translation = (transform.translation.x, transform.translation.y, transform.translation.z)
            rotation = (transform.rotation.x, transform.rotation.y, transform.rotation.z, transform.rotation.w)
            out_header = Header(stamp=header.stamp, frame_id=setup.target_frame)
        cam.publishers["detections_3d"].publish(
            detection3d_array(out_header, detection3d_fields(fields, boxes, translation, rotation)))
        self._count_depth(cam, "frames with depth")
        self._count_depth(cam, "detections without valid depth", int((~boxes.valid).sum()))

    def _count_depth(self, cam: Camera, what: str, n: int = 1) -> None:
        with self._lock:
            cam.depth_counts[what] += n

    def _debug_image(self, cam: Camera, header: Any, outcome: Detected, track_ids: Any) -> Image:
        """The annotated frame in the camera's reused buffer: one copy of the frame, no other."""
        height, width = outcome.image.shape[:2]
        if len(cam.debug_image) != height * width * 3:
            cam.debug_image = array.array("B", bytes(height * width * 3))
        canvas = np.frombuffer(cam.debug_image, np.uint8).reshape(height, width, 3)
        draw_detections(outcome.image, outcome.detections, self._names, outcome.encoding, track_ids, out=canvas)
        return Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3,
                     data=cam.debug_image)

    def _publish_labels(self) -> None:
        """LabelInfo (class map, threshold) once per activation and after a threshold change; latched."""
        threshold = self._state()[1].detectors[0].config.conf_threshold
        for cam in self._cameras:
            if "labels" in cam.publishers:
                header = Header(stamp=self.get_clock().now().to_msg())
                cam.publishers["labels"].publish(label_info(header, self._names, threshold))

    # diagnostics (diagnostic_updater, every second, in every lifecycle state)
    def _lifecycle_state(self) -> str:
        return str(self._state_machine.current_state[1])

    def _node_status(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        state = self._lifecycle_state()
        configured = self._config is not None and self._pipeline is not None
        stat.summary(DiagnosticStatus.OK, f"{state}: " + ("configured" if configured else "no model loaded"))
        stat.add("lifecycle state", state)
        if configured:
            config, pipeline = self._state()
            stat.add("backend", config.backend_spec.name)
            stat.add("model", str(config.backend_spec.model))
            stat.add("workers", str(config.workers))
            stat.add("processed frames (all cameras)", str(pipeline.counts.processed))
            stat.add("publish errors (all cameras)", str(pipeline.counts.callback_errors))
        return stat

    def _camera_status(self, cam: Camera, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        state = self._lifecycle_state()
        if self._pipeline is None:
            stat.summary(DiagnosticStatus.OK, f"{state}: not configured")
            return stat
        pipeline = self._pipeline
        now_s = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            cam.count(replaced=pipeline.dropped_by_source.get(cam.index, 0) - cam.counts.replaced,
                      unseen=cam.stamps.unseen - cam.counts.unseen)
            counts, stage_ms, period = cam.counts, cam.stage_ms, cam.stamps.input_period()
            cam.stage_ms = [0.0, 0.0, 0.0]
            (before, t0), cam.last = cam.last, (counts, now_s)
            latency = cam.latency.take()
        window = counts - before
        dt = max(now_s - t0, 1e-9) if t0 else 1.0
        frames = max(window.published, 1)
        ok, message = health(window) if state == "active" else (True, "inputs stopped")
        stat.summary(DiagnosticStatus.OK if ok else DiagnosticStatus.WARN, f"{state}: {message}")
        values = {
            "lifecycle state": state,
            "input fps": f"{window.received / dt:.1f}", "output fps": f"{window.published / dt:.1f}",
            "input period ms": "-" if period is None else f"{period * 1e3:.1f}",
            **latency,
            "preprocess ms": f"{stage_ms[0] / frames:.2f}", "inference ms": f"{stage_ms[1] / frames:.2f}",
            "postprocess ms": f"{stage_ms[2] / frames:.2f}",
            "lost in transport": str(counts.lost), "never reached the node (from stamps)": str(counts.unseen),
            "replaced in the queue": str(counts.replaced), "bad frames": str(counts.bad),
            "failed frames": str(counts.failed), "input reliability": cam.reliability,
            "active tracks": "-" if cam.tracker is None else str(cam.tracker.active),
        }
        if cam.depth is not None:
            with self._lock:
                values |= {key: str(n) for key, n in cam.depth_counts.items()}
        for key, value in values.items():
            stat.add(key, value)
        return stat

    def _on_set_parameters(self, changed: list) -> SetParametersResult:
        runtime = {p.name: p.value for p in changed if p.name in params.RUNTIME}
        if not runtime:
            return SetParametersResult(successful=True)
        values = {name: self.get_parameter(name).value for name in params.RUNTIME} | runtime
        try:
            config, tracker = params.selection(values), params.tracker_config(values)
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        if self._pipeline is not None:
            self._pipeline.set_config(config)
            for cam in self._cameras:
                if tracker is None:
                    cam.tracker = None
                elif cam.tracker is None:
                    cam.tracker = Tracker(tracker)
                else:
                    cam.tracker.config = tracker
            if "conf_threshold" in runtime and self._timer is not None:
                self._publish_labels()
        return SetParametersResult(successful=True)


def _shut_down(node: DetectorNode) -> None:
    """Go through the lifecycle's shutdown and destroy the node; after Ctrl-C the context may be gone, then
    release directly. A failure here is reported in one line: the process is ending either way."""
    try:
        try:
            node.trigger_shutdown()
        except Exception:  # the context was shut down by the signal: transitions can no longer publish
            node.on_shutdown(None)
        node.destroy_node()
    except (Exception, KeyboardInterrupt) as e:
        print(f"detect_node: while shutting down: {type(e).__name__}: {e}", file=sys.stderr)


def _config_dir() -> Path:
    """The installed package's config folder (the middleware configs); the source tree's where the package is not
    in the ament index (run from a checkout)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("yolov5_dpu_ros")) / "config"
    except (ImportError, LookupError):
        return Path(__file__).resolve().parents[2] / "config"


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run yolov5_dpu_ros detect_node``: 0 after Ctrl-C/SIGTERM, 1 if it cannot start."""
    why_rmw = prepare_node_environment(os.environ, _config_dir(), os.geteuid() == 0)  # before the RMW loads
    rclpy.init(args=args)
    node = None
    record = None
    code = 0
    try:
        node = DetectorNode()
        record = run_record.record_path(node.get_fully_qualified_name())
        previous = run_record.previous_abnormal_exit(record)
        if previous:
            node.get_logger().warning(previous)
        run_record.start(record)
        node.get_logger().info(f"middleware: {get_rmw_implementation_identifier()}: {why_rmw}")
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        if code == 0:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM: rclpy's handler shut the context down; stop cleanly below
    finally:
        # `ros2 launch` without a terminal forwards SIGINT to the node itself as well: the second one must not
        # interrupt the shutdown (launch 1.0.7 execute_local.py, non-interactive mode)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            _shut_down(node)
        rclpy.try_shutdown()
        if record is not None:
            run_record.finish(record)
    return code


if __name__ == "__main__":
    sys.exit(main())
