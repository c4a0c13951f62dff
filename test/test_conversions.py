"""ROS-free message conversions: Image/CompressedImage fields → arrays, detections → field values."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from props import given, settings, st

from yolov5_dpu_ros.core.conversions import ROS_ENCODINGS, detection_fields, image_from_compressed, image_from_fields
from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.preprocess import Preprocessor
from yolov5_dpu_ros.core.sources import iter_frames, resolve_source


def _padded(image, step):
    h = image.shape[0]
    rows = image.reshape(h, -1)
    out = np.zeros((h, step), np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


@pytest.mark.parametrize("encoding,channels,as_encoding", [("bgr8", 3, "bgr8"), ("rgb8", 3, "rgb8"),
                                                            ("mono8", 1, "mono8"), ("rgba8", 4, "rgba8"),
                                                            ("bgra8", 4, "bgra8")])
def test_image_fields_with_row_padding(encoding, channels, as_encoding):
    rng = np.random.default_rng(0)
    shape = (7, 5, channels) if channels > 1 else (7, 5)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    step = 5 * channels + 3  # rows padded, as some drivers send them
    got, enc = image_from_fields(encoding, 7, 5, step, _padded(image, step))
    np.testing.assert_array_equal(got, image)
    assert enc == as_encoding


def test_image_fields_accept_ros_array_data():
    import array

    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    got, _ = image_from_fields("bgr8", 2, 4, 12, array.array("B", image.tobytes()))  # rclpy's uint8[] type
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize("fields,message", [
    (("32FC1", 2, 2, 8, bytes(16)), "32FC1 is a depth or generic image"),
    (("jpeg", 2, 2, 4, bytes(8)), "unsupported image encoding"),
    ((None, 2, 2, 4, bytes(8)), "unsupported image encoding"),
    (("mono16", 2, 2, 3, bytes(8)), "step 3 is smaller"),
    (("mono16", 2, 2, 5, bytes(10)), "must be even"),
    (("bgr8", 2.0, 4, 12, bytes(24)), "image height must be an integer"),
    (("bgr8", -1, 4, 12, bytes(24)), "image height must be in"),
    (("bgr8", 2, 4, 12, "x" * 24), "not bytes"),
    (("bgr8", 2, 4, 12, np.zeros(24, np.int32)), "must be uint8"),
    (("bgr8", 2, 4, 12, [300] * 24), "integers 0..255"),
    (("bgr8", 0, 4, 12, b""), "empty image"),
    (("bgr8", 4, 0, 0, b""), "empty image"),
    (("bgr8", 4, 4, 10, bytes(40)), "step 10 is smaller"),
    (("bgr8", 4, 4, 12, bytes(30)), "truncated"),
])
def test_bad_image_fields_name_the_problem(fields, message):
    with pytest.raises(ValueError, match=message):
        image_from_fields(*fields)


def test_compressed_jpeg_and_png_decode():
    image = np.zeros((16, 24, 3), np.uint8)
    image[:, :12] = (255, 0, 0)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, image)[1].tobytes()
        got = image_from_compressed(ext[1:], data)
        assert got.shape == (16, 24, 3) and abs(int(got[8, 2, 0]) - 255) < 8 and got[8, 20, 0] < 8


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0 truncated jpeg", bytes(100)])
def test_corrupt_compressed_images_are_refused(data):
    with pytest.raises(ValueError, match="empty compressed image|does not decode|truncated"):
        image_from_compressed("jpeg", data)


def test_truncated_jpeg_is_refused():
    data = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match="no end-of-image marker: truncated"):
        image_from_compressed("jpeg", data[: len(data) // 3])


def test_detection_field_values():
    det = Detections(np.array([[10, 20, 50, 80], [0, 0, 4, 2]], np.float32), np.array([0.9, 0.3], np.float32),
                     np.array([2, 7], np.int32))
    names = ["a", "b", "tri"]
    fields = detection_fields(det, names, "name")
    assert (fields[0].center_x, fields[0].center_y, fields[0].size_x, fields[0].size_y) == (30, 50, 40, 60)
    assert fields[0].class_id == "tri" and fields[0].score == pytest.approx(0.9)
    assert fields[1].class_id == "7"  # no name for index 7: the index
    assert [f.class_id for f in detection_fields(det, names, "index")] == ["2", "7"]
    assert detection_fields(Detections.empty(), names) == []
    with pytest.raises(ValueError, match="class_id_format"):
        detection_fields(det, names, "label")


# --- every encoding cv_bridge converts to colour, checked against OpenCV's own conversion -----------------

def _picture(h=48, w=64):
    """A known RGB picture with colour gradients and edges."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], axis=2).astype(np.uint8)
    rgb[10:20, 30:50] = (250, 20, 40)
    return rgb


