"""Colour frames waiting a bounded time for the depth of their stamp: a frame's 3D output is decided once the
depth stream has passed its stamp (no nearer depth can come) or its wait is over, whichever is first.

Depth and colour of one RGB-D camera come over separate topics: the depth of a colour frame often arrives a few
milliseconds after the frame's detections are ready. Pairing only with depth already received loses those
frames' 3D boxes; waiting for each frame's depth up to ``wait_s`` pairs them as a whole-bag pairing does.
Not thread-safe (the caller locks).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from yolov5_dpu_ros.core.depth import StampPairing


@dataclass(frozen=True)
class Decided:
    """A waiting frame's outcome: its payload and the paired depth item, or None (no depth within the slop)."""

    payload: Any
    depth: Any | None


class DepthWait:
    """Depth items by stamp, and colour frames waiting for theirs, in arrival order."""

    def __init__(self, slop: float, wait_s: float, keep: int = 16) -> None:
        self._depth = StampPairing(slop, keep)
        self.wait_s = wait_s
        self._latest: float | None = None  # the newest depth stamp seen
        self._frames: deque[tuple[float, float, Any]] = deque()  # (stamp, deadline, payload)

    @property
    def waiting(self) -> int:
        return len(self._frames)

    def add_depth(self, stamp: float, item: Any, now: float) -> list[Decided]:
        """A depth item (depth image with its camera info); returns the frames it decides."""
        self._depth.add(stamp, item)
        self._latest = stamp if self._latest is None else max(self._latest, stamp)
        return self.decide(now)

    def add_frame(self, stamp: float, payload: Any, now: float) -> list[Decided]:
        """A colour frame ready for its 3D output; returns the frames decided now (this one among them when its
        depth is already here)."""
        self._frames.append((stamp, now + self.wait_s, payload))
        return self.decide(now)

    def decide(self, now: float) -> list[Decided]:
        """The waiting frames whose depth stream has passed their stamp or whose wait is over, oldest first."""
        decided = []
        kept: deque[tuple[float, float, Any]] = deque()
        for stamp, deadline, payload in self._frames:
            if (self._latest is not None and self._latest >= stamp) or now >= deadline:
                decided.append(Decided(payload, self._depth.nearest(stamp)))
            else:
                kept.append((stamp, deadline, payload))
        self._frames = kept
        return decided

    def clear(self) -> None:
        """Forget the depth items and the waiting frames (decide them first to count them)."""
        self._frames.clear()
        self._depth.clear()
        self._latest = None
