"""One bag of a fleet run: replayed under a temporary name, renamed when complete, and described by the one line
it adds to the run's ``summary.jsonl``."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from yolov5_dpu_ros.backends import BackendSpec
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.core.workers import build_detectors
from yolov5_dpu_ros.replay.bag_io import BagError, BagFrame
from yolov5_dpu_ros.replay.bag_set import BagInput
from yolov5_dpu_ros.replay.ledger import RunKey
from yolov5_dpu_ros.replay.one_bag import BagInputs, BagOptions, replay_bag

PROGRESS_EVERY_S = 0.5
KEPT_MESSAGES = 5  # per-frame problems a failed or partly unreadable bag's line keeps


@dataclass(frozen=True)
class ModelSpec:
    """The model a worker loads once: backend, metadata and selection (picklable, so Ray can ship it)."""

    backend: BackendSpec
    meta: Path
    config: PostprocessConfig

    def build(self) -> Detector:
        return build_detectors(self.backend, self.meta, 1, self.config)[0]


@dataclass(frozen=True)
class BagJob:
    """A bag to replay into ``output``, with the size and fingerprint its summary line records."""

    input: BagInput
    output: Path
    size: int
    fingerprint: str

    @property
    def partial(self) -> Path:
        """Where the output is written until it is complete."""
        return self.output.with_name(f".{self.output.name}.partial")


def remove(path: Path) -> None:
    """Remove an output or a partial one, whatever it is."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def base_record(job: BagJob, key: RunKey) -> dict:
    """The summary line's fields every outcome has (``worker``: the host and process that ran it)."""
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "input": str(job.input.path),
            "rel": str(job.input.rel), "output": str(job.output), "size": job.size,
            "fingerprint": job.fingerprint, "model": key.model, "options": key.options, "version": key.version}


INPUT, WORKER = "input", "worker"  # what failed: the bag (the same again on a rerun), or the process running it


def failed_record(job: BagJob, key: RunKey, reason: str, messages: list[str] | None = None,
                  failure: str = INPUT) -> dict:
    """The line of a bag that gave no output, with why (one line)."""
    return {**base_record(job, key), "status": "failed", "failure": failure, "reason": " ".join(reason.split()),
            "frames": {}, "detections": {}, "unreadable": 0, "fps": 0.0, "seconds": 0.0, "messages": messages or []}


def run_job(job: BagJob, detector: Detector, options: BagOptions, key: RunKey,
            on_frames: Callable[[int], None] = lambda n: None) -> dict:
    """Replay one bag from its start: a partial output an earlier attempt left is removed first, the new one is
    renamed into place only when complete, and nothing is left behind when it fails or is interrupted."""
    remove(job.partial)
    remove(job.output)  # an output without its ok line was never finished (or --force redoes it)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []  # the first KEPT_MESSAGES per-frame problems

    def note(line: str) -> None:
        if len(messages) < KEPT_MESSAGES:
            messages.append(line)

    start = time.perf_counter()
    try:
        inputs = BagInputs(job.input.path, options)
    except BagError as e:
        return failed_record(job, key, str(e))
    pending, last = 0, time.perf_counter()

    def seen(frame: BagFrame, found: Detections | None, ids) -> None:
        nonlocal pending, last
        pending += 1
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            on_frames(pending)
            pending, last = 0, time.perf_counter()

    try:
        result = replay_bag(inputs, detector, job.partial, options, seen, note)
    except BaseException as e:
        remove(job.partial)
        if not isinstance(e, Exception):
            raise  # interrupted: nothing half-written stays
        return failed_record(job, key, f"{type(e).__name__}: {e}", messages)
    finally:
        inputs.close()
        on_frames(pending)
    frames = sum(result.frames.values())
    if not frames:
        remove(job.partial)
        return failed_record(job, key, f"no readable frame ({result.bad} unreadable)", messages)
    os.replace(job.partial, job.output)
    seconds = time.perf_counter() - start
    names = detector.meta.names
    return {**base_record(job, key), "status": "ok", "frames": dict(result.frames),
            "detections": {names[c]: n for c, n in sorted(result.classes.items())}, "unreadable": result.bad,
            "fps": round(frames / max(result.wall_s, 1e-9), 2), "seconds": round(seconds, 3),
            "messages": messages}
