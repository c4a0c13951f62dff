"""Power-of-two fix points for the raw heads, calibrated over images like the DPU quantizer does.

Fix point f means float = int8 * 2**-f. Two rules: ``maxabs`` takes the largest f that does not clip
the largest magnitude seen; ``mse`` (default, as vai_q_pytorch does for activations) tries that f
and the next two finer ones and keeps the one with the least mean squared quantization error, so
rare large negative objectness logits (sigmoid ≈ 0 anyway) may clip in exchange for finer steps.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

from yolov5_dpu_ros.core.model_meta import FIX_POINT_RANGE
from yolov5_dpu_ros.core.preprocess import Preprocessor

RULES = ("mse", "maxabs")


def maxabs_fix_point(max_abs: float) -> int:
    """Largest fix point f with max_abs * 2**f <= 127."""
    if max_abs <= 0:
        return FIX_POINT_RANGE[-1]
    return int(np.clip(math.floor(math.log2(127.0 / max_abs)), FIX_POINT_RANGE[0], FIX_POINT_RANGE[-1]))


def quantization_mse(values: np.ndarray, fix_point: int) -> float:
    """Mean squared error of int8 round-and-clip quantization at one fix point."""
    scale = 2.0**fix_point
    q = np.clip(np.rint(values * scale), -128, 127) / scale
    return float(np.mean((q - values) ** 2))


def choose_fix_point(values: np.ndarray, rule: str = "mse") -> int:
    """Fix point for one tensor from calibration values, by the named rule."""
    if rule not in RULES:
        raise ValueError(f"unknown calibration rule '{rule}': use one of {list(RULES)}")
    base = maxabs_fix_point(float(np.abs(values).max(initial=0.0)))
    if rule == "maxabs":
        return base
    candidates = [f for f in (base, base + 1, base + 2) if f in FIX_POINT_RANGE]
    return min(candidates, key=lambda f: quantization_mse(values, f))


def float_input(pixels_rgb_u8: np.ndarray) -> np.ndarray:
    """The float model input for one uint8 RGB letterbox (NHWC): NCHW, /255, as YOLOv5 trains."""
    return np.ascontiguousarray(pixels_rgb_u8.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def calibrate_heads(run_float: Callable[[np.ndarray], Sequence[np.ndarray]], images: Iterable[np.ndarray],
                    input_hw: tuple[int, int], rule: str = "mse", sample_per_image: int = 20000,
                    seed: int = 0) -> list[int]:
    """Fix point of each raw head (model output order) over BGR images, through the node's pre-processing."""
    preprocess = Preprocessor(input_hw, None)
    rng = np.random.default_rng(seed)
    samples: list[list[np.ndarray]] = []
    for image in images:
        preprocess(image, "bgr8")
        heads = run_float(float_input(preprocess.buffer))
        if not samples:
            samples = [[] for _ in heads]
        for acc, head in zip(samples, heads):
            flat = np.asarray(head, dtype=np.float32).ravel()
            keep = rng.choice(flat.size, size=min(sample_per_image, flat.size), replace=False)
            acc.append(flat[keep])
            acc.append(np.array([flat.min(), flat.max()], np.float32))
    if not samples:
        raise ValueError("no calibration images: give a folder with at least one readable image")
    return [choose_fix_point(np.concatenate(acc), rule) for acc in samples]