def _bayer(rgb, pattern):
    """A Bayer mosaic of an RGB picture; ``pattern`` names the 2x2 tile from the top-left, as ROS does."""
    out = np.empty(rgb.shape[:2], np.uint8)
    index = {"r": 0, "g": 1, "b": 2}
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[pattern[k]]]
    return out


def _yuv422(rgb, order):
    """Packed 4:2:2 from an RGB picture with OpenCV's own colour conversion (UYVY or YUYV)."""
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
    out = np.empty((*rgb.shape[:2], 2), np.uint8)
    out[..., 1 if order == "uyvy" else 0] = y
    chroma = out[..., 0 if order == "uyvy" else 1]
    chroma[:, 0::2], chroma[:, 1::2] = u[:, 0::2], v[:, 0::2]
    return out


RGB = _picture()
BGR = RGB[..., ::-1].copy()
# encoding → (message data array, OpenCV's conversion of it to RGB: what the model must see)
CASES = {
    "rgb8": (RGB, RGB),
    "bgr8": (BGR, RGB),
    "mono8": (RGB[..., 1].copy(), cv2.cvtColor(RGB[..., 1].copy(), cv2.COLOR_GRAY2RGB)),
    "bgra8": (cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA), RGB),
    "rgba8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2RGBA), RGB),
    "yuv422": (_yuv422(RGB, "uyvy"), cv2.cvtColor(_yuv422(RGB, "uyvy"), cv2.COLOR_YUV2RGB_UYVY)),
    "yuv422_yuy2": (_yuv422(RGB, "yuyv"), cv2.cvtColor(_yuv422(RGB, "yuyv"), cv2.COLOR_YUV2RGB_YUY2)),
    "bayer_rggb8": (_bayer(RGB, "rggb"), cv2.cvtColor(_bayer(RGB, "rggb"), cv2.COLOR_BayerBG2RGB)),
    "bayer_bggr8": (_bayer(RGB, "bggr"), cv2.cvtColor(_bayer(RGB, "bggr"), cv2.COLOR_BayerRG2RGB)),
    "bayer_gbrg8": (_bayer(RGB, "gbrg"), cv2.cvtColor(_bayer(RGB, "gbrg"), cv2.COLOR_BayerGR2RGB)),
    "bayer_grbg8": (_bayer(RGB, "grbg"), cv2.cvtColor(_bayer(RGB, "grbg"), cv2.COLOR_BayerGB2RGB)),
    "mono16": (RGB[..., 1].astype(np.uint16) * 257, cv2.cvtColor(RGB[..., 1].copy(), cv2.COLOR_GRAY2RGB)),
    "rgb16": (RGB.astype(np.uint16) * 257, RGB),
    "bgr16": (BGR.astype(np.uint16) * 257, RGB),
    "rgba16": (cv2.cvtColor(RGB, cv2.COLOR_RGB2RGBA).astype(np.uint16) * 257, RGB),
    "bgra16": (cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257, RGB),
}


@pytest.mark.parametrize("encoding,bytes_per_pixel", [("16UC1", 2), ("32FC1", 4), ("8UC1", 1), ("8UC3", 3),
                                                      ("8UC4", 4), ("16UC3", 6)])
def test_depth_and_generic_encodings_are_refused_as_colour_as_cv_bridge_refuses_them(encoding, bytes_per_pixel):
    """A depth topic given as the colour input is a bad frame with the reason, never "detected" on as mono."""
    with pytest.raises(ValueError, match=f"{encoding} is a depth or generic image, not a colour one.*depth_topics"):
        image_from_fields(encoding, 4, 4, 4 * bytes_per_pixel, bytes(16 * bytes_per_pixel))


def test_every_accepted_encoding_has_a_case():
    assert set(CASES) == set(ROS_ENCODINGS)


