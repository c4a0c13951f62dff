"""Overlapped detection: N workers, each with its own Detector (own runner and buffers).

On the KV260 a runner's ``execute_async`` blocks for the whole DPU run and serves one caller at a
time, so pre-processing, DPU runs and post-processing of different frames overlap only when each
worker thread owns a runner. Each source (camera) has a one-frame waiting slot: a new frame
replaces a waiting one (the newest wins) and the replaced frame is counted as dropped. A frame may
wait undecoded (``submit_lazy``): the worker that takes it decodes it, so a replaced frame costs
nothing and decoding spreads over the workers. Workers take waiting frames from the sources in turn,
so one busy camera cannot starve another. Results leave in the order each source's frames came in;
sources do not wait for each other, and ``on_result`` runs outside every lock (a worker that finishes
while another delivers that source's results leaves its result to it and goes back to work).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.detector import Detector, StageTimings
from yolov5_dpu_ros.core.postprocess import PostprocessConfig

Loader = Callable[[], "tuple[np.ndarray, str]"]

LOG = logging.getLogger(__name__)
LOG_EVERY_S = 5.0


@dataclass(frozen=True)
class Detected:
    """A frame that went through: its detections, the low-score ones for tracking (``Detector.detect_split``),
    how long each stage took, and the image as decoded."""

    detections: Detections
    low: Detections
    timings: StageTimings
    image: np.ndarray
    encoding: str
    decode_ms: float  # the message (or file) to pixels, before pre-processing


@dataclass(frozen=True)
class Failed:
    """A frame that did not: the error that stopped it (type and message); ``unreadable`` when the frame could
    not be decoded (a bad message), else the detector failed on it."""

    error: str
    unreadable: bool = False


@dataclass
class FrameResult:
    """What became of one submitted frame: ``outcome`` is Detected or Failed, never half of each."""

    seq: int
    source: Hashable
    tag: Any
    outcome: Detected | Failed


@dataclass
class _Order:
    """One source's frames between a worker taking them and their delivery, in submission order."""

    in_flight: deque[int] = field(default_factory=deque)
    done: dict[int, FrameResult] = field(default_factory=dict)
    delivering: bool = False


@dataclass
class PipelineCounts:
    """Running totals; every frame submitted is processed, failed, dropped or still in flight.

    ``callback_errors`` counts results whose ``on_result`` raised (the frame itself was processed or failed).
    """

    submitted: int = 0
    processed: int = 0
    failed: int = 0
    dropped: int = 0
    callback_errors: int = 0


