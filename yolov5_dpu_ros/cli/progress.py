"""A small progress bar on stderr: redrawn in place on a terminal, a line every few seconds in logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts done items of a known (or unknown, total=0) total and shows the rate; ``detail`` (text the caller
    keeps current) follows the bar."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = self._stream.isatty()
        self._start = self._last = time.perf_counter()
        self.detail = ""

    def update(self, n: int = 1) -> None:
        self.done += n
        self.refresh()

    def refresh(self) -> None:
        """Redraw if it is time (a tenth of a second on a terminal, five seconds in a log)."""
        now = time.perf_counter()
        if self._enabled and now - self._last >= (0.1 if self._tty else 5.0):
            self._last = now
            self._draw(now)

    def close(self) -> None:
        if self._enabled:
            self._draw(time.perf_counter())
            if self._tty:
                self._stream.write("\n")

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:
            filled = int(30 * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}"
        line = f"{self.label} {bar} {rate:.1f}/s" + (f" {self.detail}" if self.detail else "")
        self._stream.write(("\r" + line) if self._tty else (line + "\n"))
        self._stream.flush()
