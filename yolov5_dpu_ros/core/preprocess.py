"""Pre-processing: a camera image (8-bit BGR, RGB, mono, BGRA, RGBA, YUV 4:2:2, Bayer) → letterboxed image
in the model family's contract → int8 NHWC model input, in place.

Each family was trained with its own contract (``families.InputContract``): YOLOv5 RGB, ``letterbox(auto=False,
color=114)`` centred with YOLOv5's rounding, /255; YOLOv3 as DPU-PYNQ's notebook, RGB, pad 128 centred
with integer division, size truncated, /255; YOLOX BGR, 0-255, pad 114 at the bottom/right. A
fixed-size accelerator input needs the full size, not a minimum rectangle. Quantization is
``clip(round(pixel * scale * 2**fix_point), -128, 127)`` as a 256-entry table, applied exactly (VART's own float path
truncates and never clamps) by the quickest way that reproduces the table for every pixel value (each checked once
through the call the frames take): a rounded halving of every byte (``shifted``: the table of every model here)
where the image's rows fill the buffer's rows, else OpenCV's arithmetic or a table lookup, whichever is faster on
the machine (x86: the arithmetic; the A53, where OpenCV's multiply has no NEON path: the lookup).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from yolov5_dpu_ros.core.families import FAMILIES, InputContract

YOLOV5 = FAMILIES["yolov5"].contract


@dataclass(frozen=True)
class PixelFormat:
    """An 8-bit pixel layout pre-processing reads: channels and OpenCV's conversions to RGB and BGR.

    ``mosaic`` layouts (Bayer, packed YUV 4:2:2) are converted before resizing, since a resize would
    mix their samples; the others are resized first when that is the smaller image.
    """

    channels: int
    to_rgb: int | None  # None: already RGB
    to_bgr: int | None  # None: already BGR
    mosaic: bool = False


# pre-processing encodings; the ROS encodings map onto these (conversions.ROS_ENCODINGS)
ENCODINGS: dict[str, PixelFormat] = {
    "bgr8": PixelFormat(3, cv2.COLOR_BGR2RGB, None),
    "rgb8": PixelFormat(3, None, cv2.COLOR_RGB2BGR),
    "mono8": PixelFormat(1, cv2.COLOR_GRAY2RGB, cv2.COLOR_GRAY2BGR),
    "bgra8": PixelFormat(4, cv2.COLOR_BGRA2RGB, cv2.COLOR_BGRA2BGR),
    "rgba8": PixelFormat(4, cv2.COLOR_RGBA2RGB, cv2.COLOR_RGBA2BGR),
    # cv_bridge's codes (vision_opencv humble): OpenCV names Bayer patterns from the second row
    "yuv422": PixelFormat(2, cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2BGR_UYVY, True),
    "yuv422_yuy2": PixelFormat(2, cv2.COLOR_YUV2RGB_YUY2, cv2.COLOR_YUV2BGR_YUY2, True),
    "bayer_rggb8": PixelFormat(1, cv2.COLOR_BayerBG2RGB, cv2.COLOR_BayerBG2BGR, True),
    "bayer_bggr8": PixelFormat(1, cv2.COLOR_BayerRG2RGB, cv2.COLOR_BayerRG2BGR, True),
    "bayer_gbrg8": PixelFormat(1, cv2.COLOR_BayerGR2RGB, cv2.COLOR_BayerGR2BGR, True),
    "bayer_grbg8": PixelFormat(1, cv2.COLOR_BayerGB2RGB, cv2.COLOR_BayerGB2BGR, True),
}


@dataclass(frozen=True)
class Letterbox:
    """Where a source image of ``src_hw`` landed inside the model input: resized to ``resized_hw`` at ``top``,
    ``left``, scaled by ``gain``."""

    src_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int
    gain: float

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Map model-input xyxy boxes back to source pixels, clipped to the source image."""
        h, w = self.src_hw
        sx, sy = np.float32(w / self.resized_hw[1]), np.float32(h / self.resized_hw[0])
        out = np.subtract(xyxy, np.array([self.left, self.top] * 2, np.float32), dtype=np.float32)
        out *= np.array([sx, sy, sx, sy], np.float32)
        np.maximum(out, 0, out=out)
        return np.minimum(out, np.array([w, h, w, h], np.float32), out=out)


