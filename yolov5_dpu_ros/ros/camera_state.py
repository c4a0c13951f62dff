"""One camera's running state — frame counts, stamp gaps, latency, stage times, depth counts and its tracker —
behind the one lock that guards it (ROS-free). The image callback, the worker delivering the camera's frames and
the diagnostics task share it; each call takes the lock for as long as it needs and no longer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.input_health import CameraCounts, StampGaps
from yolov5_dpu_ros.core.latency import LatencyWindow
from yolov5_dpu_ros.core.tracking import Tracker, TrackerConfig, TrackUpdate

# a published frame's stages, in the order it goes through them: the message to pixels, the detector's three, the
# tracker, building the Detection2DArray (field values and the message) and publishing it
STAGES = ("decode", "preprocess", "inference", "postprocess", "tracking", "message", "publish")
DEPTH_COUNTS = ("frames with depth", "detections without valid depth", "unsynchronised frames",
                "frames without transform", "bad depth images", "bad camera info")
_KEEP = object()  # no tracker change pending


@dataclass(frozen=True)
class Window:
    """One diagnostics window of a camera: totals, the window's difference, and the window's averages."""

    totals: CameraCounts
    window: CameraCounts
    seconds: float
    stage_ms: tuple[float, ...]  # mean ms of each of STAGES per published frame
    input_period: float | None
    latency: dict[str, str]
    active_tracks: int | None
    depth: dict[str, int] = field(default_factory=dict)


class CameraState:
    """Counts and tracker of one camera. ``replaced`` is the pipeline's to count and ``unseen`` the stamps', so a
    window reads both from their owners instead of keeping copies."""

    def __init__(self, tracker: TrackerConfig | None, with_depth: bool) -> None:
        self._lock = threading.Lock()
        self._counts = CameraCounts()
        self._stamps = StampGaps()
        self._latency = LatencyWindow()
        self._stage_ms = [0.0] * len(STAGES)
        self._last: tuple[CameraCounts, float | None] = (CameraCounts(), None)
        self._depth = dict.fromkeys(DEPTH_COUNTS, 0) if with_depth else {}
        self._tracker = Tracker(tracker) if tracker else None
        self._tracker_change: Any = _KEEP
        self._reset = False

    def received(self, stamp_s: float) -> None:
        """A frame reached the image callback."""
        with self._lock:
            self._counts = replace(self._counts, received=self._counts.received + 1)
            self._stamps.add(stamp_s)

    def count(self, what: str, n: int = 1) -> int:
        """Add to one of the frame counts (bad, failed, lost, discarded); returns its new total."""
        with self._lock:
            self._counts = replace(self._counts, **{what: getattr(self._counts, what) + n})
            return getattr(self._counts, what)

    def count_depth(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._depth[what] += n

    def published(self, received_s: float, stamp_s: float, published_s: float, published_wall_s: float,
                  stage_ms: tuple[float, ...]) -> None:
        """A frame's detections went out: its latency and its time in each of STAGES join the window."""
        with self._lock:
            self._counts = replace(self._counts, published=self._counts.published + 1)
            self._latency.add(received_s, stamp_s, published_s, published_wall_s)
            for i, ms in enumerate(stage_ms):
                self._stage_ms[i] += ms

    def change_tracker(self, config: TrackerConfig | None) -> None:
        """Tracking settings from a parameter update: applied before the camera's next frame, never during one."""
        with self._lock:
            self._tracker_change = config

    def reset_tracks(self) -> None:
        """Forget the tracks (deactivate): done before the next frame, so a frame still in flight finishes first."""
        with self._lock:
            self._reset = True

    def track(self, stamp_s: float, detections: Detections, low: Detections) -> TrackUpdate | None:
        """The tracker's update for one frame (None with tracking off); only the worker delivering this camera's
        frames calls it, in their order, so pending changes land between two frames."""
        with self._lock:
            change, self._tracker_change = self._tracker_change, _KEEP
            reset, self._reset = self._reset, False
            if change is not _KEEP:
                if change is None:
                    self._tracker = None
                elif self._tracker is None:
                    self._tracker = Tracker(change)
                else:
                    self._tracker.config = change
            if reset and self._tracker is not None:
                self._tracker.reset()
            tracker = self._tracker
        return None if tracker is None else tracker.update(stamp_s, detections, low)

    def window(self, now_s: float, replaced: int) -> Window:
        """Counts since the previous window and the window's averages; the next window starts now."""
        with self._lock:
            totals = replace(self._counts, replaced=replaced, unseen=self._stamps.unseen)
            (before, t0), self._last = self._last, (totals, now_s)
            window = totals - before
            published = max(window.published, 1)
            stage = tuple(ms / published for ms in self._stage_ms)
            self._stage_ms = [0.0] * len(STAGES)
            return Window(totals, window, max(now_s - t0, 1e-9) if t0 is not None else 1.0,
                          stage, self._stamps.input_period(), self._latency.take(),
                          None if self._tracker is None else self._tracker.active, dict(self._depth))
