"""``yolov5-dpu detect``: images, folders and videos → JSON lines, annotated copies, a summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

import cv2

from .cli_common import (
    CliError,
    add_model_arguments,
    build_detector,
    check_output_file,
    check_output_folder,
    removed_on_failure,
    summary,
)
from .detections import Detections
from .detector import Detector, StageTimings
from .draw import VideoSink, draw_detections
from .progress import Progress
from .sources import Frame, Source, iter_frames, resolve_source


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("detect", help="detect objects in images, folders and videos",
                            description="Detect objects in images, folders and videos; one JSON line per frame.")
    p.add_argument("sources", nargs="+", help="image files, folders of images, video files")
    p.add_argument("--jsonl", default="-", help="where to write JSON lines (default: stdout)")
    p.add_argument("--annotate", type=Path, help="folder for annotated images and videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    p.set_defaults(run=run)


def frame_record(frame: Frame, detections: Detections, timings: StageTimings, names) -> dict:
    """One JSON line: where the frame came from, its detections and stage timings."""
    return {
        "source": str(frame.path),
        "frame": frame.index,
        "width": int(frame.image.shape[1]),
        "height": int(frame.image.shape[0]),
        "detections": [
            {"class_id": int(c), "class_name": names[c], "score": round(float(s), 5),
             "xyxy": [round(float(v), 2) for v in box]}
            for box, s, c in zip(detections.xyxy, detections.score, detections.class_id)
        ],
        "timings_ms": {"preprocess": round(timings.preprocess_ms, 3), "inference": round(timings.inference_ms, 3),
                       "postprocess": round(timings.postprocess_ms, 3)},
    }


class _Annotator:
    """Writes annotated images into a folder and annotated videos as <name>_det.mp4."""

    def __init__(self, folder: Path, names) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.names = folder, names
        self._video: VideoSink | None = None
        self._video_source: Path | None = None

    def write(self, source: Source, frame: Frame, detections: Detections) -> None:
        image = draw_detections(frame.image, detections, self.names)
        if not source.is_video:
            cv2.imwrite(str(self.folder / frame.path.name), image)
            return
        if self._video_source != source.path:
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


def _process(detector: Detector, sources: list[Source], out: TextIO, annotator: _Annotator | None,
             show_progress: bool) -> tuple[int, int, list[StageTimings], Counter]:
    names = detector.meta.names
    done, skipped, timings, classes = 0, 0, [], Counter()
    for source in sources:
        progress = Progress(source.frame_count(), source.path.name, enabled=show_progress)
        for frame in iter_frames(source):
            progress.update()
            try:
                if frame.image is None:
                    raise ValueError(frame.error)
                detections, t = detector.detect(frame.image, "bgr8")
            except Exception as e:  # one bad frame is counted and skipped, never the end of the run
                skipped += 1
                print(f"skipped {frame.path}#{frame.index}: {e}", file=sys.stderr)
                continue
            done += 1
            timings.append(t)
            classes.update(detections.class_id.tolist())
            out.write(json.dumps(frame_record(frame, detections, t, names)) + "\n")
            if annotator is not None:
                annotator.write(source, frame, detections)
        progress.close()
    return done, skipped, timings, classes


def run(args: argparse.Namespace) -> int:
    try:
        sources = [resolve_source(s) for s in args.sources]
    except ValueError as e:
        raise CliError(str(e)) from e
    jsonl = None if args.jsonl == "-" else Path(args.jsonl)
    if jsonl is not None:
        check_output_file(jsonl, "--jsonl")
    if args.annotate:
        check_output_folder(args.annotate, "--annotate")
    detector = build_detector(args)
    start = time.perf_counter()
    with removed_on_failure(jsonl, args.annotate):
        annotator = _Annotator(args.annotate, detector.meta.names) if args.annotate else None
        out = sys.stdout if jsonl is None else open(jsonl, "w")
        try:
            done, skipped, timings, classes = _process(detector, sources, out, annotator, not args.no_progress)
        finally:
            if out is not sys.stdout:
                out.close()
            if annotator is not None:
                annotator.close()
            detector.close()
    print(summary(done, skipped, time.perf_counter() - start, timings, classes, detector.meta.names),
          file=sys.stderr)
    return 0 if done else 1