def letterbox_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int],
                       contract: InputContract = YOLOV5) -> Letterbox:
    """The family's letterbox arithmetic: scale to fit (up or down), place, pad the rest."""
    h, w = src_hw
    gain = min(dst_hw[0] / h, dst_hw[1] / w)
    if contract.truncate:
        new_w, new_h = max(1, int(w * gain)), max(1, int(h * gain))
    else:
        new_w, new_h = max(1, int(round(w * gain))), max(1, int(round(h * gain)))
    if not contract.centred:
        top = left = 0
    elif contract.truncate:
        top, left = (dst_hw[0] - new_h) // 2, (dst_hw[1] - new_w) // 2
    else:
        left = int(round((dst_hw[1] - new_w) / 2 - 0.1))
        top = int(round((dst_hw[0] - new_h) / 2 - 0.1))
    return Letterbox((h, w), (new_h, new_w), top, left, gain)


def quantization_table(fix_point: int, scale: float = 1 / 255) -> np.ndarray:
    """uint8 → int8 input quantization as a 256-entry table (int8 bit patterns stored as uint8), rounded as the
    quantizer that calibrated the model rounded its input: vai_q_pytorch's default config quantizes the ``input``
    tensor with ``std_round`` (C++ ``std::round``: half away from zero), then clips to int8. (``np.round`` rounds
    half to even: with scale 1 and fix point -1, YOLOX's, every pixel of the form 4k + 1 would land one step low.)"""
    x = np.arange(256) * scale * 2.0**fix_point
    q = np.clip(np.copysign(np.floor(np.abs(x) + 0.5), x), -128, 127)
    return q.astype(np.int8).view(np.uint8)


def _scaled(pixels: np.ndarray, gain: float, rows: np.ndarray | None = None) -> None:
    """int8 saturate(round(pixel * gain)) into ``rows`` (uint8 memory; in place without), OpenCV's vectorised
    arithmetic (several times a table lookup's speed per byte on x86)."""
    cv2.multiply(pixels, 1.0, dst=(pixels if rows is None else rows).view(np.int8), scale=gain, dtype=cv2.CV_8S)


WORD = np.dtype(np.uint64)  # the byte shifts run on 8 bytes at a time (numpy has no vectorised uint8 shift)


def _shifted(pixels: np.ndarray, rows: np.ndarray, words: np.ndarray, shift: int) -> None:
    """``((pixel >> shift) + 1) >> 1`` of every byte into ``rows`` (2-D uint8, contiguous; ``words`` the same memory
    as uint64): a right shift rounded half up, 127 for 255 at ``shift`` 0 (OpenCV's add saturates at 255). Each
    word shift is masked back to the byte it came from."""
    if shift == 0:
        cv2.add(pixels, 1, dst=rows)
    else:
        if pixels is not rows:
            np.copyto(rows, pixels)
        np.right_shift(words, shift, out=words)
        cv2.bitwise_and(rows, 0xFF >> shift, dst=rows)  # type: ignore[call-overload]  # a scalar (stubs: arrays)
        cv2.add(rows, 1, dst=rows)
    np.right_shift(words, 1, out=words)
    cv2.bitwise_and(rows, 0x7F, dst=rows)  # type: ignore[call-overload]


def as_words(rows: np.ndarray) -> np.ndarray | None:
    """``rows`` (uint8) as uint64 words of the same memory, or None where they do not make whole aligned words."""
    if not rows.flags.c_contiguous or rows.nbytes % WORD.itemsize or rows.ctypes.data % WORD.alignment:
        return None
    return rows.reshape(-1).view(WORD)


