"""What the ``yolov5-dpu`` commands share: their error type, model options, the detector, output checks,
the closing summary. Lives below the commands so none of them imports another."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from yolov5_dpu_ros.backends import BACKENDS, BackendSpec, DpuSpec, OnnxSpec
from yolov5_dpu_ros.core.detector import STAGES, Detector, StageTimings
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.core.tracking import TrackerConfig
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.dpu.stacks import AUTO
from yolov5_dpu_ros.dpu.stacks import CHOICES as DPU_RUNTIMES
from yolov5_dpu_ros.dpu.verdict import parse_fingerprint
from yolov5_dpu_ros.replay.one_bag import BagOptions


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def package_version() -> str:
    try:
        return importlib.metadata.version("yolov5_dpu_ros")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def add_model_arguments(parser: argparse.ArgumentParser, workers: bool = False) -> None:
    """Model and selection options shared by the commands that run the detector (``--workers`` where the
    command runs frames in parallel)."""
    g = parser.add_argument_group("model")
    g.add_argument("--backend", choices=BACKENDS, default="onnx", help="inference backend (default: onnx)")
    g.add_argument("--model", type=Path, default=DEMO_ONNX,
                   help="model file: raw-head ONNX for onnx, xmodel for dpu (default: the demo model)")
    g.add_argument("--model-meta", type=Path, default=DEMO_META,
                   help="metadata YAML beside the model (default: the demo model's)")
    g.add_argument("--bit", type=Path, help="dpu: overlay .bit (.hwh and .xclbin beside it; default: pynq_dpu's)")
    g.add_argument("--dpu-runtime", choices=DPU_RUNTIMES, default=AUTO,
                   help="dpu: the board's DPU stack, 2.5 (pynq-dpu 2.5.1) or 3.5 (pynq-dpu 3.5.0); default: read "
                        "from the installed pynq-dpu and VART")
    g.add_argument("--dpu-fingerprint", default="",
                   help="dpu: the overlay DPU's fingerprint (default: the stack's stock KV260 overlay)")
    g.add_argument("--allow-other-compiler", action="store_true",
                   help="dpu: run a model of another stack's Vitis AI whose fingerprint matches (risky, see "
                        "doc/troubleshooting.md)")
    if workers:
        g.add_argument("--workers", type=int, default=1, help="worker threads, each with its own runner (default 1)")
    g.add_argument("--threads", type=int, default=0,
                   help="onnx: threads per worker, 0 = the CPU cores divided among the workers")
    g.add_argument("--onnx-spin", action="store_true",
                   help="onnx: let idle ONNX Runtime threads spin-wait (lower latency, more CPU)")
    s = parser.add_argument_group("selection")
    s.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    s.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    s.add_argument("--max-det", type=int, default=300, help="most detections per frame (default 300)")
    s.add_argument("--classes", type=int, nargs="+", help="keep only these class indices")
    s.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """``--track`` and the tracker's knobs (the node's parameters of the same names)."""
    g = parser.add_argument_group("tracking")
    g.add_argument("--track", action="store_true", help="give each detection a track ID (ByteTrack-style, per input)")
    g.add_argument("--track-low-threshold", type=float, default=0.1,
                   help="detections from this score up to --conf keep tracks alive (default 0.1)")
    g.add_argument("--track-lifetime", type=float, default=1.0, help="seconds a track lives unmatched (default 1)")
    g.add_argument("--track-match-iou", type=float, default=0.2, help="least IoU to continue a track (default 0.2)")


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """What the bag commands read and write besides the model: topics, storage, class ids, RGB-D."""
    parser.add_argument("--topics", nargs="+", help="image topics to read (default: every image topic)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output storage")
    parser.add_argument("--class-id-format", choices=("name", "index"), default="name")
    d = parser.add_argument_group("RGB-D (one camera)")
    d.add_argument("--depth-topic", help="depth Image aligned to the colour topic: also write detections_3d")
    d.add_argument("--camera-info-topic", help="CameraInfo of the colour image (default: camera_info beside it)")
    d.add_argument("--depth-sync-slop", type=float, default=0.05,
                   help="most seconds between a colour and a depth stamp (default 0.05)")
    d.add_argument("--depth-scale", type=float, help="metres per depth unit (default: by encoding)")


def bag_options(args: argparse.Namespace) -> BagOptions:
    """The bag options the command line gives."""
    return BagOptions(tuple(args.topics) if args.topics else None, args.storage, args.class_id_format,
                      tracker_config(args), args.depth_topic, args.camera_info_topic, args.depth_sync_slop,
                      args.depth_scale)


def tracker_config(args: argparse.Namespace) -> TrackerConfig | None:
    """The tracker's settings the options give, or None without ``--track``; problems become a CliError."""
    if not getattr(args, "track", False):
        return None
    try:
        return TrackerConfig(lifetime_s=args.track_lifetime, match_iou=args.track_match_iou)
    except ValueError as e:
        raise CliError(str(e)) from e


