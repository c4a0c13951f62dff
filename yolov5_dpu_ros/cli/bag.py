"""``yolov5-dpu bag``: camera bag → detections bag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.cli.common import (
    CliError,
    add_bag_arguments,
    add_model_arguments,
    add_tracking_arguments,
    bag_options,
    build_workers,
    check_output_folder,
    removed_on_failure,
    summary,
)
from yolov5_dpu_ros.cli.progress import Progress
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.draw import VideoSink, draw_detections
from yolov5_dpu_ros.replay.bag_io import BagError, BagFrame
from yolov5_dpu_ros.replay.one_bag import BagInputs, replay_bag


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bag", help="run the detector over a bag, write a bag of Detection2DArray",
                            description="Read sensor_msgs/Image and CompressedImage from a rosbag2 (sqlite3, mcap) "
                                        "or ROS 1 bag, detect, and write vision_msgs/Detection2DArray (Humble "
                                        "layout, each with its image's header) to a new rosbag2. Many bags at once: "
                                        "yolov5-dpu replay.")
    p.add_argument("bag", type=Path, help="input bag: rosbag2 folder or ROS 1 .bag")
    p.add_argument("--out", type=Path, required=True, help="output rosbag2 folder (must not exist)")
    p.add_argument("--annotate", type=Path, help="folder for one annotated video per topic")
    p.add_argument("--no-progress", action="store_true")
    add_bag_arguments(p)
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
    options = bag_options(args)
    try:
        inputs = BagInputs(args.bag, options)
    except BagError as e:
        raise CliError(str(e)) from e
    try:
        (detector,) = build_workers(args)  # inputs and the model first: nothing is written for a run that cannot go
        try:
            videos = _Videos(args.annotate, detector.meta.names, inputs.reader.rate_hz()) if args.annotate else None
            progress = Progress(inputs.count(), args.bag.name, enabled=not args.no_progress)

            def seen(frame: BagFrame, found: Detections | None, ids) -> None:
                progress.update()
                if videos is not None and found is not None and frame.image is not None:
                    videos.write(frame.topic, frame.image, frame.encoding, found, ids)

            try:
                with removed_on_failure(args.out, args.annotate):
                    result = replay_bag(inputs, detector, args.out, options, seen)
            except BagError as e:
                raise CliError(str(e)) from e
            finally:
                progress.close()
                if videos is not None:
                    videos.close()
        finally:
            detector.close()
    finally:
        inputs.close()
    frames = sum(result.frames.values())
    print(summary(frames, result.bad, result.wall_s, result.timings, result.classes, detector.meta.names),
          file=sys.stderr)
    print(f"written: {args.out} on {sorted({d for d, _ in inputs.topics.values()})}", file=sys.stderr)
    return 0 if frames else 1
