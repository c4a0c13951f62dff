"""Where a benchmark's table goes: the terminal, and a results file when asked."""

from __future__ import annotations

import argparse
from pathlib import Path


def timing_arguments(doc: str) -> argparse.Namespace:
    """The options of the timing benchmarks: runs per cell and where to write the table."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=100,
                        help="timed runs per cell, in four rounds (the lowest round median reported)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    return parser.parse_args()


def emit(text: str, markdown: Path | None) -> int:
    """Print the table and, with ``markdown``, write it there; the exit status of the benchmark."""
    print(text)
    if markdown:
        markdown.write_text(text + "\n")
    return 0
