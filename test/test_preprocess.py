"""Pre-processing against YOLOv5's letterbox(auto=False, color=114) + BGR→RGB, and int8 quantization."""

from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import random_bgr

from yolov5_dpu_ros.core.families import family as model_family
from yolov5_dpu_ros.core.preprocess import Preprocessor, letterbox_geometry, quantization_table

SIZES = [(480, 640), (1080, 1920), (720, 1280), (1, 1), (7, 1000), (1000, 7), (517, 333), (640, 640),
         (100, 160), (321, 319), (2, 3)]
TO_ENCODING = {
    "bgr8": lambda bgr: bgr,
    "rgb8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
    "mono8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
    "bgra8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
    "rgba8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
}


def reference_pixels(ref, bgr, input_hw):
    out, ratio, pad = ref.letterbox(bgr, input_hw, color=(114, 114, 114), auto=False)
    return out[:, :, ::-1], ratio, pad


@pytest.mark.parametrize("src_hw", SIZES)
@pytest.mark.parametrize("input_hw", [(640, 640), (320, 480)])
def test_letterbox_pixels_equal_yolov5(yolo_ref, src_hw, input_hw):
    bgr = random_bgr(np.random.default_rng(sum(src_hw)), *src_hw)
    pre = Preprocessor(input_hw, None)
    geometry = pre(bgr, "bgr8")
    expected, ratio, _ = reference_pixels(yolo_ref, bgr, input_hw)
    np.testing.assert_array_equal(pre.buffer[0], expected)
    assert geometry.gain == pytest.approx(ratio[0])


@pytest.mark.parametrize("encoding", sorted(TO_ENCODING))
@pytest.mark.parametrize("src_hw", [(480, 640), (1080, 1920), (240, 320)])  # same size, down, up
def test_every_encoding_gives_the_rgb_letterbox(yolo_ref, encoding, src_hw):
    bgr = random_bgr(np.random.default_rng(1), *src_hw)
    if encoding == "mono8":  # a grey scene, so the BGR reference is the same picture
        bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    pre = Preprocessor((640, 640), None)
    pre(TO_ENCODING[encoding](bgr), encoding)
    np.testing.assert_array_equal(pre.buffer[0], reference_pixels(yolo_ref, bgr, (640, 640))[0])


@pytest.mark.parametrize("fix_point", [5, 6, 7])
def test_int8_input_is_round_and_clip_of_the_letterbox(yolo_ref, fix_point):
    bgr = random_bgr(np.random.default_rng(2), 1080, 1920)
    bgr[:50, :50] = 255  # saturating pixels
    pre = Preprocessor((640, 640), fix_point)
    pre(bgr, "bgr8")
    pixels = reference_pixels(yolo_ref, bgr, (640, 640))[0].astype(np.float64)
    expected = np.clip(np.round(pixels / 255.0 * 2.0**fix_point), -128, 127).astype(np.int8)
    assert pre.buffer.dtype == np.int8
    np.testing.assert_array_equal(pre.buffer[0], expected)


def test_quantization_rounds_and_saturates():
    table = quantization_table(7).view(np.int8)
    assert table[255] == 127  # 128 saturates instead of wrapping to -128
    assert table[1] == 1  # 0.502 rounds up (truncation would give 0)
    assert table[114] == 57
    assert table.min() == 0


def test_buffer_is_reused_and_padding_follows_the_geometry(yolo_ref):
    pre = Preprocessor((320, 320), 6)
    buffer = pre.buffer
    rng = np.random.default_rng(3)
    for hw in [(240, 320), (320, 160), (240, 320), (100, 100)]:
        bgr = random_bgr(rng, *hw)
        pre(bgr, "bgr8")
        assert pre.buffer is buffer
        pixels = reference_pixels(yolo_ref, bgr, (320, 320))[0]
        np.testing.assert_array_equal(pre.buffer[0], quantization_table(6).view(np.int8)[pixels])


def test_geometry_maps_boxes_back_to_the_source():
    bgr = np.zeros((517, 333, 3), np.uint8)
    bgr[100:300, 50:200] = 255
    pre = Preprocessor((320, 320), None)
    geometry = pre(bgr, "bgr8")
    ys, xs = np.nonzero(pre.buffer[0, :, :, 0] > 127)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(geometry.to_source(box), [[50, 100, 200, 300]], atol=1.0)
    np.testing.assert_array_equal(geometry.to_source(np.array([[-50, -50, 900, 900]], np.float32)),
                                  [[0, 0, 333, 517]])