class DetectionPipeline:
    """Runs frames through several Detectors at once; ``on_result`` gets each source's results in input order."""

    def __init__(self, detectors: Sequence[Detector], on_result: Callable[[FrameResult], None]) -> None:
        if not detectors:
            raise ValueError("the pipeline needs at least one worker (one Detector per worker)")
        self.detectors = tuple(detectors)
        self.counts = PipelineCounts()
        self.dropped_by_source: dict[Hashable, int] = {}
        self._on_result = on_result
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, tuple] = {}  # source → (seq, load, tag); insertion = turn order
        self._orders: dict[Hashable, _Order] = {}
        self._next_seq = 0
        self._closed = False
        self._last_callback_log = 0.0
        self._threads = [threading.Thread(target=self._work, args=(d,), name=f"detector-{i}", daemon=True)
                         for i, d in enumerate(self.detectors)]
        for t in self._threads:
            t.start()

    def submit(self, image: np.ndarray, encoding: str = "bgr8", tag: Any = None, source: Hashable = 0,
               block: bool = False) -> int:
        """Queue one decoded frame; returns its sequence number. A live camera (``block`` False) replaces this
        source's waiting frame, if any; files (``block`` True) wait for the slot instead, so no frame is dropped."""
        return self.submit_lazy(lambda: (image, encoding), tag, source, block)

    def submit_lazy(self, load: Loader, tag: Any = None, source: Hashable = 0, block: bool = False) -> int:
        """Queue one frame that the worker taking it decodes with ``load()`` → (image, encoding); a load that
        raises makes the frame a ``Failed(unreadable=True)``. Otherwise as ``submit``."""
        with self._cond:
            if block:
                self._cond.wait_for(lambda: source not in self._waiting or self._closed)
            if self._closed:
                raise RuntimeError("the pipeline is closed")
            seq = self._next_seq
            self._next_seq += 1
            self.counts.submitted += 1
            if self._waiting.pop(source, None) is not None:
                self._drop(source)
            self._waiting[source] = (seq, load, tag)
            self._cond.notify()
            return seq

    def set_config(self, config: PostprocessConfig) -> None:
        """New thresholds / class filter for every worker, from the next frame on."""
        for detector in self.detectors:
            detector.config = config

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame is waiting or in flight (for tests and orderly shutdown)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._waiting and not any(o.in_flight for o in self._orders.values()), timeout)

    def close(self) -> None:
        """Stop the workers after the frames in flight; waiting frames are counted as dropped."""
        with self._cond:
            self._closed = True
            for source in self._waiting:
                self._drop(source)
            self._waiting.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        for detector in self.detectors:
            try:
                detector.close()
            except Exception:  # releasing one runner must not keep the others
                LOG.exception("closing a detector failed")

    def _drop(self, source: Hashable) -> None:
        """Count one frame that was replaced (or never processed); call with the lock held."""
        self.counts.dropped += 1
        self.dropped_by_source[source] = self.dropped_by_source.get(source, 0) + 1

    def _take(self) -> tuple | None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._closed)
            if not self._waiting:
                return None
            source = next(iter(self._waiting))  # the longest-waiting source goes first
            seq, load, tag = self._waiting.pop(source)
            self._orders.setdefault(source, _Order()).in_flight.append(seq)
            self._cond.notify_all()  # a blocked submit may go on
            return seq, source, load, tag

    def _work(self, detector: Detector) -> None:
        while (job := self._take()) is not None:
            seq, source, load, tag = job
            self._finish(FrameResult(seq, source, tag, _run(detector, load)))

    def _deliver(self, result: FrameResult) -> None:
        """Hand one result to ``on_result``; a consumer that raises is counted and logged, never fatal."""
        try:
            self._on_result(result)
        except Exception:  # a failing consumer (a publish during shutdown, say) must not stop the workers
            with self._cond:
                self.counts.callback_errors += 1
                count = self.counts.callback_errors
            if count == 1 or time.monotonic() - self._last_callback_log > LOG_EVERY_S:
                self._last_callback_log = time.monotonic()
                LOG.exception("on_result raised for frame %d (%d so far); the pipeline goes on", result.seq, count)

    def _finish(self, result: FrameResult) -> None:
        """Record a result; deliver its source's results that are next in line, unless a worker already does."""
        with self._cond:
            order = self._orders[result.source]
            order.done[result.seq] = result
            if isinstance(result.outcome, Failed):
                self.counts.failed += 1
            else:
                self.counts.processed += 1
            if order.delivering:
                return  # that worker delivers this one too, in order
            order.delivering = True
        while True:
            with self._cond:
                ready = []
                for seq in order.in_flight:
                    if seq not in order.done:
                        break
                    ready.append(order.done.pop(seq))
                if not ready:
                    order.delivering = False
                    self._cond.notify_all()
                    return
            for r in ready:
                self._deliver(r)
            with self._cond:
                for _ in ready:
                    order.in_flight.popleft()
                self._cond.notify_all()


def _run(detector: Detector, load: Loader) -> Detected | Failed:
    """Decode, then detect; what goes wrong becomes the frame's outcome, never an exception."""
    start = time.perf_counter()
    try:
        image, encoding = load()
    except Exception as e:  # a message that cannot become an image: a bad frame, counted as such
        return Failed(f"{type(e).__name__}: {e}", unreadable=True)
    decode_ms = (time.perf_counter() - start) * 1e3
    try:
        detections, low, timings = detector.detect_split(image, encoding)
    except Exception as e:  # a bad frame or a backend fault: counted and reported, never fatal
        return Failed(f"{type(e).__name__}: {e}")
    return Detected(detections, low, timings, image, encoding, decode_ms)
