"""Which topics each camera subscribes and publishes, with which message types and QoS: plain data the node turns
into rclpy subscriptions and publishers (ROS-free, so CI tests every choice)."""

from __future__ import annotations

from dataclasses import dataclass

from yolov5_dpu_ros.core.input_health import choose_reliability
from yolov5_dpu_ros.ros.rgbd_inputs import DepthSetup

COMPRESSED = "/compressed"


@dataclass(frozen=True)
class Qos:
    """A QoS profile as plain data: reliability, history depth, and latched (transient local) or volatile."""

    reliability: str
    depth: int
    latched: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One topic of a camera: name and message type (package/msg/Type)."""

    topic: str
    type: str


# outputs: reliable like rclpy's default; label_info latched for late subscribers (vision_msgs' LabelInfo usage)
OUTPUTS = {
    "detections": (Endpoint("detections", "vision_msgs/msg/Detection2DArray"), Qos("reliable", 10)),
    "image": (Endpoint("detections/image", "sensor_msgs/msg/Image"), Qos("reliable", 2)),
    "labels": (Endpoint("label_info", "vision_msgs/msg/LabelInfo"), Qos("reliable", 1, latched=True)),
    "detections_3d": (Endpoint("detections_3d", "vision_msgs/msg/Detection3DArray"), Qos("reliable", 10)),
}
# inputs: a colour frame waits in the pipeline's one-frame slot, so depth 1; depth and camera info wait to be
# paired by stamp, so they keep a few (message_filters' synchroniser holds its own queue as well)
INPUT_DEPTH = {"colour": 1, "depth": 5, "camera_info": 5}


@dataclass(frozen=True)
class CameraTopics:
    """One camera's inputs and outputs. With several cameras the outputs go under each input's namespace."""

    index: int
    colour: Endpoint  # Image, or CompressedImage on <base>/compressed
    namespace: str
    depth: Endpoint | None = None
    camera_info: Endpoint | None = None

    @property
    def compressed(self) -> bool:
        return self.colour.type == "sensor_msgs/msg/CompressedImage"

    def inputs(self) -> dict[str, list[Endpoint]]:
        """Subscriptions by role: the colour image alone; depth and camera info as one synchronised pair."""
        return {"colour": [self.colour]} | ({"depth": [self.depth, self.camera_info]} if self.depth and
                                            self.camera_info else {})

    def outputs(self, with_labels: bool) -> dict[str, tuple[Endpoint, Qos]]:
        """The camera's publishers by role: detections and the debug image always, label_info where vision_msgs
        has LabelInfo, detections_3d with a depth input."""
        roles = ["detections", "image"] + (["labels"] if with_labels else []) + (
            ["detections_3d"] if self.depth is not None else [])
        return {role: (Endpoint(self._under(OUTPUTS[role][0].topic), OUTPUTS[role][0].type), OUTPUTS[role][1])
                for role in roles}

    def _under(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else name


def camera_topics(index: int, topic: str, compressed: bool, several: bool, depth: DepthSetup | None) -> CameraTopics:
    """One camera's topics. A compressed input is image_transport's ``<base>/compressed`` (a topic given with
    the suffix is taken as it is); a single camera publishes at the node's names, several under their
    namespaces (the parent of the base topic)."""
    base = topic[: -len(COMPRESSED)] if topic.endswith(COMPRESSED) else topic
    if compressed or topic.endswith(COMPRESSED):
        colour = Endpoint(base.rstrip("/") + COMPRESSED, "sensor_msgs/msg/CompressedImage")
    else:
        colour = Endpoint(topic, "sensor_msgs/msg/Image")
    namespace = base.rstrip("/").rpartition("/")[0] if several else ""
    if depth is None:
        return CameraTopics(index, colour, namespace)
    return CameraTopics(index, colour, namespace, Endpoint(depth.depth_topic, "sensor_msgs/msg/Image"),
                        Endpoint(depth.info_topic, "sensor_msgs/msg/CameraInfo"))


def input_choice(setting: str, role: str, offered: list[list[str]]) -> tuple[tuple[Qos, ...], int]:
    """The QoS of each endpoint of one input role (colour, or depth with camera info) from the reliabilities their
    publishers offer, and how many publishers that choice saw: subscribe again when either changes."""
    roles = ("colour",) if role == "colour" else ("depth", "camera_info")
    return tuple(input_qos(setting, o, r) for o, r in zip(offered, roles)), sum(len(o) for o in offered)


def subscribed_line(ends: list[Endpoint], qos: tuple[Qos, ...], setting: str, publishers: int) -> str:
    """The log line of a (re)subscription: what, with which reliability, and why."""
    return (f"{' and '.join(e.topic for e in ends)}: subscribed {'/'.join(q.reliability for q in qos)} "
            f"(input_reliability {setting}, {publishers} publishers)")


def input_qos(setting: str, publishers: list[str], role: str) -> Qos:
    """An input's QoS: the ``input_reliability`` setting, or with ``auto`` what its publishers offer (reliable only
    when every one is: a reliable reader never matches a best-effort writer) — the same rule for colour, depth and
    camera info."""
    reliability = setting if setting != "auto" else choose_reliability(publishers)
    return Qos(reliability, INPUT_DEPTH[role])
