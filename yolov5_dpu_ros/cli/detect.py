"""``yolov5-dpu detect``: images, folders and videos → JSON lines, annotated copies, a summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from yolov5_dpu_ros.cli.common import (
    CliError,
    add_model_arguments,
    add_tracking_arguments,
    build_workers,
    check_output_file,
    check_output_folder,
    removed_on_failure,
    summary,
    tracker_config,
)
from yolov5_dpu_ros.cli.progress import Progress
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.detector import Detector, StageTimings
from yolov5_dpu_ros.core.draw import VideoSink, draw_detections
from yolov5_dpu_ros.core.pipeline import DetectionPipeline, Failed, FrameResult
from yolov5_dpu_ros.core.sources import Frame, Source, iter_frames, resolve_source
from yolov5_dpu_ros.core.tracking import Tracker, TrackerConfig


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("detect", help="detect objects in images, folders and videos",
                            description="Detect objects in images, folders and videos; one JSON line per frame.")
    p.add_argument("sources", nargs="+", help="image files, folders of images, video files")
    p.add_argument("--jsonl", default="-", help="where to write JSON lines (default: stdout)")
    p.add_argument("--annotate", type=Path, help="folder for annotated images and videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--fps", type=float, default=30.0,
                   help="--track: frame rate of a folder of images in name order (default 30; videos use their own)")
    add_model_arguments(p, workers=True)
    add_tracking_arguments(p)
    p.set_defaults(run=run)


def frame_record(frame: Frame, image: np.ndarray, detections: Detections, timings: StageTimings, names,
                 track_ids: np.ndarray | None = None) -> dict:
    """One JSON line: where the frame came from, its size, its detections (with ``track_id`` when tracking; null
    while a track is not confirmed) and stage timings."""
    record: dict[str, Any] = {
        "source": str(frame.path),
        "frame": frame.index,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "detections": [
            {"class_id": int(c), "class_name": names[c], "score": round(float(s), 5),
             "xyxy": [round(float(v), 2) for v in box]}
            for box, s, c in zip(detections.xyxy, detections.score, detections.class_id)
        ],
        "timings_ms": {"preprocess": round(timings.preprocess_ms, 3), "inference": round(timings.inference_ms, 3),
                       "postprocess": round(timings.postprocess_ms, 3)},
    }
    if track_ids is not None:
        for detection, tid in zip(record["detections"], track_ids.tolist()):
            detection["track_id"] = tid if tid >= 0 else None
    return record


def annotated_path(folder: Path, source: Source, frame_path: Path, several: bool) -> Path:
    """Where an annotated image goes: its path inside its input folder, mirrored under ``folder`` (so a/x.jpg and
    b/x.jpg stay two files); with several inputs, each under its input's name."""
    relative = frame_path.relative_to(source.path) if source.path.is_dir() else Path(frame_path.name)
    return folder / (Path(source.path.name) / relative if several else relative)


class _Annotator:
    """Writes annotated images into a folder (mirroring the inputs' sub-folders) and videos as <name>_det.mp4."""

    def __init__(self, folder: Path, names, several: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.names, self.several = folder, names, several
        self._video: VideoSink | None = None
        self._video_source: Path | None = None

    def write(self, source: Source, frame: Frame, image: np.ndarray, detections: Detections,
              track_ids: np.ndarray | None = None) -> None:
        image = draw_detections(image, detections, self.names, track_ids=track_ids)
        if not source.is_video:
            target = annotated_path(self.folder, source, frame.path, self.several)
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), image)
            return
        if self._video is None or self._video_source != source.path:
            self.close()
            cap = cv2.VideoCapture(str(source.path))
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            cap.release()
            self._video, self._video_source = VideoSink(self.folder / f"{source.path.stem}_det.mp4", fps), source.path
        self._video.write(image)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
        self._video, self._video_source = None, None


@dataclass
class _Tally:
    """What became of the frames of one run."""

    done: int = 0
    skipped: int = 0
    timings: list = field(default_factory=list)
    classes: Counter = field(default_factory=Counter)


def source_fps(source: Source, default: float) -> float:
    """Frames per second of an input for tracking stamps: a video's own rate where it says, else ``default``."""
    if not source.is_video:
        return default
    cap = cv2.VideoCapture(str(source.path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return fps if fps and fps > 0 else default


def _process(workers: list[Detector], sources: list[Source], out: TextIO, annotator: _Annotator | None,
             show_progress: bool, tracking: TrackerConfig | None = None, fps: float = 30.0) -> _Tally:
    names = workers[0].meta.names
    tally = _Tally()
    trackers: dict[Path, tuple[Tracker, float]] = {}  # one per input, its frames' stamps at its rate

    def on_result(result: FrameResult) -> None:  # in input order, one at a time
        source, frame = result.tag
        outcome = result.outcome
        if isinstance(outcome, Failed):
            tally.skipped += 1
            print(f"skipped {frame.path}#{frame.index}: {outcome.error}", file=sys.stderr)
            return
        tally.done += 1
        tally.timings.append(outcome.timings)
        tally.classes.update(outcome.detections.class_id.tolist())
        ids = None
        if tracking is not None:
            tracker, rate = trackers.setdefault(source.path, (Tracker(tracking), source_fps(source, fps)))
            ids = tracker.update(frame.index / rate, outcome.detections, outcome.low).ids
        record = frame_record(frame, outcome.image, outcome.detections, outcome.timings, names, ids)
        out.write(json.dumps(record) + "\n")
        if annotator is not None:
            annotator.write(source, frame, outcome.image, outcome.detections, ids)

    pipeline = DetectionPipeline(workers, on_result)
    try:
        for source in sources:
            progress = Progress(source.frame_count(), source.path.name, enabled=show_progress)
            for frame in iter_frames(source):
                progress.update()
                if frame.image is None:
                    pipeline.wait_idle()  # keeps the skipped line in input order
                    tally.skipped += 1
                    print(f"skipped {frame.path}#{frame.index}: {frame.error}", file=sys.stderr)
                    continue
                pipeline.submit(frame.image, "bgr8", tag=(source, frame), block=True)  # files lose no frame
            pipeline.wait_idle()
            progress.close()
    finally:
        pipeline.close()
    return tally


def run(args: argparse.Namespace) -> int:
    try:
        sources = [resolve_source(s) for s in args.sources]
    except ValueError as e:
        raise CliError(str(e)) from e
    jsonl = None if args.jsonl == "-" else Path(args.jsonl)
    if jsonl is not None:
        check_output_file(jsonl, "--jsonl", made=args.annotate)
    if args.annotate:
        check_output_folder(args.annotate, "--annotate")
    if not args.fps > 0:
        raise CliError(f"--fps must be above 0, got {args.fps}")
    tracking = tracker_config(args)
    workers = build_workers(args)
    start = time.perf_counter()
    with removed_on_failure(jsonl, args.annotate):
        annotator = (_Annotator(args.annotate, workers[0].meta.names, len(sources) > 1) if args.annotate
                     else None)
        out = sys.stdout if jsonl is None else open(jsonl, "w")
        try:
            tally = _process(workers, sources, out, annotator, not args.no_progress, tracking, args.fps)
        finally:
            if out is not sys.stdout:
                out.close()
            if annotator is not None:
                annotator.close()
    print(summary(tally.done, tally.skipped, time.perf_counter() - start, tally.timings, tally.classes,
                  workers[0].meta.names), file=sys.stderr)
    return 0 if tally.done else 1