def test_geometry_table():
    g = letterbox_geometry((1080, 1920), (640, 640))
    assert (g.resized_hw, g.top, g.left) == ((360, 640), 140, 0)
    g = letterbox_geometry((480, 640), (960, 960))
    assert (g.resized_hw, g.top, g.left, g.gain) == ((720, 960), 120, 0, 1.5)
    g = letterbox_geometry((1, 2000), (640, 640))
    assert g.resized_hw == (1, 640)
    g = letterbox_geometry((480, 640), (416, 416), model_family("yolov3").contract)  # truncated, centred
    assert (g.resized_hw, g.top, g.left) == ((312, 416), 52, 0)


@pytest.mark.parametrize("image,encoding,message", [
    (np.zeros((0, 10, 3), np.uint8), "bgr8", "empty image"),
    (np.zeros((10, 0, 3), np.uint8), "bgr8", "empty image"),
    (np.zeros((10, 10, 3), np.float32), "bgr8", "uint8 numpy array, got float32"),
    (np.zeros((10, 10), np.uint8), "bgr8", r"a bgr8 image must have shape \(H, W, 3\), got \(10, 10\)"),
    (np.zeros((10, 10, 4), np.uint8), "bgr8", "shape"),
    (np.zeros((10, 10, 3), np.uint8), "mono8", r"a mono8 image must have shape \(H, W\), got \(10, 10, 3\)"),
    (np.zeros((10, 10, 2), np.uint8), "mono8", r"must have shape \(H, W\)"),
    (np.zeros((1, 8), np.uint8), "bayer_rggb8", "even width and at least 2x2 pixels, got 8x1"),
    (np.zeros((8, 1), np.uint8), "bayer_rggb8", "got 1x8"),
    (np.zeros((8, 7), np.uint8), "bayer_rggb8", "got 7x8"),
    (np.zeros((10, 10, 3), np.uint8), "nv21", "unsupported image encoding"),
    ([[1, 2], [3, 4]], "mono8", "numpy array, got list"),
])
def test_bad_images_are_refused_with_a_reason(image, encoding, message):
    with pytest.raises(ValueError, match=message):
        Preprocessor((64, 64), 7)(image, encoding)


def _std_round_reference(pixel: int, scale: Fraction, fix_point: int) -> int:
    """vai_q_pytorch's input quantization (default config: ``round_method`` ``std_round`` for the ``input``
    tensor, i.e. C++ std::round, half away from zero; then clipped to int8), in exact fractions."""
    x = pixel * scale * Fraction(2) ** fix_point
    rounded = math.floor(abs(x) + Fraction(1, 2))
    return max(-128, min(127, rounded if x >= 0 else -rounded))


@pytest.mark.parametrize("family", ["yolov5", "yolov3", "yolox"])
@pytest.mark.parametrize("fix_point", range(-4, 11))
def test_every_familys_input_table_rounds_as_the_quantizer_did(family, fix_point):
    scale = model_family(family).contract.scale
    exact = Fraction(scale).limit_denominator(1000)
    assert float(exact) == scale
    expected = [_std_round_reference(p, exact, fix_point) for p in range(256)]
    assert quantization_table(fix_point, scale).view(np.int8).tolist() == expected


def test_yolox_ties_round_away_from_zero_not_to_even():
    table = quantization_table(-1, 1.0).view(np.int8)  # the real YOLOX-nano KV260 xmodel's input: fix point -1
    assert table[[1, 3, 5, 7, 255]].tolist() == [1, 2, 3, 4, 127]  # 0.5 → 1, 1.5 → 2, 2.5 → 3, 3.5 → 4, 127.5 → 127


