"""Where a benchmark's table goes: the terminal, and a results file when asked."""

from __future__ import annotations

from pathlib import Path


def emit(text: str, markdown: Path | None) -> int:
    """Print the table and, with ``markdown``, write it there; the exit status of the benchmark."""
    print(text)
    if markdown:
        markdown.write_text(text + "\n")
    return 0
