"""Checks for numbers that come from outside (parameters, flags, YAML), with one error naming the value.

Python's and numpy's integers pass as integers, floats must be finite, bools are neither: a
``max_detections`` of 2.5, NaN or True is refused where it enters, not by a TypeError frame after frame.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int within [low, high]; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    _in_range(value, name, low, high)
    return value


def real(value: Any, name: str, low: float | None = None, high: float | None = None,
         open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite Python float within the range (bounds open or closed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    _in_range(value, name, low, high, open_low, open_high)
    return value


def _in_range(value: float, name: str, low: float | None, high: float | None, open_low: bool = False,
              open_high: bool = False) -> None:
    if (low is not None and (value <= low if open_low else value < low)) or \
            (high is not None and (value >= high if open_high else value > high)):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in {'(' if open_low else '['}{lo}, {hi}{')' if open_high else ']'}, "
                         f"got {value:g}")