def test_work_arrays_are_made_once_per_geometry_and_hold_each_frames_intermediate():
    """The hot path allocates nothing per frame: a Bayer frame that is upscaled is demosaiced into the
    preprocessor's own work array, a BGR frame that is downscaled is resized into one, and the next frame of the
    same size reuses them."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (16, 24), np.uint8)
    pre = Preprocessor((64, 64), None)
    pre(small, "bayer_rggb8")
    work = pre._scratch[(16, 24, 3)]
    np.testing.assert_array_equal(work, cv2.cvtColor(small, cv2.COLOR_BayerBG2RGB))
    pre(small[::-1].copy(), "bayer_rggb8")
    assert pre._scratch[(16, 24, 3)] is work
    big = rng.integers(0, 256, (256, 256, 3), np.uint8)
    pre(big, "bgr8")
    resized = pre._scratch[(64, 64, 3)]
    np.testing.assert_array_equal(resized, cv2.resize(big, (64, 64), interpolation=cv2.INTER_LINEAR))


def test_a_one_channel_3d_mono_image_and_the_smallest_mosaic_are_accepted():
    from yolov5_dpu_ros.core.preprocess import check_image

    mono = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    np.testing.assert_array_equal(check_image(mono, "mono8"), mono[:, :, 0])
    assert check_image(np.zeros((2, 2), np.uint8), "bayer_rggb8").shape == (2, 2)


def test_the_input_table_is_the_familys_scale():
    """YOLOX takes pixels 0..255 (scale 1): a YOLOX preprocessor quantizes with its own scale, never YOLOv5's 1/255."""
    contract = model_family("yolox").contract
    image = np.random.default_rng(3).integers(0, 256, (32, 32, 3), np.uint8)
    pre = Preprocessor((32, 32), -1, contract)
    pre(image, "bgr8")
    np.testing.assert_array_equal(pre.buffer.view(np.int8)[0], quantization_table(-1, 1.0).view(np.int8)[image])


@pytest.mark.parametrize("family_name", ["yolov5", "yolov3", "yolox", "yolov8"])
def test_a_one_pixel_wide_or_tall_image_keeps_one_pixel(family_name):
    """A 1 x 1000 strip scaled into 640: its thin side is 0.64 px, kept as one pixel (YOLOv5 rounds it to 1, the
    truncating families would make it 0), never more."""
    contract = model_family(family_name).contract
    assert letterbox_geometry((1000, 1), (640, 640), contract).resized_hw == (640, 1)
    assert letterbox_geometry((1, 1000), (640, 640), contract).resized_hw == (1, 640)


def test_a_non_square_input_is_centred_on_each_axis_by_its_own_size():
    """The DPU-PYNQ YOLOv3 rule (truncate, centre by integer halves) into a 320 x 640 input: a 480 x 640 image
    scales by 2/3 to 320 x 426, no rows of padding, 107 columns left."""
    g = letterbox_geometry((480, 640), (320, 640), model_family("yolov3").contract)
    assert (g.resized_hw, g.top, g.left) == ((320, 426), 0, 107)


@pytest.mark.parametrize("quantizer", ["shifted", "arithmetic", "lookup", "auto"])
@pytest.mark.parametrize("family", ["yolov5", "yolov3", "yolox"])
@pytest.mark.parametrize("fix_point", range(-4, 11))
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
@pytest.mark.parametrize("hw", [(48, 64), (96, 128), (64, 40)])  # the input's width: as is, downscaled; portrait
def test_the_int8_input_is_the_table_of_the_uint8_letterbox_for_every_fix_point(family, fix_point, quantizer,
                                                                                 encoding, hw):
    """Whichever way the frame is quantized (the rounded halving of every byte where it matches the table and the
    image fills whole rows of the buffer, OpenCV's arithmetic where it matches the table, the lookup where neither
    does or it is asked for, or the quickest; after a channel swap, or straight from the image where it comes in
    the model's channel order), every pixel of the buffer is the quantizer's table entry of the letterboxed pixel,
    padding included."""
    contract = model_family(family).contract
    image = np.random.default_rng(fix_point + 10).integers(0, 256, (*hw, 3), np.uint8)
    image.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)  # every pixel value at least once
    quantized = Preprocessor((64, 64), fix_point, contract, quantizer)
    pixels = Preprocessor((64, 64), None, contract)
    quantized(image, encoding)
    pixels(image, encoding)
    table = quantization_table(fix_point, contract.scale).view(np.int8)
    np.testing.assert_array_equal(quantized.buffer[0], table[pixels.buffer[0]])


