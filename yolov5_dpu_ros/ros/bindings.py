"""The rclpy and tf2 objects behind the ROS-free parts' plain data: QoS profiles, message types, transform lookups
(the one place that maps them)."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticStatus
from message_filters import ApproximateTimeSynchronizer, Subscriber
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_ros import TransformException
from vision_msgs.msg import Detection2DArray, Detection3DArray

from yolov5_dpu_ros.ros import diagnostics
from yolov5_dpu_ros.ros.camera_io import Endpoint, Qos
from yolov5_dpu_ros.ros.frame_cycle import FrameCycle, NoTransformError
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


def subscribe_colour(node: Any, cycle: FrameCycle, index: int, ends: list[Endpoint], qos: tuple[Qos, ...]) -> list:
    """The camera's colour subscription into the frame cycle, with lost-message events where the middleware has them."""
    args = (TYPES[ends[0].type], ends[0].topic, partial(cycle.on_image, index), profile(qos[0]))
    try:
        lost = SubscriptionEventCallbacks(message_lost=lambda i: cycle.on_lost(index, i.total_count_change))
        return [node.create_subscription(*args, event_callbacks=lost)]
    except UnsupportedEventTypeError:
        node.get_logger().info(f"{ends[0].topic}: this middleware does not report lost messages; frames that never "
                               "arrive are estimated from header stamps only")
        return [node.create_subscription(*args)]


def subscribe_depth(node: Any, cycle: FrameCycle, index: int, ends: list[Endpoint], qos: tuple[Qos, ...]) -> list:
    """Depth and camera info paired by message_filters' ApproximateTimeSynchronizer; each pair then meets the colour
    frames of its stamp in the frame cycle, so a depth stream that stops leaves the 2D output running. Returns the
    rclpy subscriptions to destroy (message_filters' Subscriber holds its own as ``.sub``)."""
    rgbd = cycle.cameras[index].rgbd
    if rgbd is None:
        return []
    depth = Subscriber(node, Image, ends[0].topic, qos_profile=profile(qos[0]))
    info = Subscriber(node, CameraInfo, ends[1].topic, qos_profile=profile(qos[1]))
    synchronizer = ApproximateTimeSynchronizer([depth, info], 10, rgbd.setup.slop)
    synchronizer.registerCallback(partial(cycle.on_depth, index))
    return [depth.sub, info.sub]
