"""Reading camera frames from bags and writing detections to rosbag2, without ROS (the rosbags library).

Reads rosbag2 (sqlite3 or mcap) and ROS 1 bags. Writes rosbag2 with vision_msgs/msg/Detection2DArray
in the ROS 2 Humble (vision_msgs 4.x) layout, each array carrying its image's header.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from yolov5_dpu_ros.core.conversions import DetectionFields, image_from_message
from yolov5_dpu_ros.core.depth import Detection3DFields, StampPairing

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
DETECTIONS_3D = "vision_msgs/msg/Detection3DArray"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"

# vision_msgs 4.x (ROS 2 Humble) message definitions, registered with rosbags' Humble typestore
VISION_MSGS_HUMBLE = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Detection2D":
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox2D bbox\n"
        "string id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D":
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox3D bbox\n"
        "string id\n",
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


class BagError(ValueError):
    """A bag that cannot be read or written as asked; the message says why and what to do."""


def typestore():
    """rosbags' ROS 2 Humble typestore with the vision_msgs 4.x types added."""
    try:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    except ImportError as e:
        raise BagError("bag support needs the rosbags library: pip install 'yolov5_dpu_ros[bag]'") from e
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = {}
    for name, text in VISION_MSGS_HUMBLE.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


@dataclass(frozen=True)
class BagFrame:
    """One image message of a bag: where and when, its header, and the image (None if bad, with why)."""

    topic: str
    timestamp: int
    header: Any
    image: np.ndarray | None
    encoding: str
    error: str = ""
    received: float = 0.0  # time.monotonic() when the message was read: the replay's "callback" time


def open_bag(path: Path) -> Any:
    """An open rosbags AnyReader with the Humble + vision_msgs 4.x types; BagError says why not."""
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise BagError(f"{path}: no such bag (give a rosbag2 folder or a ROS 1 .bag file)")
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as e:  # rosbags raises several reader-specific errors for unreadable bags
        raise BagError(f"{path}: cannot read this bag ({type(e).__name__}: {e})") from e
    return reader


class BagReader:
    """Camera frames from a rosbag2 (sqlite3, mcap) or ROS 1 bag, in recording order."""

    def __init__(self, path: str | Path, topics: Sequence[str] | None = None) -> None:
        path = Path(path)
        self._reader = open_bag(path)
        self.path = path
        images = {c.topic: c for c in self._reader.connections if c.msgtype in (IMAGE, COMPRESSED)}
        # by default each camera once: a compressed stream is skipped when its raw stream is there too
        wanted = list(topics) if topics else sorted(
            t for t in images if not (images[t].msgtype == COMPRESSED and t[: -len("/compressed")] in images))
        missing = [t for t in wanted if t not in images]
        if missing or not wanted:
            available = ", ".join(f"{t} ({images[t].msgtype})" for t in sorted(images)) or "none"
            raise BagError(f"{path}: no image topic {missing or ''}; image topics in this bag: {available}")
        self.connections = [images[t] for t in wanted]
        self.topics = wanted

    def count(self) -> int:
        """Number of frames on the selected topics."""
        return sum(c.msgcount for c in self.connections)

    def rate_hz(self) -> float:
        """Frames per second of one selected topic over the recording (for annotated videos)."""
        seconds = self._reader.duration * 1e-9
        per_topic = self.count() / len(self.connections)
        return per_topic / seconds if seconds > 0 and per_topic > 1 else 10.0

    def __iter__(self) -> Iterator[BagFrame]:
        for conn, timestamp, raw in self._reader.messages(connections=self.connections):
            received = time.monotonic()
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as e:  # a message that does not deserialize is a bad frame, not a crash
                yield BagFrame(conn.topic, timestamp, None, None, "", f"undecodable message: {e}", received)
                continue
            try:
                image, encoding = image_from_message(msg, conn.msgtype == COMPRESSED)
            except ValueError as e:
                yield BagFrame(conn.topic, timestamp, msg.header, None, "", str(e), received)
                continue
            yield BagFrame(conn.topic, timestamp, msg.header, image, encoding, received=received)

    def close(self) -> None:
        self._reader.close()


