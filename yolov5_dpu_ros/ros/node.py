"""The ROS 2 lifecycle node: rclpy wiring of the ROS-free parts (node_config, camera_io, frame_cycle, camera_state,
diagnostics, held); it decides nothing itself. Camera images in, vision_msgs/Detection2DArray out (Humble API).

Parameters are read and the model loaded on configure; subscriptions live only while active. Any parameter may be
set while unconfigured, so a lifecycle manager retries a failed configure after ``ros2 param set``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from diagnostic_updater import DiagnosticStatusWrapper, Updater
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from std_msgs.msg import Header
from tf2_ros import Buffer, TransformListener

from yolov5_dpu_ros.core.middleware import read_rmem_max, rmem_advice
from yolov5_dpu_ros.core.pipeline import DetectionPipeline
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.dpu.board import explain
from yolov5_dpu_ros.ros import node_config, params
from yolov5_dpu_ros.ros.bindings import (
    TYPES,
    fill,
    offered,
    profile,
    subscribe_colour,
    subscribe_depth,
    transform_lookup,
)
from yolov5_dpu_ros.ros.camera_io import Endpoint, Qos, camera_topics, input_choice, subscribed_line
from yolov5_dpu_ros.ros.diagnostics import camera_report, node_report
from yolov5_dpu_ros.ros.frame_cycle import FrameCycle
from yolov5_dpu_ros.ros.held import Held
from yolov5_dpu_ros.ros.messages import CameraPublishers, LabelInfo

DRAIN_S = 2.0  # deactivate waits this long for frames in flight


class DetectorNode(LifecycleNode):
    """YOLO detection and tracking on one or more cameras through one model (DPU or ONNX Runtime)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("yolov5_dpu", **kwargs)
        self._declare_errors = params.declare(self)  # by name, until that parameter is set again
        self._cycle: FrameCycle | None = None
        self._configured, self._activated = Held(), Held()
        self._inputs: dict[tuple[int, str], tuple[tuple[Qos, ...], int, list]] = {}  # (camera, role) → qos, n, subs
        self._tf_buffer: Any = None
        self._updater = Updater(self, period=1.0)  # diagnostics in every lifecycle state
        self._updater.setHardwareID("yolov5_dpu_ros")
        self._updater.add("node", lambda stat: fill(stat, node_report(self._state_name(), self._cycle)))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # lifecycle: every transition catches everything (Humble's rclpy drops an exception raised in a transition
    # without a word and the process exits 1), says what happened and what to do, and releases what it built
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            if self._declare_errors:
                raise ValueError("; ".join(self._declare_errors.values()))
            self._build(node_config.read(params.values(self)))
        except Exception as e:
            self._release("undo a failed configure", self._configured)
            self.get_logger().error(f"cannot configure: {explain(e)}")
            if self.get_parameter("backend").value == "dpu":
                self.get_logger().warning("the board as yolov5-dpu doctor sees it:\n"
                                          + node_config.doctor_report(params.values(self)))
            return TransitionCallbackReturn.FAILURE
        advice = rmem_advice(read_rmem_max())
        if advice:
            self.get_logger().warning(advice)
        return TransitionCallbackReturn.SUCCESS

    def _build(self, config: node_config.NodeConfig) -> None:
        """Detectors, pipeline, publishers, tf listener and diagnostics tasks, each held for cleanup once built."""
        detectors = build_detectors(config.backend_spec, config.model_meta, config.workers, config.selection)
        self._tf_buffer = Buffer() if any(s is not None and s.target_frame for s in config.depth) else None
        cycle = FrameCycle(config, detectors[0].meta.names, self._log, self._ros_now,
                           transform_lookup(self._tf_buffer) if self._tf_buffer is not None else None)
        try:
            cycle.pipeline = DetectionPipeline(detectors, cycle.on_result)
        except BaseException:
            for detector in detectors:
                detector.close()
            raise
        self._configured.hold("pipeline", cycle.pipeline.close)
        for index, (topic, setup) in enumerate(zip(config.input_topics, config.depth)):
            topics = camera_topics(index, topic, config.compressed, len(config.input_topics) > 1, setup)
            publishers = {role: self._publisher(end, qos)
                          for role, (end, qos) in topics.outputs(LabelInfo is not None).items()}
            cycle.add_camera(topics, setup, CameraPublishers(publishers))
            self._updater.add(topics.colour.topic, partial(self._camera_diagnostics, index))
            self._configured.hold("diagnostics task", partial(self._updater.removeByName, topics.colour.topic))
        if self._tf_buffer is not None:
            self._configured.hold("tf listener", TransformListener(self._tf_buffer, self).unregister)
        self._cycle = cycle
        self._updater.setHardwareID(f"yolov5_dpu_ros/{config.backend_spec.name}")
        self.get_logger().info(
            f"{config.backend_spec.name} model {config.backend_spec.model} ({len(cycle.names)} classes), "
            f"{config.workers} workers, tracking {'on' if config.tracker else 'off'}, "
            f"cameras {[c.topics.colour.topic for c in cycle.cameras]}")

    def _publisher(self, end: Endpoint, qos: Qos) -> Any:
        publisher = self.create_lifecycle_publisher(TYPES[end.type], end.topic, profile(qos))
        self._configured.hold(f"publisher {end.topic}", partial(self.destroy_lifecycle_publisher, publisher))
        return publisher

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            cycle = self._configured_cycle()
            self._activated.hold("subscriptions", self._drop_inputs)
            self._follow_publishers()
            timers = [(1.0, self._follow_publishers)] + ([(0.02, cycle.expire)] if any(
                cam.rgbd is not None for cam in cycle.cameras) else [])  # frames waiting for depth: decided on time
            for period, task in timers:
                self._activated.hold("timer", partial(self.destroy_timer, self.create_timer(period, task)))
            result = super().on_activate(state)  # activates the lifecycle publishers
            cycle.active = True
            self._publish_labels()
        except Exception as e:
            self._release("undo a failed activate", self._activated)
            self.get_logger().error(f"cannot activate: {explain(e)}")
            return TransitionCallbackReturn.FAILURE
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Inputs stop, the frames in flight finish (bounded), then the publishers go quiet; a frame finishing
        later is counted as finished after deactivate, never published."""
        try:
            for error in self._activated.release():  # the inputs; the cycle stays active for the frames in flight
                self.get_logger().error(f"while trying to stop the inputs: {error}")
            cycle = self._configured_cycle()
            if not cycle.running().wait_idle(DRAIN_S):
                self.get_logger().warning(f"frames still in flight after {DRAIN_S} s: they finish unpublished, "
                                          "counted in diagnostics as 'finished after deactivate'")
            cycle.flush()
            cycle.active = False
            for cam in cycle.cameras:
                cam.state.reset_tracks()
            return super().on_deactivate(state)
        except Exception as e:
            self.get_logger().error(f"cannot deactivate: {explain(e)}")
            return TransitionCallbackReturn.FAILURE

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return self._release("clean up", self._configured)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self._release("shut down", self._activated, self._configured)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """A transition failed with an exception: release everything, so unconfigured means nothing held."""
        return self._release("recover from an error", self._activated, self._configured)

    def destroy_node(self) -> None:
        self._release("destroy the node", self._activated, self._configured)
        super().destroy_node()

    def _release(self, what: str, *stages: Held) -> TransitionCallbackReturn:
        """Release stages in order; the frame cycle goes with the configured stage. One line per failure."""
        if self._cycle is not None:
            self._cycle.active = False
        errors = [error for stage in stages for error in stage.release()]
        if self._configured in stages:
            self._cycle = self._tf_buffer = None
        for error in errors:
            self.get_logger().error(f"while trying to {what}: {error}")
        return TransitionCallbackReturn.FAILURE if errors else TransitionCallbackReturn.SUCCESS

    def _configured_cycle(self) -> FrameCycle:
        if self._cycle is None:
            raise RuntimeError("the node is not configured")
        return self._cycle

    # inputs: each one's QoS follows its publishers (camera_io.input_choice), chosen again when they change
    def _follow_publishers(self) -> None:
        cycle = self._configured_cycle()
        for cam in cycle.cameras:
            for role, ends in cam.topics.inputs().items():
                qos, publishers = input_choice(cycle.config.input_reliability, role, [
                    offered(self.get_publishers_info_by_topic(self.resolve_topic_name(e.topic))) for e in ends])
                key = (cam.topics.index, role)
                if key in self._inputs and self._inputs[key][:2] == (qos, publishers):
                    continue
                self._drop_input(key)
                subscribe = subscribe_colour if role == "colour" else subscribe_depth
                self._inputs[key] = (qos, publishers, subscribe(self, cycle, cam.topics.index, ends, qos))
                self.get_logger().info(subscribed_line(ends, qos, cycle.config.input_reliability, publishers))

    def _drop_input(self, key: tuple[int, str]) -> None:
        for subscription in self._inputs.pop(key, ((), 0, []))[2]:
            self.destroy_subscription(subscription)

    def _drop_inputs(self) -> None:
        for key in list(self._inputs):
            self._drop_input(key)

    # what the frame cycle needs from rclpy
    def _log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text)

    def _ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_labels(self) -> None:
        """LabelInfo (class map, threshold) once per activation and after a threshold change; latched."""
        cycle = self._configured_cycle()
        threshold = cycle.running().detectors[0].config.conf_threshold
        for cam in cycle.cameras:
            cam.outputs.labels(Header(stamp=self.get_clock().now().to_msg()), cycle.names, threshold)

    # diagnostics (diagnostic_updater, every second, in every lifecycle state)
    def _state_name(self) -> str:
        return str(self._state_machine.current_state[1])

    def _camera_diagnostics(self, index: int, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        reliability = "/".join(q.reliability for q in self._inputs.get((index, "colour"), ((), 0, []))[0])
        return fill(stat, camera_report(self._state_name(), self._cycle, index, self._ros_now(), reliability))

    def _on_set_parameters(self, changed: list) -> SetParametersResult:
        """Any parameter while unconfigured (read at the next configure), runtime ones while configured."""
        cycle = self._cycle
        refusals = [node_config.change_refusal(p.name, cycle is not None) for p in changed]
        if any(refusals):
            return SetParametersResult(successful=False, reason="; ".join(r for r in refusals if r))
        try:
            update = node_config.runtime_update(params.values(self), {p.name: p.value for p in changed})
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        for p in changed:
            self._declare_errors.pop(p.name, None)
        if update is not None and cycle is not None:
            cycle.update(update)
            if update.thresholds_changed and cycle.active:
                self._publish_labels()
        return SetParametersResult(successful=True)