def backend_spec(args: argparse.Namespace) -> BackendSpec:
    """The backend and its options as the command line gives them."""
    if args.backend == "dpu":
        return DpuSpec(args.model, args.bit, parse_fingerprint(args.dpu_fingerprint), args.allow_other_compiler,
                       args.dpu_runtime)
    return OnnxSpec(args.model, args.threads, args.onnx_spin)


def build_workers(args: argparse.Namespace) -> list[Detector]:
    """One Detector per worker (``--workers``, 1 where the command has none) on the model the options
    describe; every problem becomes a CliError."""
    try:
        return build_detectors(backend_spec(args), args.model_meta, getattr(args, "workers", 1),
                               postprocess_config(args))
    except ValueError as e:
        raise CliError(str(e)) from e


def postprocess_config(args: argparse.Namespace) -> PostprocessConfig:
    """The selection the options give (ValueError names a bad one)."""
    return PostprocessConfig(args.conf, args.iou, args.max_det, None if args.classes is None else tuple(args.classes),
                             args.agnostic,
                             low_threshold=args.track_low_threshold if getattr(args, "track", False) else None)


def check_output_file(path: Path, flag: str, made: Path | None = None) -> None:
    """An output file can be written: its folder exists (or is ``made``, a folder this run creates) and it
    is not a folder itself."""
    if path.is_dir():
        raise CliError(f"{flag} {path} is a folder: give a file name")
    if not path.parent.is_dir() and not (made is not None and path.parent.resolve() == made.resolve()):
        raise CliError(f"{flag} {path}: folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")


def check_output_folder(path: Path, flag: str, new: bool = False) -> None:
    """An output folder can be made: no file of that name (and, with ``new``, nothing of that name at all)."""
    if new and path.exists():
        raise CliError(f"{flag} {path} exists: give a new name or remove it first")
    if path.exists() and not path.is_dir():
        raise CliError(f"{flag} {path} is a file: give a folder name")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise CliError(f"{flag} {path}: folder {parent} does not exist; create it first (mkdir -p {parent})")


@contextmanager
def removed_on_failure(*paths: Path | None) -> Iterator[None]:
    """Remove outputs that did not exist before if the block fails, so the same command can run again."""
    fresh = [p for p in paths if p is not None and not p.exists()]
    try:
        yield
    except BaseException:
        for p in fresh:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        raise


def summary(frames: int, skipped: int, wall_s: float, timings: list[StageTimings], classes: Counter,
            names) -> str:
    """The closing summary: frames, fps, median per-stage ms, detections per class."""
    lines = [f"frames: {frames} processed, {skipped} unreadable (skipped); "
             f"{frames / max(wall_s, 1e-9):.1f} fps over {wall_s:.2f} s"]
    if timings:
        med = {k: float(np.median([getattr(t, f"{k}_ms") for t in timings])) for k in STAGES}
        lines.append("median ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
                     + f", total {sum(med.values()):.2f}")
    per_class = ", ".join(f"{names[c]} {n}" for c, n in sorted(classes.items())) or "none"
    lines.append(f"detections: {sum(classes.values())} ({per_class})")
    return "\n".join(lines)