def output_topic(input_topic: str, several: bool, name: str = "detections") -> str:
    """Where one input topic's detections go: /detections, or <namespace>/detections for several inputs."""
    if not several:
        return f"/{name}"
    base = input_topic[: -len("/compressed")] if input_topic.endswith("/compressed") else input_topic
    return f"{base.rstrip('/').rpartition('/')[0]}/{name}"


class DetectionBagWriter:
    """A rosbag2 of Detection2DArray (and per-frame stage timings as DiagnosticArray)."""

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        path = Path(path)
        if path.exists():
            raise BagError(f"{path} exists: choose a new output folder (rosbag2 writes a folder)")
        if storage not in ("sqlite3", "mcap"):
            raise BagError(f"storage '{storage}': use sqlite3 (Humble's default) or mcap")
        self.store = typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(path, version=8, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[tuple[str, str], object] = {}
        t = self.store.types
        self._types = {name: t[name] for name in t if name.startswith(("vision_msgs/", "geometry_msgs/",
                                                                         "diagnostic_msgs/"))}

    def _connection(self, topic: str, msgtype: str):
        key = (topic, msgtype)
        if key not in self._connections:
            self._connections[key] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        return self._connections[key]

    def _pose(self):
        g = self._types
        pose = g["geometry_msgs/msg/Pose"](position=g["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                            orientation=g["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
        return g["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36, np.float64))

    def _header(self, header):
        """A ROS 2 std_msgs/Header from any bag's header (ROS 1 headers carry a seq field as well)."""
        t = self.store.types
        stamp = t["builtin_interfaces/msg/Time"](sec=header.stamp.sec, nanosec=header.stamp.nanosec)
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=header.frame_id)

    def _results(self, f: DetectionFields | Detection3DFields) -> list:
        """A detection's one hypothesis (class id, score), as the node fills it."""
        v = self._types
        return [v["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=v["vision_msgs/msg/ObjectHypothesis"](class_id=f.class_id, score=f.score), pose=self._pose())]

    def _write(self, topic: str, msgtype: str, timestamp: int, msg) -> None:
        self._writer.write(self._connection(topic, msgtype), timestamp, self.store.serialize_cdr(msg, msgtype))

    def write_detections(self, topic: str, timestamp: int, header, fields: Sequence[DetectionFields]) -> None:
        """One Detection2DArray with the image's header (stamp, frame_id) on the array and each detection."""
        v = self._types
        header = self._header(header)
        detections = [
            v["vision_msgs/msg/Detection2D"](
                header=header, results=self._results(f),
                bbox=v["vision_msgs/msg/BoundingBox2D"](
                    center=v["vision_msgs/msg/Pose2D"](
                        position=v["vision_msgs/msg/Point2D"](x=f.center_x, y=f.center_y), theta=0.0),
                    size_x=f.size_x, size_y=f.size_y),
                id=f.id)
            for f in fields]
        self._write(topic, DETECTIONS, timestamp, v[DETECTIONS](header=header, detections=detections))

    def write_detections_3d(self, topic: str, timestamp: int, header, fields: Sequence[Detection3DFields]) -> None:
        """One Detection3DArray (vision_msgs 4.x) with the colour image's header."""
        v = self._types
        header = self._header(header)
        detections = [
            v["vision_msgs/msg/Detection3D"](
                header=header, results=self._results(f),
                bbox=v["vision_msgs/msg/BoundingBox3D"](
                    center=v["geometry_msgs/msg/Pose"](
                        position=v["geometry_msgs/msg/Point"](x=f.center[0], y=f.center[1], z=f.center[2]),
                        orientation=v["geometry_msgs/msg/Quaternion"](x=f.orientation[0], y=f.orientation[1],
                                                                       z=f.orientation[2], w=f.orientation[3])),
                    size=v["geometry_msgs/msg/Vector3"](x=f.size[0], y=f.size[1], z=f.size[2])),
                id=f.id)
            for f in fields]
        self._write(topic, DETECTIONS_3D, timestamp, v[DETECTIONS_3D](header=header, detections=detections))

    def write_timings(self, topic: str, timestamp: int, header, timings_ms: dict[str, float]) -> None:
        """The frame's stage timings as one DiagnosticStatus, stamped like its detections."""
        v = self._types
        header = self._header(header)
        status = v["diagnostic_msgs/msg/DiagnosticStatus"](
            level=0, name="yolov5_dpu_ros stage timings", message="", hardware_id="",
            values=[v["diagnostic_msgs/msg/KeyValue"](key=k, value=f"{ms:.3f}") for k, ms in timings_ms.items()])
        self._write(topic, DIAGNOSTICS, timestamp, v[DIAGNOSTICS](header=header, status=[status]))

    def close(self) -> None:
        self._writer.close()


@dataclass
class DetectionRun:
    """The Detection2DArray of one bag by (stamp ns, frame_id): boxes (N, 4) xyxy, class labels, scores; and
    per-stage latencies (ms) from its ``<topic>/timing`` records where the bag has them."""

    frames: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)  # stage → [ms per frame]


def read_detections(path: Path, topic: str | None = None) -> DetectionRun:
    """Every Detection2DArray of one topic (``topic``, or the only one) of a bag."""
    reader = open_bag(path)
    try:
        det = [c for c in reader.connections if c.msgtype == DETECTIONS and (topic is None or c.topic == topic)]
        if len(det) != 1:
            found = sorted({c.topic for c in reader.connections if c.msgtype == DETECTIONS}) or "none"
            raise BagError(f"{path}: need exactly one {DETECTIONS} topic{f' named {topic}' if topic else ''}; "
                           f"found {found} (choose one with --topic)")
        timing = [c for c in reader.connections if c.msgtype == DIAGNOSTICS and c.topic == det[0].topic + "/timing"]
        run = DetectionRun()
        for conn, _, raw in reader.messages(connections=det + timing):
            msg = reader.deserialize(raw, conn.msgtype)
            key = (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.header.frame_id)
            if conn.msgtype == DIAGNOSTICS:
                for kv in msg.status[0].values:
                    run.latency_ms.setdefault(kv.key, []).append(float(kv.value))
                continue
            boxes = [(d.bbox.center.position.x - d.bbox.size_x / 2, d.bbox.center.position.y - d.bbox.size_y / 2,
                      d.bbox.center.position.x + d.bbox.size_x / 2, d.bbox.center.position.y + d.bbox.size_y / 2)
                     for d in msg.detections]
            labels = [d.results[0].hypothesis.class_id if d.results else "" for d in msg.detections]
            scores = [d.results[0].hypothesis.score if d.results else 0.0 for d in msg.detections]
            run.frames[key] = (np.asarray(boxes, np.float32).reshape(-1, 4), labels, np.asarray(scores, np.float32))
        return run
    finally:
        reader.close()


class DepthStream:
    """The depth images and camera info of a bag, read alongside its colour frames (a second reader, advanced in
    recording order) and paired with them by header stamp, as the node pairs them."""

    def __init__(self, path: Path, depth_topic: str, info_topic: str, slop: float) -> None:
        self._reader = open_bag(path)
        by_topic = {c.topic: c for c in self._reader.connections}
        wrong = [(topic, want) for topic, want in ((depth_topic, IMAGE), (info_topic, CAMERA_INFO))
                 if topic not in by_topic or by_topic[topic].msgtype != want]
        if wrong:
            found = ", ".join(f"{c.topic} ({c.msgtype})" for c in self._reader.connections)
            self._reader.close()
            raise BagError(f"{path}: no {', '.join(f'{t} of type {w}' for t, w in wrong)}; topics in this bag: {found}")
        self._messages = self._reader.messages(connections=[by_topic[depth_topic], by_topic[info_topic]])
        self._next: tuple | None = next(self._messages, None)
        self.depth = StampPairing(slop, keep=16)
        self.info: Any = None

    def advance(self, until_ns: int) -> None:
        """Take in every depth and info message recorded up to ``until_ns``."""
        while self._next is not None and self._next[1] <= until_ns:
            conn, _, raw = self._next
            msg = self._reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == CAMERA_INFO:
                self.info = msg
            else:
                self.depth.add(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg)
            self._next = next(self._messages, None)

    def close(self) -> None:
        self._reader.close()
