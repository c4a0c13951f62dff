"""``yolov5-dpu bag`` (camera bag → detections bag) and ``yolov5-dpu compare`` (two detection bags)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.cli.bag_io import (
    DETECTIONS,
    DIAGNOSTICS,
    BagError,
    BagReader,
    DetectionBagWriter,
    output_topic,
    typestore,
)
from yolov5_dpu_ros.cli.common import (
    STAGES,
    CliError,
    add_model_arguments,
    build_workers,
    check_output_folder,
    removed_on_failure,
    summary,
)
from yolov5_dpu_ros.cli.compare_plot import check_plot_path, plot_comparison
from yolov5_dpu_ros.cli.progress import Progress
from yolov5_dpu_ros.core.conversions import detection_fields
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.draw import VideoSink, draw_detections, to_bgr
from yolov5_dpu_ros.core.metrics import greedy_match


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
    add_model_arguments(p)
    p.set_defaults(run=run_bag)

    c = commands.add_parser("compare", help="compare two detection bags frame by frame",
                            description="Match the Detection2DArray of two runs by header stamp and frame_id; "
                                        "report precision/recall of B against A at an IoU, score deltas, missing "
                                        "frames; optionally plot per-frame counts and latencies.")
    c.add_argument("a", type=Path, help="reference run (bag)")
    c.add_argument("b", type=Path, help="run to compare (bag)")
    c.add_argument("--topic", help="Detection2DArray topic (default: the only one in each bag)")
    c.add_argument("--iou", type=float, default=0.5, help="IoU for two boxes of one class to agree (default 0.5)")
    c.add_argument("--plot", type=Path, help="write a figure (.png, .pdf, .svg) of detections per frame over time and "
                                             "latency histograms per stage (needs matplotlib: .[plot])")
    c.set_defaults(run=run_compare)


class _Videos:
    """One annotated video per input topic."""

    def __init__(self, folder: Path, names, fps: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.names, self.fps = folder, names, fps
        self._sinks: dict[str, VideoSink] = {}

    def write(self, topic: str, image: np.ndarray, encoding: str, detections: Detections) -> None:
        if topic not in self._sinks:
            self._sinks[topic] = VideoSink(self.folder / (topic.strip("/").replace("/", "_") + ".mp4"), self.fps)
        self._sinks[topic].write(draw_detections(to_bgr(image, encoding), detections, self.names))

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
        (detector,) = build_workers(args)  # inputs and the model first: nothing is written for a run that cannot go
        try:
            with removed_on_failure(args.out, args.annotate):
                frames, bad, classes, timings, wall = _detect_bag(args, reader, detector, topics)
        finally:
            detector.close()
    finally:
        reader.close()
    print(summary(frames, bad, wall, timings, classes, detector.meta.names), file=sys.stderr)
    print(f"written: {args.out} on {sorted({d for d, _ in topics.values()})}", file=sys.stderr)
    return 0 if frames else 1


def _detect_bag(args: argparse.Namespace, reader: BagReader, detector, topics: dict) -> tuple:
    """Every frame of the bag through the detector into a new detections bag (and annotated videos)."""
    names = detector.meta.names
    try:
        writer = DetectionBagWriter(args.out, args.storage)
    except BagError as e:
        raise CliError(str(e)) from e
    videos = _Videos(args.annotate, names, reader.rate_hz()) if args.annotate else None
    progress = Progress(reader.count(), args.bag.name, enabled=not args.no_progress)
    frames, bad, classes, timings = 0, 0, Counter(), []
    start = time.perf_counter()
    try:
        for frame in reader:
            progress.update()
            try:
                if frame.image is None:
                    raise ValueError(frame.error)
                found, t = detector.detect(frame.image, frame.encoding)
            except Exception as e:  # one bad frame is counted and skipped, never the end of the run
                bad += 1
                print(f"skipped a bad frame on {frame.topic} at {frame.timestamp}: {e}", file=sys.stderr)
                continue
            det_topic, timing_topic = topics[frame.topic]
            writer.write_detections(det_topic, frame.timestamp, frame.header,
                                    detection_fields(found, names, args.class_id_format))
            writer.write_timings(timing_topic, frame.timestamp, frame.header,
                                 {s: getattr(t, f"{s}_ms") for s in STAGES})
            frames += 1
            timings.append(t)
            classes.update(found.class_id.tolist())
            if videos is not None:
                videos.write(frame.topic, frame.image, frame.encoding, found)
    finally:
        progress.close()
        writer.close()
        if videos is not None:
            videos.close()
    return frames, bad, classes, timings, time.perf_counter() - start


@dataclass
class _Run:
    """The detections of one bag, by (stamp ns, frame_id), with per-stage latencies (ms) where recorded."""

    frames: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)  # stage → [ms per frame]


def _read_run(path: Path, topic: str | None) -> _Run:
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise CliError(f"{path}: no such bag")
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as e:  # rosbags raises several reader-specific errors for unreadable bags
        raise CliError(f"{path}: cannot read this bag ({type(e).__name__}: {e})") from e
    try:
        det = [c for c in reader.connections if c.msgtype == DETECTIONS and (topic is None or c.topic == topic)]
        if len(det) != 1:
            found = sorted({c.topic for c in reader.connections if c.msgtype == DETECTIONS}) or "none"
            raise CliError(f"{path}: need exactly one {DETECTIONS} topic{f' named {topic}' if topic else ''}; "
                           f"found {found} (choose one with --topic)")
        timing = [c for c in reader.connections if c.msgtype == DIAGNOSTICS and c.topic == det[0].topic + "/timing"]
        run = _Run()
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


def _as_detections(frame, label_ids: dict) -> Detections:
    boxes, labels, scores = frame
    ids = np.array([label_ids.setdefault(lab, len(label_ids)) for lab in labels], np.int32)
    return Detections(boxes, scores, ids)


def run_compare(args: argparse.Namespace) -> int:
    if args.plot:
        try:
            check_plot_path(args.plot)
        except ValueError as e:
            raise CliError(str(e)) from e
    a, b = _read_run(args.a, args.topic), _read_run(args.b, args.topic)
    common = sorted(set(a.frames) & set(b.frames))
    label_ids: dict[str, int] = {}
    tp = n_a = n_b = 0
    deltas = []
    for key in common:
        ref, run = _as_detections(a.frames[key], label_ids), _as_detections(b.frames[key], label_ids)
        matched = greedy_match(run, ref.xyxy, ref.class_id, args.iou)
        tp += int((matched >= 0).sum())
        n_a, n_b = n_a + len(ref), n_b + len(run)
        deltas += (run.score[matched >= 0] - ref.score[matched[matched >= 0]]).tolist()
    precision = tp / n_b if n_b else 1.0
    recall = tp / n_a if n_a else 1.0
    print(f"frames: A {len(a.frames)}, B {len(b.frames)}, matched by stamp {len(common)}, "
          f"missing in B {len(set(a.frames) - set(b.frames))}, missing in A {len(set(b.frames) - set(a.frames))}")
    print(f"detections: A {n_a}, B {n_b}, agreeing {tp} (same class, IoU >= {args.iou})")
    print(f"precision of B against A: {precision:.4f}  recall: {recall:.4f}  "
          f"mean score delta (B - A): {np.mean(deltas) if deltas else 0.0:+.4f}  "
          f"mean |delta|: {np.mean(np.abs(deltas)) if deltas else 0.0:.4f}")
    if args.plot:
        keys = sorted(set(a.frames) | set(b.frames))
        first = keys[0][0] if keys else 0
        counts = [[len(run.frames[k][1]) if k in run.frames else float("nan") for k in keys] for run in (a, b)]
        plot_comparison(args.plot, [(k[0] - first) * 1e-9 for k in keys], *counts, a.latency_ms, b.latency_ms,
                        (f"A {args.a.name}", f"B {args.b.name}"))
        print(f"plot: {args.plot}")
    return 0
