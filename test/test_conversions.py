"""ROS-free message conversions: Image/CompressedImage fields → arrays, detections → field values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolov5_dpu_ros.conversions import detection_fields, image_from_compressed, image_from_fields
from yolov5_dpu_ros.detections import Detections


def _padded(image, step):
    h = image.shape[0]
    rows = image.reshape(h, -1)
    out = np.zeros((h, step), np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


@pytest.mark.parametrize("encoding,channels,as_encoding", [("bgr8", 3, "bgr8"), ("rgb8", 3, "rgb8"),
                                                            ("mono8", 1, "mono8"), ("rgba8", 4, "rgba8"),
                                                            ("8UC3", 3, "bgr8"), ("8UC1", 1, "mono8")])
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
    (("yuv422", 2, 2, 4, bytes(8)), "unsupported image encoding 'yuv422'"),
    (("16UC1", 2, 2, 4, bytes(8)), "unsupported image encoding"),
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
    with pytest.raises(ValueError, match="empty compressed image|does not decode"):
        image_from_compressed("jpeg", data)


def test_truncated_jpeg_is_refused():
    data = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match="does not decode"):
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
