"""Latency of the node's output, per camera over a diagnostics window: from the image callback to the
Detection2DArray publish (the node's own clock), and from the image's header stamp to the publish (the camera's
clock: meaningful when the clocks agree)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

LATENCY = "latency ms (callback to publish)"
LATENCY_MAX = "latency max ms (callback to publish)"
AGE = "age ms (stamp to publish)"


def stamp_seconds(sec: int, nanosec: int) -> float:
    """A builtin_interfaces/Time as seconds."""
    return sec + nanosec * 1e-9


@dataclass
class LatencyWindow:
    """Per-frame latencies since the last ``take``; not thread-safe (the node holds its lock)."""

    latency_ms: list[float] = field(default_factory=list)
    age_ms: list[float] = field(default_factory=list)

    def add(self, received_s: float, stamp_s: float, published_s: float, published_wall_s: float) -> None:
        """One published frame: ``received_s`` and ``published_s`` on a monotonic clock, ``stamp_s`` and
        ``published_wall_s`` on the clock the camera stamps with."""
        self.latency_ms.append((published_s - received_s) * 1e3)
        self.age_ms.append((published_wall_s - stamp_s) * 1e3)

    def take(self) -> dict[str, str]:
        """The window's median and max latency and median age, as diagnostics values ('-' without frames);
        the window starts again."""
        values = {LATENCY: _ms(self.latency_ms, statistics.median), LATENCY_MAX: _ms(self.latency_ms, max),
                  AGE: _ms(self.age_ms, statistics.median)}
        self.latency_ms, self.age_ms = [], []
        return values


def _ms(values: list[float], pick) -> str:
    return f"{pick(values):.1f}" if values and all(math.isfinite(v) for v in values) else "-"
