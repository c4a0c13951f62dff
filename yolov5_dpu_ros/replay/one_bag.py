"""One bag through one detector, in recording order, into a new detections bag: what ``yolov5-dpu bag`` does for
its bag and what each fleet actor does for each of its bags (so a fleet output equals the single-bag output)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from yolov5_dpu_ros.core.conversions import detection_fields
from yolov5_dpu_ros.core.depth import DepthConfig, Intrinsics, camera_info_beside, depth_boxes, detection3d_fields
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.detector import STAGES, Detector, StageTimings
from yolov5_dpu_ros.core.latency import AGE, LATENCY, stamp_seconds
from yolov5_dpu_ros.core.tracking import Tracker, TrackerConfig
from yolov5_dpu_ros.replay.bag_io import BagError, BagFrame, BagReader, DepthStream, DetectionBagWriter, output_topic


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class BagOptions:
    """What a replay reads and writes besides the model: topics, output format, tracking and RGB-D."""

    topics: tuple[str, ...] | None = None
    storage: str = "sqlite3"
    class_id_format: str = "name"
    tracking: TrackerConfig | None = None
    depth_topic: str | None = None
    camera_info_topic: str | None = None
    depth_sync_slop: float = 0.05
    depth_scale: float | None = None


@dataclass
class BagResult:
    """What one bag gave: frames per input topic, unreadable frames, detections per class, stage timings."""

    frames: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    classes: Counter[int] = field(default_factory=Counter)
    timings: list[StageTimings] = field(default_factory=list)
    depth_counts: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0


class BagInputs:
    """An opened input bag: its colour frames, their output topics and the depth stream; every problem is a
    BagError raised here, before anything is written."""

    def __init__(self, path: Path, options: BagOptions) -> None:
        self.path = path
        self.reader = BagReader(path, options.topics)
        self.depth: DepthStream | None = None
        try:
            several = len(self.reader.topics) > 1
            self.topics = {t: (output_topic(t, several), output_topic(t, several, "detections/timing"))
                           for t in self.reader.topics}
            if len({d for d, _ in self.topics.values()}) < len(self.topics):
                raise BagError(f"topics {self.reader.topics} would share one output topic: pick one camera per "
                               "namespace with --topics (e.g. the raw or the compressed stream, not both)")
            if options.depth_topic:
                if len(self.reader.topics) != 1:
                    raise BagError(f"--depth-topic needs one colour topic, got {self.reader.topics}: choose it with "
                                   "--topics")
                try:
                    DepthConfig(scale=options.depth_scale)
                except ValueError as e:
                    raise BagError(str(e)) from e
                self.depth = DepthStream(path, options.depth_topic,
                                         options.camera_info_topic or camera_info_beside(self.reader.topics[0]),
                                         options.depth_sync_slop)
        except BaseException:
            self.reader.close()
            raise

    def count(self) -> int:
        """Colour frames to process."""
        return self.reader.count()

    def close(self) -> None:
        self.reader.close()
        if self.depth is not None:
            self.depth.close()


FrameHook = Callable[[BagFrame, "Detections | None", object], None]  # detections None: a bad frame


def replay_bag(inputs: BagInputs, detector: Detector, out: Path, options: BagOptions,
               on_frame: FrameHook | None = None, say: Callable[[str], None] = _say) -> BagResult:
    """Every frame of the bag through the detector into the new bag ``out``; a bad frame is counted, reported
    through ``say`` and skipped. ``on_frame(frame, detections, track_ids)`` sees each processed frame."""
    names = detector.meta.names
    trackers: dict[str, Tracker] = {}  # one per camera topic, fed the images' header stamps
    result = BagResult()
    writer = DetectionBagWriter(out, options.storage)
    start = time.perf_counter()
    try:
        for frame in inputs.reader:
            try:
                if frame.image is None:
                    raise ValueError(frame.error)
                found, low, t = detector.detect_split(frame.image, frame.encoding)
            except Exception as e:  # one bad frame is counted and skipped, never the end of the run
                result.bad += 1
                say(f"skipped a bad frame on {frame.topic} at {frame.timestamp}: {e}")
                if on_frame is not None:
                    on_frame(frame, None, None)
                continue
            det_topic, timing_topic = inputs.topics[frame.topic]
            ids = None
            if options.tracking is not None:
                stamp = stamp_seconds(frame.header.stamp.sec, frame.header.stamp.nanosec)
                update = trackers.setdefault(frame.topic, Tracker(options.tracking)).update(stamp, found, low)
                ids = update.ids
                if update.reset:
                    say(f"{frame.topic}: tracks start afresh: {update.reset}")
            fields = detection_fields(found, names, options.class_id_format, ids)
            writer.write_detections(det_topic, frame.timestamp, frame.header, fields)
            if inputs.depth is not None:
                _write_3d(writer, inputs.depth, frame, frame.image.shape[:2], fields, found, options.depth_scale,
                          result.depth_counts, say)
            latency_ms = (time.monotonic() - frame.received) * 1e3
            recorded_ms = (frame.timestamp - (frame.header.stamp.sec * 10**9 + frame.header.stamp.nanosec)) * 1e-6
            writer.write_timings(timing_topic, frame.timestamp, frame.header,
                                 {**{s: getattr(t, f"{s}_ms") for s in STAGES}, LATENCY: latency_ms,
                                  AGE: recorded_ms + latency_ms})
            result.frames[frame.topic] += 1
            result.timings.append(t)
            result.classes.update(found.class_id.tolist())
            if on_frame is not None:
                on_frame(frame, found, ids)
    finally:
        writer.close()
        result.wall_s = time.perf_counter() - start
    if result.depth_counts:
        say("3D: " + ", ".join(f"{n} {what}" for what, n in sorted(result.depth_counts.items())))
    return result


def _write_3d(writer: DetectionBagWriter, depth: DepthStream, frame: BagFrame, image_hw: tuple[int, int],
              fields: list, found: Detections, scale: float | None, counts: Counter,
              say: Callable[[str], None]) -> None:
    """Detection3DArray for one colour frame, its depth paired by header stamp as the node pairs it."""
    depth.advance(frame.timestamp + int((depth.depth.slop + 0.5) * 1e9))  # what was recorded around it
    stamp = stamp_seconds(frame.header.stamp.sec, frame.header.stamp.nanosec)
    depth_msg = depth.depth.nearest(stamp)
    if depth_msg is None or depth.info is None:
        counts["unsynchronised frames"] += 1
        return
    try:
        info = depth.info
        intrinsics = Intrinsics.from_camera_info(info.k, info.d, info.distortion_model)  # as the node reads it
        boxes = depth_boxes(depth_msg, found.xyxy, image_hw, intrinsics,
                            (int(info.width), int(info.height)), DepthConfig(scale=scale))
    except ValueError as e:
        counts["bad depth images"] += 1
        say(f"skipped the 3D boxes of a frame at {frame.timestamp}: {e}")
        return
    counts["detections without valid depth"] += int((~boxes.valid).sum())
    writer.write_detections_3d("/detections_3d", frame.timestamp, frame.header, detection3d_fields(fields, boxes))
