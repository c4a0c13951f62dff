"""One tensor of a model as the backends and the xmodel reader describe it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSpec:
    """One int8 tensor: NHWC shape and fix point (float = int8 * 2**-fix_point), always read from the model
    (the xmodel's tensor attribute, or the metadata for an ONNX); it can be negative."""

    name: str
    shape: tuple[int, ...]
    fix_point: int
    dtype: str = "xint8"
