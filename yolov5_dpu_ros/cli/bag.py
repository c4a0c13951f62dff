"""``yolov5-dpu bag``: camera bag → detections bag."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.cli.bag_io import (
    BagError,
    BagReader,
    DepthStream,
    DetectionBagWriter,
    output_topic,
)
from yolov5_dpu_ros.cli.common import (
    STAGES,
    CliError,
    add_model_arguments,
    add_tracking_arguments,
    build_workers,
    check_output_folder,
    removed_on_failure,
    summary,
    tracker_config,
)
from yolov5_dpu_ros.cli.progress import Progress
from yolov5_dpu_ros.core.conversions import detection_fields
from yolov5_dpu_ros.core.depth import DepthConfig, Intrinsics, camera_info_beside, depth_boxes, detection3d_fields
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.detector import StageTimings
from yolov5_dpu_ros.core.draw import VideoSink, draw_detections
from yolov5_dpu_ros.core.latency import AGE, LATENCY, stamp_seconds
from yolov5_dpu_ros.core.tracking import Tracker


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bag", help="run the detector over a bag, write a bag of Detection2DArray",
                            description="Read sensor_msgs/Image and CompressedImage from a rosbag2 (sqlite3, mcap) "
                                        "or ROS 1 bag, detect, and write vision_msgs/Detection2DArray (Humble "
                                        "layout, each with its image's header) to a new rosbag2.")
    p.add_argument("bag", type=Path, help="input bag: rosbag2 folder or ROS 1 .bag")
    p.add_argument("--out", type=Path, required=True, help="output rosbag2 folder (must not exist)")
    p.add_argument("--topics", nargs="+", help="image topics to read (default: every image topic)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output storage")
    p.add_argument("--class-id-format", choices=("name", "index"), default="name")
    p.add_argument("--annotate", type=Path, help="folder for one annotated video per topic")
    p.add_argument("--no-progress", action="store_true")
    d = p.add_argument_group("RGB-D (one camera)")
    d.add_argument("--depth-topic", help="depth Image aligned to the colour topic: also write detections_3d")
    d.add_argument("--camera-info-topic", help="CameraInfo of the colour image (default: camera_info beside it)")
    d.add_argument("--depth-sync-slop", type=float, default=0.05,
                   help="most seconds between a colour and a depth stamp (default 0.05)")
    d.add_argument("--depth-scale", type=float, help="metres per depth unit (default: by encoding)")
    add_model_arguments(p)
    add_tracking_arguments(p)
    p.set_defaults(run=run_bag)


class _Videos:
    """One annotated video per input topic."""

    def __init__(self, folder: Path, names, fps: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.names, self.fps = folder, names, fps
        self._sinks: dict[str, VideoSink] = {}

    def write(self, topic: str, image: np.ndarray, encoding: str, detections: Detections,
              track_ids: np.ndarray | None = None) -> None:
        if topic not in self._sinks:
            self._sinks[topic] = VideoSink(self.folder / (topic.strip("/").replace("/", "_") + ".mp4"), self.fps)
        self._sinks[topic].write(draw_detections(image, detections, self.names, encoding, track_ids))

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()


def run_bag(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "--out", new=True)
    if args.annotate:
        check_output_folder(args.annotate, "--annotate")
    try:
        reader = BagReader(args.bag, args.topics)
    except BagError as e:
        raise CliError(str(e)) from e
    try:
        several = len(reader.topics) > 1
        topics = {t: (output_topic(t, several), output_topic(t, several, "detections/timing")) for t in reader.topics}
        if len({d for d, _ in topics.values()}) < len(topics):
            raise CliError(f"topics {reader.topics} would share one output topic: pick one camera per namespace "
                           "with --topics (e.g. the raw or the compressed stream, not both)")
        depth = _depth_stream(args, reader)
        try:
            (detector,) = build_workers(args)  # inputs and the model first: nothing is written for a run that cannot go
            try:
                with removed_on_failure(args.out, args.annotate):
                    frames, bad, classes, timings, wall = _detect_bag(args, reader, detector, topics, depth)
            finally:
                detector.close()
        finally:
            if depth is not None:
                depth.close()
    finally:
        reader.close()
    print(summary(frames, bad, wall, timings, classes, detector.meta.names), file=sys.stderr)
    print(f"written: {args.out} on {sorted({d for d, _ in topics.values()})}", file=sys.stderr)
    return 0 if frames else 1


def _depth_stream(args: argparse.Namespace, reader: BagReader) -> DepthStream | None:
    """The bag's depth and camera info for --depth-topic (one camera), checked before anything is written."""
    if not args.depth_topic:
        return None
    if len(reader.topics) != 1:
        raise CliError(f"--depth-topic needs one colour topic, got {reader.topics}: choose it with --topics")
    try:
        DepthConfig(scale=args.depth_scale)
        return DepthStream(args.bag, args.depth_topic, args.camera_info_topic or camera_info_beside(reader.topics[0]),
                           args.depth_sync_slop)
    except ValueError as e:
        raise CliError(str(e)) from e


