"""The rclpy and tf2 objects behind the ROS-free parts' plain data: QoS profiles, message types, transform lookups
(the one place that maps them)."""

from __future__ import annotations

from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_ros import TransformException
from vision_msgs.msg import Detection2DArray, Detection3DArray

from yolov5_dpu_ros.ros import diagnostics
from yolov5_dpu_ros.ros.camera_io import Qos
from yolov5_dpu_ros.ros.frame_cycle import NoTransformError
from yolov5_dpu_ros.ros.messages import LabelInfo

TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage,
         "sensor_msgs/msg/CameraInfo": CameraInfo, "vision_msgs/msg/Detection2DArray": Detection2DArray,
         "vision_msgs/msg/Detection3DArray": Detection3DArray, "vision_msgs/msg/LabelInfo": LabelInfo}
LEVELS = {diagnostics.OK: DiagnosticStatus.OK, diagnostics.WARN: DiagnosticStatus.WARN}  # bytes in the message
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def profile(qos: Qos) -> QoSProfile:
    return QoSProfile(depth=qos.depth, reliability=RELIABILITY[qos.reliability],
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.latched else DurabilityPolicy.VOLATILE)


def offered(publishers_info: list[Any]) -> list[str]:
    """The reliabilities a topic's publishers offer (rclpy's TopicEndpointInfo), as camera_io names them."""
    names = {ReliabilityPolicy.RELIABLE: "reliable", ReliabilityPolicy.BEST_EFFORT: "best_effort"}
    return [names.get(info.qos_profile.reliability, "best_effort") for info in publishers_info]


def transform_lookup(buffer: Any) -> Callable[[str, Any, float], tuple[tuple, tuple]]:
    """frame_cycle's Transform on a tf2 Buffer: (translation, rotation) into ``target`` at the header's stamp,
    waiting at most ``timeout_s`` (called on a worker thread, never the executor's)."""

    def lookup(target: str, header: Any, timeout_s: float) -> tuple[tuple, tuple]:
        try:
            t = buffer.lookup_transform(target, header.frame_id, Time.from_msg(header.stamp),
                                        Duration(seconds=timeout_s)).transform
        except TransformException as e:
            raise NoTransformError(str(e)) from e
        return ((t.translation.x, t.translation.y, t.translation.z),
                (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))

    return lookup


def fill(stat: Any, status: diagnostics.Status) -> Any:
    """Write a Status into diagnostic_updater's DiagnosticStatusWrapper."""
    stat.summary(LEVELS[status.level], status.message)
    for key, value in status.values.items():
        stat.add(key, value)
    return stat
