"""The ROS 2 node: camera images in, vision_msgs/Detection2DArray out (rclpy, Humble API).

A lifecycle node: the model is loaded on configure and the image subscriptions live only while
active. With ``autostart`` (the default) it configures and activates itself, so ``ros2 run`` and
``ros2 launch`` need no lifecycle manager; with ``autostart:=false`` a manager drives it. Ctrl-C or
SIGTERM walks it through shutdown and exits 0.
"""

from __future__ import annotations

import array
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from yolov5_dpu_ros.core.conversions import detection_fields, image_from_compressed, image_from_fields
from yolov5_dpu_ros.core.draw import draw_detections, to_bgr
from yolov5_dpu_ros.core.input_health import CameraCounts, StampGaps, choose_reliability, health
from yolov5_dpu_ros.core.pipeline import DetectionPipeline, Failed, FrameResult
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.dpu.board import explain
from yolov5_dpu_ros.ros import params
from yolov5_dpu_ros.ros.messages import LabelInfo, detection_array, diagnostics, label_info

LOG_EVERY_S = 5.0
POLICY_NAMES = {ReliabilityPolicy.RELIABLE: "reliable", ReliabilityPolicy.BEST_EFFORT: "best_effort"}


@dataclass
class Camera:
    """One input topic with its outputs and counters."""

    index: int
    topic: str
    namespace: str
    compressed: bool
    publishers: dict[str, Any] = field(default_factory=dict)
    subscription: Any = None
    reliability: str = ""  # of the current subscription
    counts: CameraCounts = CameraCounts()  # replaced: read from the pipeline when diagnostics are made
    stamps: StampGaps = field(default_factory=StampGaps)
    stage_ms: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    last: tuple = (CameraCounts(), 0.0)  # counts and time of the previous diagnostics

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
    """YOLOv5 detection on one or more cameras through one model (DPU or ONNX Runtime)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("yolov5_dpu", **kwargs)
        self._declare_errors = params.declare(self)
        self._config: params.NodeConfig | None = None
        self._pipeline: DetectionPipeline | None = None
        self._names: tuple[str, ...] = ()
        self._cameras: list[Camera] = []
        self._diagnostics_pub: Any = None
        self._timer = None
        self._lock = threading.Lock()
        self._group = MutuallyExclusiveCallbackGroup()
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
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"{config.backend_spec.name} model {config.backend_spec.model} ({len(self._names)} classes), "
            f"{config.workers} workers, "
            f"cameras {[c.topic + (' (compressed)' if c.compressed else '') for c in self._cameras]}")
        return TransitionCallbackReturn.SUCCESS

    def _open_outputs(self, config: params.NodeConfig) -> None:
        """One Camera per input topic with its publishers, and the diagnostics publisher."""
        several = len(config.input_topics) > 1
        self._cameras = [_camera(i, t, config.compressed, several) for i, t in enumerate(config.input_topics)]
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for cam in self._cameras:
            cam.publishers = {
                "detections": self.create_publisher(Detection2DArray, cam.out("detections"), 10),
                "image": self.create_publisher(Image, cam.out("detections/image"), 2),
            }
            if LabelInfo is not None:
                cam.publishers["labels"] = self.create_publisher(LabelInfo, cam.out("label_info"), latched)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            for cam in self._cameras:
                self._subscribe(cam)
            self._publish_labels()
            self._timer = self.create_timer(1.0, self._tick)
        except Exception as e:
            self._stop_inputs()
            self.get_logger().error(f"cannot activate: {explain(e)}")
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
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
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        for cam in self._cameras:
            for pub in cam.publishers.values():
                self.destroy_publisher(pub)
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        self._cameras = []

    def _state(self) -> tuple[params.NodeConfig, DetectionPipeline]:
        """The configured state: subscriptions, timers and results exist only between configure and cleanup."""
        if self._config is None or self._pipeline is None:
            raise RuntimeError("the node is not configured")
        return self._config, self._pipeline

    # inputs: QoS matched to the publishers, lost messages counted
    def _wanted_reliability(self, cam: Camera) -> str:
        config, _ = self._state()
        if config.input_reliability != "auto":
            return config.input_reliability
        infos = self.get_publishers_info_by_topic(self.resolve_topic_name(cam.topic))
        return choose_reliability([POLICY_NAMES.get(i.qos_profile.reliability, "best_effort") for i in infos])

    def _subscribe(self, cam: Camera) -> None:
        """(Re)create the camera's subscription with the reliability its publishers call for."""
        wanted = self._wanted_reliability(cam)
        if cam.subscription is not None and wanted == cam.reliability:
            return
        if cam.subscription is not None:
            self.destroy_subscription(cam.subscription)
        qos = QoSProfile(depth=1, reliability=(ReliabilityPolicy.RELIABLE if wanted == "reliable"
                                               else ReliabilityPolicy.BEST_EFFORT))
        kind = CompressedImage if cam.compressed else Image
        callback = lambda msg, cam=cam: self._on_image(cam, msg)  # noqa: E731
        try:
            events = SubscriptionEventCallbacks(message_lost=lambda info, cam=cam: self._on_lost(cam, info))
            cam.subscription = self.create_subscription(kind, cam.topic, callback, qos, callback_group=self._group,
                                                        event_callbacks=events)
        except UnsupportedEventTypeError:
            self.get_logger().info(f"{cam.topic}: this middleware does not report lost messages; frames that never "
                                   "arrive are estimated from header stamps only")
            cam.subscription = self.create_subscription(kind, cam.topic, callback, qos, callback_group=self._group)
        cam.reliability = wanted
        setting = self._state()[0].input_reliability
        self.get_logger().info(f"{cam.topic}: subscribed {wanted} (input_reliability {setting})")

    def _on_lost(self, cam: Camera, info: Any) -> None:
        with self._lock:
            cam.count(lost=int(info.total_count_change))

    # data flow: message → image → pipeline → Detection2DArray
    def _on_image(self, cam: Camera, msg: Any) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            cam.count(received=1)
            cam.stamps.add(stamp)
        try:
            if cam.compressed:
                image, encoding = image_from_compressed(msg.format, msg.data), "bgr8"
            else:
                image, encoding = image_from_fields(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                                    msg.is_bigendian)
        except ValueError as e:
            with self._lock:
                cam.count(bad=1)
            self.get_logger().warning(f"{cam.topic}: skipped a bad frame ({cam.counts.bad} so far): {e}",
                                      throttle_duration_sec=LOG_EVERY_S)
            return
        self._state()[1].submit(image, encoding, tag=(cam, msg.header, encoding), source=cam.index)

    def _on_result(self, result: FrameResult) -> None:
        cam, header, encoding = result.tag
        outcome = result.outcome
        if isinstance(outcome, Failed):
            with self._lock:
                cam.count(failed=1)
            self.get_logger().warning(f"{cam.topic}: frame failed ({cam.counts.failed} so far): {outcome.error}",
                                      throttle_duration_sec=LOG_EVERY_S)
            return
        config, _ = self._state()
        fields = detection_fields(outcome.detections, self._names, config.class_id_format)
        cam.publishers["detections"].publish(detection_array(header, fields))
        with self._lock:
            cam.count(published=1)
            t = outcome.timings
            cam.stage_ms = [a + b for a, b in zip(cam.stage_ms, (t.preprocess_ms, t.inference_ms, t.postprocess_ms))]
        image_pub = cam.publishers["image"]
        if config.publish_debug_image and image_pub.get_subscription_count() > 0:
            bgr = draw_detections(to_bgr(result.image, encoding), outcome.detections, self._names)
            image_pub.publish(Image(header=header, height=bgr.shape[0], width=bgr.shape[1], encoding="bgr8",
                                    is_bigendian=0, step=bgr.shape[1] * 3, data=array.array("B", bgr.tobytes())))

    def _publish_labels(self) -> None:
        """LabelInfo (class map, threshold) once per activation and after a threshold change; latched."""
        threshold = self._state()[1].detectors[0].config.conf_threshold
        for cam in self._cameras:
            if "labels" in cam.publishers:
                header = Header(stamp=self.get_clock().now().to_msg())
                cam.publishers["labels"].publish(label_info(header, self._names, threshold))

    def _tick(self) -> None:
        """Once a second: follow the publishers' reliability, then publish diagnostics."""
        for cam in self._cameras:
            self._subscribe(cam)
        self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        now_s = now.nanoseconds * 1e-9
        config, pipeline = self._state()
        for cam in self._cameras:
            with self._lock:
                cam.count(replaced=pipeline.dropped_by_source.get(cam.index, 0) - cam.counts.replaced,
                          unseen=cam.stamps.unseen - cam.counts.unseen)
                counts, stage_ms, period = cam.counts, cam.stage_ms, cam.stamps.input_period()
                cam.stage_ms = [0.0, 0.0, 0.0]
                (before, t0), cam.last = cam.last, (counts, now_s)
            window = counts - before
            dt = max(now_s - t0, 1e-9) if t0 else 1.0
            frames = max(window.published, 1)
            ok, message = health(window)
            values = {
                "input fps": f"{window.received / dt:.1f}", "output fps": f"{window.published / dt:.1f}",
                "input period ms": "-" if period is None else f"{period * 1e3:.1f}",
                "preprocess ms": f"{stage_ms[0] / frames:.2f}", "inference ms": f"{stage_ms[1] / frames:.2f}",
                "postprocess ms": f"{stage_ms[2] / frames:.2f}",
                "lost in transport": str(counts.lost), "never reached the node (from stamps)": str(counts.unseen),
                "replaced in the queue": str(counts.replaced), "bad frames": str(counts.bad),
                "failed frames": str(counts.failed),
                "publish errors (all cameras)": str(pipeline.counts.callback_errors),
                "processed frames (all cameras)": str(pipeline.counts.processed),
                "input reliability": cam.reliability, "backend": config.backend_spec.name,
                "workers": str(config.workers),
            }
            self._diagnostics_pub.publish(diagnostics(now.to_msg(), f"yolov5_dpu_ros: {cam.topic}",
                                                      config.backend_spec.name, ok, message, values))

    def _on_set_parameters(self, changed: list) -> SetParametersResult:
        runtime = {p.name: p.value for p in changed if p.name in params.RUNTIME}
        if not runtime:
            return SetParametersResult(successful=True)
        values = {name: self.get_parameter(name).value for name in params.RUNTIME} | runtime
        try:
            config = params.selection(values)
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        if self._pipeline is not None:
            self._pipeline.set_config(config)
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


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run yolov5_dpu_ros detect_node``: 0 after Ctrl-C/SIGTERM, 1 if it cannot start."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = DetectorNode()
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
    return code


if __name__ == "__main__":
    sys.exit(main())