def _write_3d(writer: DetectionBagWriter, depth: DepthStream, frame, fields: list, found: Detections,
              topic: str, scale: float | None, bad: Counter) -> None:
    """Detection3DArray for one colour frame, its depth paired by header stamp as the node pairs it."""
    depth.advance(frame.timestamp + int((depth.depth.slop + 0.5) * 1e9))  # what was recorded around it
    stamp = stamp_seconds(frame.header.stamp.sec, frame.header.stamp.nanosec)
    depth_msg = depth.depth.nearest(stamp)
    if depth_msg is None or depth.info is None:
        bad["unsynchronised frames"] += 1
        return
    try:
        info = depth.info
        intrinsics = Intrinsics.from_camera_info(info.k, info.d, info.distortion_model)  # as the node reads it
        boxes = depth_boxes(depth_msg, found.xyxy, frame.image.shape[:2], intrinsics,
                            (int(info.width), int(info.height)), DepthConfig(scale=scale))
    except ValueError as e:
        bad["bad depth images"] += 1
        print(f"skipped the 3D boxes of a frame at {frame.timestamp}: {e}", file=sys.stderr)
        return
    bad["detections without valid depth"] += int((~boxes.valid).sum())
    writer.write_detections_3d(topic, frame.timestamp, frame.header, detection3d_fields(fields, boxes))


def _detect_bag(args: argparse.Namespace, reader: BagReader, detector, topics: dict,
                depth: DepthStream | None = None) -> tuple:
    """Every frame of the bag through the detector into a new detections bag (and annotated videos)."""
    names = detector.meta.names
    tracking = tracker_config(args)
    trackers: dict[str, Tracker] = {}  # one per camera topic, fed the images' header stamps
    depth_counts: Counter[str] = Counter()
    try:
        writer = DetectionBagWriter(args.out, args.storage)
    except BagError as e:
        raise CliError(str(e)) from e
    videos = _Videos(args.annotate, names, reader.rate_hz()) if args.annotate else None
    progress = Progress(reader.count(), args.bag.name, enabled=not args.no_progress)
    frames, bad = 0, 0
    classes: Counter[int] = Counter()
    timings: list[StageTimings] = []
    start = time.perf_counter()
    try:
        for frame in reader:
            progress.update()
            try:
                if frame.image is None:
                    raise ValueError(frame.error)
                found, low, t = detector.detect_split(frame.image, frame.encoding)
            except Exception as e:  # one bad frame is counted and skipped, never the end of the run
                bad += 1
                print(f"skipped a bad frame on {frame.topic} at {frame.timestamp}: {e}", file=sys.stderr)
                continue
            det_topic, timing_topic = topics[frame.topic]
            ids = None
            if tracking is not None:
                stamp = stamp_seconds(frame.header.stamp.sec, frame.header.stamp.nanosec)
                update = trackers.setdefault(frame.topic, Tracker(tracking)).update(stamp, found, low)
                ids = update.ids
                if update.reset:
                    print(f"{frame.topic}: tracks start afresh: {update.reset}", file=sys.stderr)
            fields = detection_fields(found, names, args.class_id_format, ids)
            writer.write_detections(det_topic, frame.timestamp, frame.header, fields)
            if depth is not None:
                _write_3d(writer, depth, frame, fields, found, "/detections_3d", args.depth_scale, depth_counts)
            latency_ms = (time.monotonic() - frame.received) * 1e3
            recorded_ms = (frame.timestamp - (frame.header.stamp.sec * 10**9 + frame.header.stamp.nanosec)) * 1e-6
            writer.write_timings(timing_topic, frame.timestamp, frame.header,
                                 {**{s: getattr(t, f"{s}_ms") for s in STAGES}, LATENCY: latency_ms,
                                  AGE: recorded_ms + latency_ms})
            frames += 1
            timings.append(t)
            classes.update(found.class_id.tolist())
            if videos is not None:
                videos.write(frame.topic, frame.image, frame.encoding, found, ids)
    finally:
        progress.close()
        writer.close()
        if depth is not None and depth_counts:
            print("3D: " + ", ".join(f"{n} {what}" for what, n in sorted(depth_counts.items())), file=sys.stderr)
        if videos is not None:
            videos.close()
    return frames, bad, classes, timings, time.perf_counter() - start