@pytest.mark.parametrize("encoding", sorted(CASES))
@pytest.mark.parametrize("model_hw", [(48, 64), (96, 128), (32, 32)], ids=["same", "up", "down"])
def test_model_input_equals_opencv_conversion(encoding, model_hw):
    data, expected_rgb = CASES[encoding]
    h, w = data.shape[:2]
    step = w * data.shape[2:3][0] * data.itemsize if data.ndim == 3 else w * data.itemsize
    image, as_encoding = image_from_fields(encoding, np.uint32(h), np.uint32(w), np.uint32(step + 4),
                                           _padded(data.view(np.uint8).reshape(h, -1), step + 4))
    got = Preprocessor(model_hw, None)
    got(image, as_encoding)
    want = Preprocessor(model_hw, None)
    want(np.ascontiguousarray(expected_rgb), "rgb8")
    np.testing.assert_array_equal(got.buffer, want.buffer)


def test_sixteen_bit_scaling_is_cv_bridges():
    samples = np.array([[0, 128, 129, 256, 32767, 65535, 385, 386]], np.uint16)
    image, enc = image_from_fields("mono16", 1, 8, 16, samples.tobytes())
    assert enc == "mono8"
    np.testing.assert_array_equal(image[0], np.clip(np.rint(samples[0] * (255 / 65535)), 0, 255))
    big, _ = image_from_fields("mono16", 1, 8, 16, samples.byteswap().tobytes(), is_bigendian=1)
    np.testing.assert_array_equal(big, image)


def test_eight_bit_images_are_views_of_the_message():
    data = bytearray(RGB.tobytes())
    image, _ = image_from_fields("rgb8", 48, 64, 192, data)
    assert np.shares_memory(image, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_odd_width_yuv_is_refused(encoding):
    image, enc = image_from_fields(encoding, 2, 3, 6, bytes(12))
    with pytest.raises(ValueError, match="even width"):
        Preprocessor((32, 32), 7)(image, enc)


def test_uint32_sizes_cannot_overflow_into_a_view_past_the_buffer():
    """numpy uint32 fields: step * (height - 1) wraps in uint32; the check must use Python integers."""
    h, step = np.uint32(65537), np.uint32(65536)  # step * (h - 1) == 2**32 wraps to 0 in uint32
    with pytest.raises(ValueError, match="truncated"):
        image_from_fields("mono8", h, np.uint32(4), step, bytes(64))


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview, lambda b: array.array("B", b),
                                  lambda b: np.frombuffer(b, np.uint8), lambda b: list(b)],
                         ids=["bytes", "bytearray", "memoryview", "array", "numpy", "list"])
def test_every_data_container_works(make):
    raw = BGR.tobytes()
    image, _ = image_from_fields("bgr8", 48, 64, 192, make(raw))
    np.testing.assert_array_equal(image, BGR)


@settings(max_examples=200, deadline=None)
@given(encoding=st.sampled_from(sorted(ROS_ENCODINGS) + ["32FC1", ""]),
       height=st.one_of(st.integers(-3, 40), st.integers(2**31, 2**33)),
       width=st.integers(-3, 40), step=st.integers(-3, 400), size=st.integers(0, 2000),
       int_type=st.sampled_from([int, np.uint32, np.int64, np.uint16]))
def test_any_fields_convert_or_are_refused(encoding, height, width, step, size, int_type):
    """Property: whatever the fields, the result is a uint8 image inside the buffer or a ValueError."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    try:
        fields = [int_type(v) for v in (height, width, step)]
    except OverflowError:
        return
    try:
        image, enc = image_from_fields(encoding, *fields, data)
    except ValueError:
        return
    assert image.dtype == np.uint8 and image.shape[:2] == (height, width)
    kind = ROS_ENCODINGS[encoding]
    assert step * (height - 1) + width * kind.channels * np.dtype(kind.dtype).itemsize <= size
    image.sum()  # reading every pixel stays inside the buffer


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["jpeg", "png", ""]))
def test_any_compressed_bytes_decode_or_are_refused(data, fmt):
    """Property: compressed data decodes to a BGR image or raises ValueError, nothing else."""
    try:
        image = image_from_compressed(fmt, data)
    except ValueError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=2000))
def test_a_cut_jpeg_is_refused_on_the_message_and_the_file_path(tmp_path_factory, cut):
    """Property: a JPEG cut anywhere is refused by the message path, and the file path counts it unreadable."""
    data = cv2.imencode(".jpg", BGR)[1].tobytes()
    cut = min(cut, len(data) - 1)
    with pytest.raises(ValueError):
        image_from_compressed("jpeg", data[:cut])
    folder = tmp_path_factory.mktemp("cut")
    (folder / "cut.jpg").write_bytes(data[:cut])
    (frame,) = iter_frames(resolve_source(folder))
    assert frame.image is None and "unreadable" in frame.error