def exact_shift(table: np.ndarray) -> int | None:
    """The shift whose rounded halving (``_shifted``) gives the quantizer's table for every pixel value, checked
    through that very call; None where none does. Scale 1/255 at fix point 7 (YOLOv5, YOLOv3, YOLOv8 here) and
    YOLOX's scale 1 at fix point -1 both take shift 0: ``x * 128 / 255`` is never half an integer, and YOLOX's halves
    round away from zero, which is up for pixels."""
    values = np.tile(np.arange(256, dtype=np.uint8), (1, WORD.itemsize))
    for shift in range(8):
        rows = np.empty_like(values)
        _shifted(values, rows, rows.reshape(-1).view(WORD), shift)
        if np.array_equal(rows[0, :256], table):
            return shift
    return None


def exact_gain(table: np.ndarray, gain: float) -> float | None:
    """``gain`` when OpenCV's arithmetic (which rounds ties to even, in float32) gives the quantizer's table for
    every pixel value, checked once through the very call the frames take; None where it does not (ties, as with
    YOLOX's fix point -1), and the table lookup is used."""
    values = np.arange(256, dtype=np.uint8)
    long_row = np.tile(values, (1, 8))  # every value in OpenCV's vectorised loop
    one_a_row = np.repeat(values[:, None], 2, axis=1)[:, :1]  # rows of one pixel: every value in its scalar tail
    _scaled(long_row, gain)
    _scaled(one_a_row, gain)
    return gain if np.array_equal(long_row[0], np.tile(table, 8)) and np.array_equal(one_a_row[:, 0], table) else None


QUANTIZERS = ("auto", "shifted", "arithmetic", "lookup")


def fastest(runs: dict[str, Callable[[], object]], repeats: int = 5) -> str:
    """The name of the quickest call, by each one's best of ``repeats`` timed runs (the first runs warm up)."""
    best = {}
    for name, run in runs.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    return min(best, key=best.__getitem__)