def test_opencvs_arithmetic_is_taken_only_where_it_gives_the_table():
    from yolov5_dpu_ros.core.preprocess import exact_gain

    assert exact_gain(quantization_table(6), 2.0**6 / 255) == 2.0**6 / 255  # no ties at 1/255 and fix point >= 0
    assert exact_gain(quantization_table(7), 2.0**7 / 255) == 2.0**7 / 255  # 255 saturates at 127 either way
    assert exact_gain(quantization_table(-1, 1.0), 0.5) is None  # YOLOX: ties, which OpenCV rounds to even
    assert exact_gain(quantization_table(6), 2.0**6 / 255 * 1.01) is None
    choices = r"\['auto', 'shifted', 'arithmetic', 'lookup'\]"
    with pytest.raises(ValueError, match=rf"quantizer must be one of {choices}, got 'simd'"):
        Preprocessor((64, 64), 6, quantizer="simd")


def test_the_rounded_halving_is_taken_for_every_table_it_gives_and_only_where_the_image_fills_whole_rows():
    """Scale 1/255 at fix points 0..7 is a rounded right shift by 8 - fix point bits (``x * 2**fp / 255`` is never
    half an integer there); YOLOX's scale 1 at fix point -1 (the real KV260 xmodel's) rounds its halves away from
    zero, which is up for pixels. Fix point 8 is not a shift (255 * 256 / 255 rounds to 256: 127 after the clip, but
    128 rounds to 129), nor a gain of 1.01. The halving runs on the buffer's memory as 8-byte words, so only where
    the image fills whole rows (a landscape frame into a square input); a portrait frame takes the other quantizer."""
    from yolov5_dpu_ros.core.preprocess import exact_shift

    assert [exact_shift(quantization_table(fp)) for fp in range(9)] == [7, 6, 5, 4, 3, 2, 1, 0, None]
    assert exact_shift(quantization_table(-1, 1.0)) == 0
    assert exact_shift(quantization_table(-2, 1.0)) == 1
    assert exact_shift(quantization_table(6, 1.01 / 255)) is None
    rng = np.random.default_rng(5)
    table = quantization_table(7).view(np.int8)
    # into 60 x 60 (180 bytes a row): 31 rows are no whole number of words; 58 rows start 1 row (180 bytes) in, off
    # the words' alignment; 56 rows start 2 rows in, on it
    for size, cases in [(64, [((48, 64), True), ((64, 48), False), ((96, 128), True), ((64, 40), False)]),
                        (60, [((31, 60), False), ((58, 60), False), ((56, 60), True)])]:
        pre, pixels = Preprocessor((size, size), 7, quantizer="shifted"), Preprocessor((size, size), None)
        for hw, shifted in cases:
            image = rng.integers(0, 256, (*hw, 3), np.uint8)
            pre(image, "bgr8")
            pixels(image, "bgr8")
            assert (pre._words is not None) is shifted, hw
            np.testing.assert_array_equal(pre.buffer[0], table[pixels.buffer[0]])


def test_the_fastest_call_is_the_one_that_takes_least_time_whatever_its_place():
    import time

    from yolov5_dpu_ros.core.preprocess import fastest

    def slow():
        time.sleep(0.002)

    assert fastest({"slow": slow, "quick": lambda: None}) == "quick"
    assert fastest({"quick": lambda: None, "slow": slow}) == "quick"


def test_auto_takes_the_faster_of_two_exact_quantizers_and_never_an_inexact_one(monkeypatch):
    """"auto" times the arithmetic against the lookup once and keeps the faster; where the arithmetic is not exact it
    is not even timed."""
    from yolov5_dpu_ros.core import preprocess

    assert isinstance(preprocess.arithmetic_is_faster(quantization_table(6), 2.0**6 / 255, 640 * 3), bool)
    for faster in (True, False):
        monkeypatch.setattr(preprocess, "arithmetic_is_faster", lambda *a, f=faster: f)
        assert (Preprocessor((64, 64), 6)._gain is not None) is faster
    monkeypatch.setattr(preprocess, "arithmetic_is_faster", lambda *a: pytest.fail("timed an inexact quantizer"))
    assert Preprocessor((64, 64), -1, model_family("yolox").contract)._gain is None
    assert Preprocessor((64, 64), 6, quantizer="arithmetic")._gain is not None
    assert Preprocessor((64, 64), 6, quantizer="lookup")._gain is None
