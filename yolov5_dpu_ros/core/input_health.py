"""Where a camera's frames went, without ROS: header-stamp gaps, the health verdict, the QoS choice.

A frame the middleware never delivers is invisible to a subscriber: a best-effort reader loses a large
image when one fragment is late (the middleware reports that as ``message_lost``), a reliable depth-1
reader silently replaces samples in its history (nobody reports that). The header stamps tell both:
the camera's period is the typical short interval between stamps, and a longer gap holds the frames
that never reached the node.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

import numpy as np

WINDOW = 120  # stamp intervals kept for the period estimates
WARN_FRACTION = 0.10  # diagnostics go WARN when more of the camera's frames than this are not processed


class StampGaps:
    """Header stamps of the frames that arrived → input period and frames that never arrived."""

    def __init__(self, window: int = WINDOW) -> None:
        self._intervals: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self.unseen = 0  # estimated camera frames that never reached the node

    def add(self, stamp_s: float) -> None:
        """One received frame's header stamp (seconds)."""
        last, self._last = self._last, stamp_s
        if last is None or not stamp_s > last:  # first frame, a repeated stamp, or time going back (bag loop)
            return
        interval = stamp_s - last
        period = self.camera_period()
        self._intervals.append(interval)
        if period:
            self.unseen += max(0, round(interval / period) - 1)

    def input_period(self) -> float | None:
        """Median interval between the stamps of the frames that arrived (seconds)."""
        return float(np.median(self._intervals)) if self._intervals else None

    def camera_period(self) -> float | None:
        """The camera's own period: gaps only lengthen intervals, so the shortest quarter of the intervals
        gives a first guess, and the median of the intervals within 1.5 times of it the estimate (needs a
        few intervals first)."""
        if len(self._intervals) < 4:
            return None
        intervals = np.fromiter(self._intervals, float)
        guess = np.median(np.sort(intervals)[: max(2, len(intervals) // 4)])
        return float(np.median(intervals[intervals < 1.5 * guess]))


@dataclass(frozen=True)
class CameraCounts:
    """Cumulative counts of one camera's frames."""

    received: int = 0  # reached the node's callback
    published: int = 0  # detections published
    bad: int = 0  # refused by the conversion (encoding, size, truncated data)
    failed: int = 0  # the detector raised
    replaced: int = 0  # replaced in the one-frame queue by a newer frame (the detector is slower)
    lost: int = 0  # the middleware's message_lost events
    unseen: int = 0  # never reached the node, estimated from header-stamp gaps
    discarded: int = 0  # finished after deactivate stopped the outputs: not published

    def __sub__(self, other: CameraCounts) -> CameraCounts:
        return CameraCounts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def health(window: CameraCounts, threshold: float = WARN_FRACTION) -> tuple[bool, str]:
    """(OK?, message) for the frames of one diagnostics window: WARN when more than ``threshold`` of the
    camera's frames (those that arrived plus those that never did) were not processed, saying why."""
    never = max(window.lost, window.unseen)  # the same frames, counted by the middleware or by the stamps
    camera = window.received + never
    if camera == 0:
        return True, "no input"
    missed = max(0, camera - window.published)
    if missed <= threshold * camera:
        return True, "ok"
    reasons = [(never, "never reached the node (transport: large images need a big socket receive buffer: "
                       "sysctl net.core.rmem_max and the package's middleware config, doc/cameras.md)"),
               (window.replaced, "replaced in the queue (the detector is slower than the camera)"),
               (window.bad, "bad frames"), (window.failed, "failed in the detector"),
               (window.discarded, "finished after deactivate")]
    why = ", ".join(f"{n} {text}" for n, text in sorted(reasons, key=lambda r: -r[0]) if n > 0)
    return False, f"{100 * missed / camera:.0f} % of the camera's frames not processed: {why or 'in flight'}"


def choose_reliability(publishers: list[str]) -> str:
    """The input reliability that matches the publishers, as rosbag2 chooses: reliable only when every
    publisher is reliable (a reliable reader never matches a best-effort writer); best effort otherwise,
    and while nobody publishes (it also receives from reliable writers)."""
    return "reliable" if publishers and all(p == "reliable" for p in publishers) else "best_effort"