def arithmetic_is_faster(table: np.ndarray, gain: float, row_bytes: int) -> bool:
    """Whether OpenCV's arithmetic beats the table lookup on this machine, timed once on 32 rows of the input: on
    x86 it is up to twice as fast; OpenCV's aarch64 builds run this multiply without NEON, at about three times the
    lookup's instructions per byte (counted under qemu-aarch64: bench/RESULTS_BOARD.md). Either gives the same
    bytes, so the choice only decides the speed."""
    rows = np.tile(np.arange(256, dtype=np.uint8), (32, row_bytes // 256 + 1))[:, :row_bytes]
    return fastest({"arithmetic": lambda: _scaled(rows, gain),
                    "lookup": lambda: cv2.LUT(rows, table, dst=rows)}) == "arithmetic"


def check_image(image: np.ndarray, encoding: str) -> np.ndarray:
    """Validate an image array for an encoding; returns it as (H, W) or (H, W, C) uint8."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding '{encoding}': use one of {sorted(ENCODINGS)}")
    channels = ENCODINGS[encoding].channels
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a uint8 numpy array, got {kind}: convert to 8-bit first")
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected = (channels,) if channels > 1 else ()
    if image.ndim != 2 + bool(expected) or image.shape[2:] != expected:
        want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"a {encoding} image must have shape {want}, got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}: the source sent no pixels")
    if ENCODINGS[encoding].mosaic and (image.shape[0] < 2 or image.shape[1] < 2 or image.shape[1] % 2):
        raise ValueError(f"a {encoding} image needs an even width and at least 2x2 pixels, got "
                         f"{image.shape[1]}x{image.shape[0]}")
    return image


class Preprocessor:
    """Letterboxes, converts to the family's channel order and quantizes into one preallocated NHWC buffer.

    With ``fix_point=None`` the buffer holds the uint8 letterbox (for calibration and checks). ``quantizer``:
    "shifted" where it is exact and the image fills whole rows of the buffer (else the lookup), "arithmetic" where it
    is exact (else the lookup), "lookup", or "auto": "shifted" where it can, else the faster of the other two on this
    machine. Scratch space is reallocated only when the source size changes, never per frame.
    """

    def __init__(self, input_hw: tuple[int, int], fix_point: int | None, contract: InputContract = YOLOV5,
                 quantizer: str = "auto") -> None:
        if quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {list(QUANTIZERS)}, got {quantizer!r}")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.contract = contract
        dtype = np.uint8 if fix_point is None else np.int8
        self.buffer = np.empty((1, *self.input_hw, 3), dtype=dtype)
        self._pixels = self.buffer.view(np.uint8)[0]
        self._table: np.ndarray | None = None
        self._gain: float | None = None
        self._shift: int | None = None
        if fix_point is not None:
            self._table = quantization_table(fix_point, contract.scale)
            if quantizer in ("auto", "shifted"):
                self._shift = exact_shift(self._table)
            if quantizer in ("auto", "arithmetic"):
                self._gain = exact_gain(self._table, contract.scale * 2.0**fix_point)
            if self._gain is not None and quantizer == "auto":
                self._gain = self._gain if arithmetic_is_faster(self._table, self._gain, self.input_hw[1] * 3) else None
        self._roi = self._rows = np.empty((0, 0), np.uint8)  # where the image lands, per source geometry; as rows
        self._words: np.ndarray | None = None  # the rows as uint64, where "shifted" runs
        self._geometry: Letterbox | None = None
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}

    def __call__(self, image: np.ndarray, encoding: str = "bgr8") -> Letterbox:
        """Fill ``self.buffer`` from one image; returns the letterbox geometry for mapping boxes back."""
        image = check_image(image, encoding)
        pixel = ENCODINGS[encoding]
        convert = pixel.to_rgb if self.contract.rgb else pixel.to_bgr  # to the model's channel order
        geometry = self._geometry
        if geometry is None or geometry.src_hw != image.shape[:2]:
            geometry = letterbox_geometry(image.shape[:2], self.input_hw, self.contract)
            self._start_geometry(geometry)
        (nh, nw), roi = geometry.resized_hw, self._roi
        same_size = (nh, nw) == image.shape[:2]
        if convert is not None and (pixel.mosaic and not same_size or image.shape[0] * image.shape[1] < nh * nw):
            # mosaics convert first; so does upscaling (the smaller image; resize treats channels alike)
            image = cv2.cvtColor(image, convert, dst=self._scratch_for((*image.shape[:2], 3)))
            convert = None
        if convert is None:
            if same_size and self._table is not None:  # in the model's order already: quantized on the way in
                self._quantize(image.reshape(nh, nw * 3))
                return geometry
            if same_size:
                np.copyto(roi, image)
            else:
                cv2.resize(image, (nw, nh), dst=roi, interpolation=cv2.INTER_LINEAR)
        else:
            if not same_size:
                scratch = self._scratch_for((nh, nw, *image.shape[2:]))
                image = cv2.resize(image, (nw, nh), dst=scratch, interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(image, convert, dst=roi)
        if self._table is not None:
            self._quantize(self._rows)
        return geometry

    def _quantize(self, pixels: np.ndarray) -> None:
        """uint8 rows of pixels (the image's, or the buffer's own: in place) into the buffer's rows, by the chosen
        quantizer."""
        rows = self._rows
        if self._words is not None and self._shift is not None:
            _shifted(pixels, rows, self._words, self._shift)
        elif self._gain is not None:
            _scaled(pixels, self._gain, rows)
        elif self._table is not None:
            cv2.LUT(pixels, self._table, dst=rows)

    def _start_geometry(self, geometry: Letterbox) -> None:
        pad = self.contract.pad if self._table is None else self._table[self.contract.pad]
        self._pixels.fill(pad)
        self._scratch = {}
        self._geometry = geometry
        (nh, nw), top, left = geometry.resized_hw, geometry.top, geometry.left
        self._roi = self._pixels[top : top + nh, left : left + nw]
        self._rows = self._roi.reshape(nh, nw * 3)  # a view: OpenCV runs faster on one channel
        self._words = None if self._shift is None else as_words(self._rows)

    def _scratch_for(self, shape: tuple[int, ...]) -> np.ndarray:
        """A uint8 work array of this shape, made once per source geometry."""
        if shape not in self._scratch:
            self._scratch[shape] = np.empty(shape, np.uint8)
        return self._scratch[shape]
