"""``yolov5-dpu bag`` (camera bag → detections bag) and ``yolov5-dpu compare`` (two detection bags)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .bag_io import DETECTIONS, DIAGNOSTICS, BagError, BagReader, DetectionBagWriter, output_topic, typestore
from .cli_common import STAGES, CliError, add_model_arguments, build_detector, summary
from .conversions import detection_fields
from .detections import Detections
from .draw import VideoSink, draw_detections, to_bgr
from .metrics import greedy_match
from .progress import Progress


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
    c.add_argument("--plot", type=Path, help="write a PNG of per-frame counts and latency histograms")
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
    try:
        reader = BagReader(args.bag, args.topics)
        writer = DetectionBagWriter(args.out, args.storage)
    except BagError as e:
        raise CliError(str(e)) from e
    detector = build_detector(args)
    names = detector.meta.names
    several = len(reader.topics) > 1
    topics = {t: (output_topic(t, several), output_topic(t, several, "detections/timing")) for t in reader.topics}
    if len({d for d, _ in topics.values()}) < len(topics):
        raise CliError(f"topics {reader.topics} would share one output topic: pick one camera per namespace with "
                       "--topics (e.g. the raw or the compressed stream, not both)")
    videos = _Videos(args.annotate, names, reader.rate_hz()) if args.annotate else None
    progress = Progress(reader.count(), args.bag.name, enabled=not args.no_progress)
    frames, bad, classes, timings = 0, 0, Counter(), []
    start = time.perf_counter()
    try:
        for frame in reader:
            progress.update()
            if frame.image is None:
                bad += 1
                print(f"skipped a bad frame on {frame.topic} at {frame.timestamp}: {frame.error}", file=sys.stderr)
                continue
            found, t = detector.detect(frame.image, frame.encoding)
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
        reader.close()
        writer.close()
        detector.close()
        if videos is not None:
            videos.close()
    wall = time.perf_counter() - start
    print(summary(frames, bad, wall, timings, classes, names), file=sys.stderr)
    print(f"written: {args.out} on {sorted({d for d, _ in topics.values()})}", file=sys.stderr)
    return 0 if frames else 1


@dataclass
class _Run:
    """The detections of one bag, by (stamp ns, frame_id), with per-frame total latency where recorded."""

    frames: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)


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
                run.latency_ms[key] = sum(float(kv.value) for kv in msg.status[0].values)
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


def plot_comparison(path: Path, counts_a: list[int], counts_b: list[int], lat_a: list[float],
                    lat_b: list[float]) -> None:
    """PNG: per-frame detection counts of both runs (top), latency histograms where recorded (bottom)."""
    w, h, pad = 960, 560, 40
    img = np.full((h, w, 3), 255, np.uint8)
    colors = ((200, 90, 30), (30, 140, 240))  # A blue, B orange (BGR)
    top = (pad, pad, w - pad, h // 2 - pad)
    n, peak = max(len(counts_a), 2), max(max(counts_a + counts_b, default=1), 1)
    cv2.putText(img, "detections per frame (A blue, B orange)", (pad, pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    cv2.rectangle(img, top[:2], top[2:], (180, 180, 180), 1)
    for counts, color in zip((counts_a, counts_b), colors):
        pts = [(int(top[0] + i * (top[2] - top[0]) / (n - 1)), int(top[3] - c * (top[3] - top[1]) / peak))
               for i, c in enumerate(counts)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, color, 2, cv2.LINE_AA)
    cv2.putText(img, f"max {peak}", (top[2] - 70, top[1] + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1)
    bottom = (pad, h // 2 + pad, w - pad, h - pad)
    cv2.rectangle(img, bottom[:2], bottom[2:], (180, 180, 180), 1)
    if lat_a or lat_b:
        hi = max(lat_a + lat_b)
        edges = np.linspace(0, hi * 1.05 + 1e-6, 31)
        hists = [np.histogram(lat, edges)[0] for lat in (lat_a, lat_b)]
        top_count = max(max(hh.max(initial=0) for hh in hists), 1)
        bw = (bottom[2] - bottom[0]) / 30
        for k, (hist, color) in enumerate(zip(hists, colors)):
            for i, c in enumerate(hist):
                x = int(bottom[0] + i * bw + k * bw / 2)
                cv2.rectangle(img, (x, int(bottom[3] - c * (bottom[3] - bottom[1]) / top_count)),
                              (int(x + bw / 2) - 1, bottom[3]), color, -1)
        label = f"latency per frame, ms (0 to {edges[-1]:.1f})"
    else:
        label = "latency: not recorded in these bags"
    cv2.putText(img, label, (pad, h // 2 + pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    if not cv2.imwrite(str(path), img):
        raise CliError(f"cannot write {path}")


def run_compare(args: argparse.Namespace) -> int:
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
        plot_comparison(args.plot, [len(a.frames.get(k, ((), [], ()))[1]) for k in keys],
                        [len(b.frames.get(k, ((), [], ()))[1]) for k in keys],
                        list(a.latency_ms.values()), list(b.latency_ms.values()))
        print(f"plot: {args.plot}")
    return 0
