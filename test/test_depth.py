"""3D boxes from an aligned depth image (core.depth): encodings, invalid pixels, resolutions, the nearest dense
cluster against the background, back-projection, pairing by stamp; accuracy on generated RGB-D scenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from props import given, settings, st

from bench.rgbd_scenes import COLOUR_WH, K, render
from yolov5_dpu_ros.core.conversions import DetectionFields
from yolov5_dpu_ros.core.depth import (
    Boxes3D,
    DepthConfig,
    Intrinsics,
    StampPairing,
    back_project,
    boxes_3d,
    camera_info_beside,
    depth_boxes,
    depth_from_fields,
    detection3d_fields,
    project,
    rotate,
)

INTRINSICS = Intrinsics.from_k(K)
HW = (COLOUR_WH[1], COLOUR_WH[0])


def wall(z: float = 5.0, hw=HW) -> np.ndarray:
    return np.full(hw, z, np.float32)


@settings(max_examples=200, deadline=None)
@given(st.floats(-5, 5), st.floats(-3, 3), st.floats(0.1, 50), st.floats(100, 2000), st.floats(100, 2000),
       st.floats(0, 1280), st.floats(0, 720))
def test_a_projected_point_back_projects_to_itself(x, y, z, fx, fy, cx, cy):
    intrinsics = Intrinsics(fx, fy, cx, cy)
    point = np.array([[x, y, z]])
    again = back_project(project(point, intrinsics), np.array([z]), intrinsics)
    np.testing.assert_allclose(again, point, rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0.0, np.nan, np.inf, -np.inf, 0.5, 2.0, 1e9, -3.0]), min_size=16, max_size=16),
       st.lists(st.tuples(st.floats(-50, 1300), st.floats(-50, 800), st.floats(1, 400), st.floats(1, 400)),
                min_size=1, max_size=5))
def test_no_nan_or_inf_ever_leaves_whatever_the_depth_holds(values, boxes):
    """Any mix of invalid pixels and any boxes (also outside the image): every number is finite, and a box
    without enough valid depth is invalid with zeros, never a guess at 0 m."""
    raw = np.resize(np.asarray(values, np.float32), (24, 32)).astype("<f4")
    depth = depth_from_fields("32FC1", 24, 32, 32 * 4, raw.tobytes())
    xyxy = np.array([(x, y, x + w, y + h) for x, y, w, h in boxes])
    result = boxes_3d(xyxy, depth, (24, 32), Intrinsics(30, 30, 16, 12))
    assert np.isfinite(result.center).all() and np.isfinite(result.size).all()
    assert (result.center[~result.valid] == 0).all() and (result.center[result.valid, 2] > 0).all()


def test_16uc1_is_millimetres_and_0_is_invalid():
    mm = np.array([[0, 1500], [65535, 2000]], "<u2")
    depth = depth_from_fields("16UC1", 2, 2, 4, mm.tobytes())
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(1.5) and depth[1, 1] == pytest.approx(2.0)
    assert depth[1, 0] == pytest.approx(65.535)
    scaled = depth_from_fields("16UC1", 2, 2, 4, mm.tobytes(), scale=0.0001)  # a driver in 0.1 mm
    assert scaled[0, 1] == pytest.approx(0.15)
    big = depth_from_fields("16UC1", 2, 2, 4, mm.byteswap().tobytes(), is_bigendian=1)
    np.testing.assert_array_equal(np.nan_to_num(big), np.nan_to_num(depth))


@pytest.mark.parametrize("encoding,step,size,message", [
    ("bgr8", 6, 12, "unsupported depth encoding 'bgr8'"), ("16UC1", 2, 12, "step must be at least 4"),
    ("32FC1", 8, 10, "truncated message"),
])
def test_bad_depth_images_are_named(encoding, step, size, message):
    with pytest.raises(ValueError, match=message):
        depth_from_fields(encoding, 2, 2, step, bytes(size))


def test_the_nearest_dense_cluster_wins_over_a_background_filling_most_of_the_box():
    """A pole 1.5 m away fills 25 % of its box, the wall 6 m behind fills the rest: the box median would say
    6 m; the object is at 1.5 m."""
    depth = wall(6.0)
    depth[200:500, 600:625] = 1.5
    result = boxes_3d(np.array([[587.5, 200, 637.5, 500]]), depth, HW, INTRINSICS)
    assert result.valid[0] and result.center[0, 2] == pytest.approx(1.5, rel=0.01)
    assert result.size[0, 0] == pytest.approx(50 * 1.5 / 900, rel=0.01)
    assert result.size[0, 1] == pytest.approx(300 * 1.5 / 900, rel=0.01)


def test_a_few_stray_near_pixels_are_not_an_object():
    depth = wall(3.0)
    depth[300:302, 600:602] = 0.5  # flying pixels at an edge
    result = boxes_3d(np.array([[560, 260, 680, 380]]), depth, HW, INTRINSICS)
    assert result.center[0, 2] == pytest.approx(3.0, rel=0.01)


def test_too_few_valid_pixels_give_no_box():
    depth = np.full(HW, np.nan, np.float32)
    depth[300, 600] = 2.0
    result = boxes_3d(np.array([[560, 260, 680, 380], [0, 0, 10, 10]]), depth, HW, INTRINSICS)
    assert not result.valid.any() and (result.center == 0).all()


def test_a_depth_image_of_another_resolution_is_mapped_by_scale():
    full, half = wall(6.0), wall(6.0, (360, 640))
    full[200:400, 600:700] = 2.0
    half[100:200, 300:350] = 2.0
    box = np.array([[600, 200, 700, 400]])
    a, b = boxes_3d(box, full, HW, INTRINSICS), boxes_3d(box, half, HW, INTRINSICS)
    np.testing.assert_allclose(a.center, b.center, rtol=1e-6)
    np.testing.assert_allclose(b.center[0], [(650 - 640) * 2 / 900, (300 - 360) * 2 / 900, 2.0], rtol=1e-6)


def test_depth_extent_comes_from_the_cluster_and_is_clamped():
    depth = wall(6.0)
    depth[200:400, 600:700] = np.linspace(2.0, 2.1, 100)[None, :]  # a surface 10 cm deep
    result = boxes_3d(np.array([[600, 200, 700, 400]]), depth, HW, INTRINSICS, DepthConfig(min_extent_m=0.02))
    assert result.size[0, 2] == pytest.approx(0.1, abs=0.02)
    flat = boxes_3d(np.array([[600, 200, 700, 400]]), wall(2.0), HW, INTRINSICS)
    assert flat.size[0, 2] == pytest.approx(DepthConfig().min_extent_m)


def test_intrinsics_come_from_k_and_an_uncalibrated_camera_is_refused():
    assert Intrinsics.from_k(K) == Intrinsics(900.0, 900.0, 640.0, 360.0)
    with pytest.raises(ValueError, match="is the camera calibrated"):
        Intrinsics.from_k([0.0] * 9)


@settings(max_examples=100, deadline=None)
@given(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(
    lambda q: sum(v * v for v in q) > 0.01))
def test_rotating_by_a_quaternion_is_the_rotation_matrix(q):
    x, y, z, w = np.asarray(q) / np.linalg.norm(q)
    matrix = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                       [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                       [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    points = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(rotate(points, (x, y, z, w)), points @ matrix.T, atol=1e-9)


def test_pairing_takes_the_nearest_stamp_within_the_slop():
    pairing = StampPairing(0.02, keep=3)
    for stamp in (1.0, 1.033, 1.066, 1.1):
        pairing.add(stamp, stamp)
    assert pairing.nearest(1.07) == 1.066 and pairing.nearest(1.2) is None
    assert pairing.nearest(1.0) is None  # dropped: only the last 3 are kept
    with pytest.raises(ValueError, match="depth_sync_slop"):
        StampPairing(-1)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("depth_wh", [COLOUR_WH, (640, 360)])
def test_accuracy_on_generated_scenes(encoding, depth_wh):
    """bench/RESULTS_DEPTH.md holds the full run; targets: median <= 2 % of the distance, p95 <= 5 %, thin
    objects within 5 %."""
    errors, thin = [], []
    for seed in range(8):
        scene = render(seed, encoding, depth_wh)
        depth = depth_from_fields(encoding, depth_wh[1], depth_wh[0], scene.step, scene.depth_data)
        result = boxes_3d(scene.boxes, depth, HW, INTRINSICS)
        assert result.valid.all()
        error = np.linalg.norm(result.center - scene.truth, axis=1) / scene.truth[:, 2]
        errors += error.tolist()
        thin += error[scene.thin].tolist()
    assert np.median(errors) <= 0.02 and np.percentile(errors, 95) <= 0.05
    assert thin and max(thin) <= 0.05


@pytest.mark.parametrize("fx,fy,cx,cy", [
    (615.2, 614.9, 322.7, 238.1),  # a real colour camera: fx and fy a fraction of a percent apart, off centre
    (780.0, 600.0, 250.0, 300.0),  # strongly anisotropic (fx = 1.3 fy), principal point far off centre
])
def test_3d_boxes_match_opencvs_projection_with_fx_unequal_fy(fx, fy, cx, cy):
    """Boxes of known 3D centre and size, projected by OpenCV (cv2.projectPoints, zero distortion) into a camera
    with fx != fy and an off-centre principal point: boxes_3d gives the centre and size back."""
    rng = np.random.default_rng(7)
    n, (height, width) = 12, (480, 640)
    centres = np.column_stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.4, 0.4, n), rng.uniform(1.5, 4.0, n)])
    sizes = rng.uniform(0.1, 0.5, (n, 2))
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)
    xyxy = np.empty((n, 4))
    for i, (c, s) in enumerate(zip(centres, sizes)):
        corners = np.array([[c[0] - s[0] / 2, c[1] - s[1] / 2, c[2]], [c[0] + s[0] / 2, c[1] + s[1] / 2, c[2]]])
        pixels, _ = cv2.projectPoints(corners, np.zeros(3), np.zeros(3), k, np.zeros(5))
        xyxy[i] = pixels.reshape(-1)
    for i in range(n):  # one detection per depth image: each box sees its own plane
        depth = np.full((height, width), centres[i, 2], np.float32)
        boxes = boxes_3d(xyxy[i:i + 1], depth, (height, width), Intrinsics(fx, fy, cx, cy))
        assert boxes.valid[0]
        np.testing.assert_allclose(boxes.center[0], centres[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(boxes.size[0, :2], sizes[i], rtol=1e-5, atol=1e-6)


DISTORTED = [  # (model, D): a webcam's plumb_bob, an OAK-D-like rational_polynomial, a fisheye lens
    ("plumb_bob", (-0.28, 0.09, 0.001, -0.0005, -0.012)),
    ("rational_polynomial", (1.8, -0.4, 0.0008, -0.0003, 0.01, 2.1, 0.2, 0.05)),
    ("equidistant", (-0.02, 0.004, -0.001, 0.0002)),
]


def _project_distorted(points: np.ndarray, k: np.ndarray, model: str, d: tuple) -> np.ndarray:
    """OpenCV's forward projection with distortion: the reference the back-projection must invert."""
    if model == "equidistant":
        pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, np.array(d))
    else:
        pixels, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, np.array(d))
    return pixels.reshape(-1, 2)


@pytest.mark.parametrize("model,d", DISTORTED)
def test_pixels_of_a_distorted_image_back_project_to_the_points_opencv_projected(model, d):
    """An unrectified camera (D non-zero): a pixel of the published image goes back to the 3D point OpenCV's
    projection (with the same D) put there, also near the image corners where distortion is largest."""
    fx, fy, cx, cy = 600.0, 590.0, 331.0, 242.0
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    rng = np.random.default_rng(3)
    z = rng.uniform(0.8, 5.0, 40)
    points = np.column_stack([rng.uniform(-0.45, 0.45, 40) * z, rng.uniform(-0.35, 0.35, 40) * z, z])
    pixels = _project_distorted(points, k, model, d)
    intrinsics = Intrinsics.from_camera_info(k.ravel(), d, model)
    np.testing.assert_allclose(back_project(pixels, z, intrinsics), points, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,d", DISTORTED)
def test_3d_box_sizes_of_a_distorted_camera_match_the_objects(model, d):
    """Objects of known width and height seen by a distorted camera: their boxes' corners, projected by OpenCV,
    give the objects' sizes back (a pinhole reading of the same pixels would not)."""
    k = np.array([[600.0, 0, 320.0], [0, 600.0, 240.0], [0, 0, 1]])
    intrinsics = Intrinsics.from_camera_info(k.ravel(), d, model)
    for centre, size in [((0.7, 0.5, 2.0), (0.3, 0.2)), ((-0.6, 0.3, 1.6), (0.25, 0.4)), ((0.0, 0.0, 3.0), (0.5, 0.5))]:
        corners = np.array([[centre[0] - size[0] / 2, centre[1] - size[1] / 2, centre[2]],
                            [centre[0] + size[0] / 2, centre[1] + size[1] / 2, centre[2]]])
        xyxy = _project_distorted(corners, k, model, d).reshape(1, 4)
        depth = np.full((480, 640), centre[2], np.float32)
        boxes = boxes_3d(xyxy, depth, (480, 640), intrinsics)
        assert boxes.valid[0]
        np.testing.assert_allclose(boxes.size[0, :2], size, rtol=1e-4)


def test_camera_info_distortion_is_checked_and_zero_distortion_is_a_pinhole_camera():
    k = [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1]
    assert Intrinsics.from_camera_info(k, [0.0] * 5, "plumb_bob") == Intrinsics(500.0, 500.0, 320, 240)
    assert Intrinsics.from_camera_info(k, [], "") == Intrinsics(500.0, 500.0, 320, 240)
    with pytest.raises(ValueError, match="rectified"):
        Intrinsics.from_camera_info(k, [0.1, 0, 0, 0, 0], "kannala_brandt_9")
    with pytest.raises(ValueError, match="needs 4"):
        Intrinsics.from_camera_info(k, [0.1, 0, 0, 0, 0], "equidistant")
    with pytest.raises(ValueError, match="coefficients"):
        Intrinsics.from_camera_info(k, [0.1, 0.2, 0.3], "plumb_bob")


def _depth_msg(metres: np.ndarray, encoding: str = "16UC1", bigendian: bool = False):
    """A depth Image message's fields (rclpy's or rosbags' attribute names)."""
    from types import SimpleNamespace

    values = (np.round(metres * 1000).astype(np.uint16) if encoding == "16UC1" else metres.astype(np.float32))
    values = values.byteswap() if bigendian else values
    return SimpleNamespace(encoding=encoding, height=metres.shape[0], width=metres.shape[1],
                           step=metres.shape[1] * values.itemsize, data=values.tobytes(), is_bigendian=int(bigendian))


@pytest.mark.parametrize("info_wh,colour_hw", [((1280, 720), (480, 640)), ((640, 480), (720, 1280)),
                                               ((640, 480), (480, 640)), ((0, 0), (480, 640))])
def test_camera_info_for_another_resolution_rescales_k_per_axis(info_wh, colour_hw):
    """K given for the camera_info's width and height, the colour image at another resolution of the same view
    (also with another aspect ratio): fx and cx scale with the width, fy and cy with the height; an info without
    a size (0x0) is taken as the colour image's."""
    k = Intrinsics(700.0, 610.0, 650.0, 350.0)
    depth = np.full((120, 160), 6.0)
    depth[30:60, 40:90] = 2.0
    box = np.array([[0.27, 0.27, 0.53, 0.48]]) * [colour_hw[1], colour_hw[0], colour_hw[1], colour_hw[0]]
    got = depth_boxes(_depth_msg(depth), box, colour_hw, k, info_wh, DepthConfig())
    sx, sy = (colour_hw[1] / info_wh[0], colour_hw[0] / info_wh[1]) if info_wh[0] else (1.0, 1.0)
    want = boxes_3d(box, depth_from_fields("16UC1", 120, 160, 320, _depth_msg(depth).data), colour_hw,
                    Intrinsics(700.0 * sx, 610.0 * sy, 650.0 * sx, 350.0 * sy))
    np.testing.assert_allclose(got.center, want.center, rtol=1e-9)
    np.testing.assert_allclose(got.size, want.size, rtol=1e-9)
    u, v = (box[0, 0] + box[0, 2]) / 2, (box[0, 1] + box[0, 3]) / 2
    np.testing.assert_allclose(got.center[0, :2], [(u - 650 * sx) * 2 / (700 * sx), (v - 350 * sy) * 2 / (610 * sy)])


def test_a_depth_message_is_read_with_its_byte_order_and_the_configured_scale():
    depth = np.full((60, 80), 4.0)
    depth[10:40, 20:50] = 1.25
    box, k = np.array([[80.0, 40.0, 200.0, 160.0]]), Intrinsics(300.0, 300.0, 160.0, 120.0)
    little = depth_boxes(_depth_msg(depth), box, (240, 320), k, (320, 240), DepthConfig())
    big = depth_boxes(_depth_msg(depth, bigendian=True), box, (240, 320), k, (320, 240), DepthConfig())
    tenth_mm = depth_boxes(_depth_msg(depth), box, (240, 320), k, (320, 240), DepthConfig(scale=0.0001))
    assert little.center[0, 2] == pytest.approx(1.25) and big.center[0, 2] == pytest.approx(1.25)
    assert tenth_mm.center[0, 2] == pytest.approx(0.125)
    wide = DepthConfig(min_extent_m=0.5)
    assert depth_boxes(_depth_msg(depth), box, (240, 320), k, (320, 240), wide).size[0, 2] == pytest.approx(0.5)


def test_detection3d_fields_carry_every_value_and_move_by_the_transform():
    """Each valid box: its centre rotated then translated (tf2's order), its size per axis, the rotation as its
    orientation, and the 2D detection's class id, score and track id; invalid boxes are left out."""
    fields = [DetectionFields(1, 2, 3, 4, "cup", 0.9, "7"), DetectionFields(5, 6, 7, 8, "cat", 0.8, ""),
              DetectionFields(9, 9, 9, 9, "dog", 0.7, "3")]
    boxes = Boxes3D(np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 0.0], [-0.3, 0.4, 3.5]]),
                    np.array([[0.2, 0.3, 0.4], [0.0, 0.0, 0.0], [0.5, 0.6, 0.7]]), np.array([True, False, True]))
    half = np.sqrt(0.5)
    rotation, translation = (0.0, 0.0, half, half), (1.0, -2.0, 0.5)  # 90 degrees about z
    out = detection3d_fields(fields, boxes, translation, rotation)
    matrix = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert [(f.class_id, f.score, f.id) for f in out] == [("cup", 0.9, "7"), ("dog", 0.7, "3")]
    np.testing.assert_allclose([f.center for f in out], boxes.center[[0, 2]] @ matrix.T + translation, atol=1e-12)
    assert [f.size for f in out] == [(0.2, 0.3, 0.4), (0.5, 0.6, 0.7)]
    assert all(f.orientation == rotation for f in out)
    identity = detection3d_fields(fields, boxes)
    assert [f.center for f in identity] == [(0.1, -0.2, 2.0), (-0.3, 0.4, 3.5)]
    assert all(isinstance(v, float) for f in out for v in f.center)


@pytest.mark.parametrize("topic,info", [
    ("/camera/color/image_raw", "/camera/color/camera_info"), ("camera/image_raw", "camera/camera_info"),
    ("image_raw", "camera_info"), ("/image_raw", "/camera_info"),
    ("/cam/image_raw/compressed", "/cam/camera_info"), ("cam/image_raw/", "cam/camera_info"),
    ("/image_raw/compressed", "/camera_info"), ("image_raw/compressed", "camera_info"),
    ("/sensors/XX", "/sensors/camera_info"),  # a last name of capitals: only the slash is stripped
])
def test_camera_info_is_looked_for_where_image_transport_drivers_publish_it(topic, info):
    assert camera_info_beside(topic) == info


@pytest.mark.parametrize("model,count,ok", [
    ("plumb_bob", 4, True), ("plumb_bob", 5, True), ("rational_polynomial", 8, True), ("plumb_bob", 12, True),
    ("plumb_bob", 14, True), ("plumb_bob", 13, False), ("plumb_bob", 6, False), ("equidistant", 4, True),
    ("equidistant", 5, False), ("rational_polynomial", 3, False),
])
def test_distortion_coefficient_counts_are_those_opencv_reads(model, count, ok):
    k = [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1]
    d = [0.01] * count
    if ok:
        assert Intrinsics.from_camera_info(k, d, model).distortion == tuple(d)
    else:
        with pytest.raises(ValueError, match=f"{count} coefficients"):
            Intrinsics.from_camera_info(k, d, model)


def test_boxes_are_sampled_at_the_centres_of_a_grid_of_cells_clipped_to_the_image():
    """The sampling rule written out: GRID x GRID cell centres of the box, colour pixels mapped to the depth image
    by scale and truncated to a pixel, clipped to the image (a box reaching past an edge samples the edge)."""
    from yolov5_dpu_ros.core.depth import GRID, _sample

    h, w = 60, 80
    depth = (np.arange(h)[:, None] * 1000 + np.arange(w)[None, :]).astype(np.float64)  # each pixel names itself
    boxes = np.array([[10.0, 20.0, 130.0, 90.0], [-50.0, -30.0, 40.0, 200.0], [150.0, 100.0, 170.0, 119.0]])
    got = _sample(depth, boxes, (120, 160))  # colour 160x120, depth 80x60: half scale
    for box, samples in zip(boxes, got):
        want = []
        for r in range(GRID):
            y = box[1] + (box[3] - box[1]) * (r + 0.5) / GRID
            for c in range(GRID):
                x = box[0] + (box[2] - box[0]) * (c + 0.5) / GRID
                want.append(min(max(int(y * 0.5), 0), h - 1) * 1000 + min(max(int(x * 0.5), 0), w - 1))
        np.testing.assert_array_equal(samples, want)


def test_depth_images_are_float32_metres_valid_from_5_cm_to_100_m_inclusive_and_one_row_is_an_image():
    metres = np.array([[0.049, 0.05, 100.0, 100.5, 1.0]], np.float32)
    got = depth_from_fields("32FC1", 1, 5, 20, metres.tobytes())
    assert got.dtype == np.float32 and got.shape == (1, 5)
    np.testing.assert_array_equal(np.isnan(got), [[True, False, False, True, False]])
    column = depth_from_fields("16UC1", 3, 1, 2, np.array([50, 49, 7000], "<u2").tobytes())
    assert column.shape == (3, 1) and np.isnan(column[1, 0]) and column[2, 0] == pytest.approx(7.0)
    with pytest.raises(ValueError, match="needs 16: truncated"):
        depth_from_fields("32FC1", 2, 2, 8, bytes(10))
    for height, width in [(0, 2), (2, 0)]:
        with pytest.raises(ValueError, match="step must be at least"):
            depth_from_fields("32FC1", height, width, 8, bytes(16))


@pytest.mark.parametrize("k,ok", [
    ([500, 0, 320, 0, 500, 0, 0, 0, 1], True),  # cy = 0 is a principal point like any other
    ([0.5, 0, 320, 0, 0.5, 240, 0, 0, 1], True),  # tiny but positive focal lengths are still a camera
    ([0, 0, 320, 0, 500, 240, 0, 0, 1], False), ([500, 0, 320, 0, 0, 240, 0, 0, 1], False),
    ([-500, 0, 320, 0, 500, 240, 0, 0, 1], False), ([500, 0, 320, 0, -500, 240, 0, 0, 1], False),
    ([500, 0, float("nan"), 0, 500, 240, 0, 0, 1], False), ([500, 0, 320, 0, 500, 240, 0, 0], False),
])
def test_k_needs_nine_finite_numbers_and_positive_focal_lengths(k, ok):
    if ok:
        assert Intrinsics.from_k(k) == Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]))
    else:
        with pytest.raises(ValueError, match="is the camera calibrated"):
            Intrinsics.from_k(k)


def test_stamp_pairing_keeps_the_latest_eight_and_pairs_exactly_at_the_slop():
    pairing = StampPairing(0.25)
    for i in range(9):
        pairing.add(float(i), i)
    assert pairing.nearest(0.0) is None and pairing.nearest(1.0) == 1  # the first of nine is forgotten
    assert pairing.nearest(8.25) == 8 and pairing.nearest(8.5) is None  # a stamp exactly slop away still pairs
    assert StampPairing(10.0).slop == 10.0
    with pytest.raises(ValueError, match="depth_sync_slop"):
        StampPairing(10.5)


def _cluster_reference(samples: list[float], config: DepthConfig) -> tuple[float, float] | None:
    """The object's depth and depth extent from one box's samples, the rule of ``core/depth.py``'s docstring
    written out box by box: 2 % bins from 5 cm; the nearest window of three bins holding ``needed`` samples starts
    the object; from its first bin holding at least max(2, 1 %) of the samples the object goes on while bins hold
    that many; the median of its samples is the depth, their spread the extent. None: no object."""
    import math

    from yolov5_dpu_ros.core.depth import _BINS, BIN, MIN_DEPTH_M

    n = len(samples)
    valid = [s for s in samples if math.isfinite(s)]
    needed = max(3, math.ceil(config.min_fraction * n))
    if len(valid) < needed:
        return None
    bin_of = {s: min(max(int(math.log(s / MIN_DEPTH_M) / math.log1p(BIN)), 0), _BINS - 2) for s in valid}
    counts = [0] * (_BINS - 1)
    for s in valid:
        counts[bin_of[s]] += 1
    first = next((b for b in range(_BINS - 3) if counts[b] + counts[b + 1] + counts[b + 2] >= needed), None)
    if first is None:
        return None
    enough = max(2, int(0.01 * n))
    start = next((b for b in range(first, first + 3) if counts[b] >= enough), first)
    end = start
    while end + 1 < _BINS - 1 and counts[end + 1] >= enough:
        end += 1
    members = sorted(s for s in valid if start <= bin_of[s] <= end)
    if not members:
        return None
    half = (len(members) - 1) / 2
    median = (members[math.floor(half)] + members[math.ceil(half)]) / 2
    return median, members[-1] - members[0]


def _scene(rng: np.random.Generator) -> np.ndarray:
    """24x24 samples of one box: up to three surfaces at random depths and shares, noise, holes."""
    from yolov5_dpu_ros.core.depth import GRID

    near_or_far = rng.choice([(0.3, 30.0), (0.05, 0.06), (97.0, 100.0)], p=[0.7, 0.15, 0.15])
    depths = rng.uniform(*near_or_far, 3)  # also the first and the last bins, at 5 cm and near 100 m
    shares = rng.dirichlet(np.ones(3)) * rng.uniform(0.02, 1.0)
    pick = rng.choice(4, GRID * GRID, p=[*shares, 1 - shares.sum()])
    noise = rng.normal(0, rng.choice([0.002, 0.01, 0.03]), GRID * GRID)
    values = np.where(pick < 3, depths[np.minimum(pick, 2)] * (1 + noise), np.nan)
    values[rng.random(GRID * GRID) < rng.choice([0.0, 0.3, 0.9])] = 0.0  # holes
    return values.reshape(GRID, GRID).astype(np.float32)


def _one_box_per_pixel(depth: np.ndarray, config: DepthConfig | None = None):
    """boxes_3d on a 24x24 depth image with the box covering it: each sample is exactly one pixel."""
    from yolov5_dpu_ros.core.depth import GRID

    depth = np.where((depth >= 0.05) & (depth <= 100.0), depth, np.nan)
    return boxes_3d(np.array([[0.0, 0.0, GRID, GRID]]), depth, (GRID, GRID), Intrinsics(20.0, 20.0, 12.0, 12.0),
                    config)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.08, 0.02, 0.3, 0.005]))
def test_the_depth_of_a_box_follows_the_written_out_clustering_rule(seed, min_fraction):
    config = DepthConfig(min_fraction=min_fraction)
    depth = _scene(np.random.default_rng(seed))
    got = _one_box_per_pixel(depth, config)
    samples = np.where((depth >= 0.05) & (depth <= 100.0), depth, np.nan).astype(np.float64).ravel().tolist()
    want = _cluster_reference(samples, config)
    assert bool(got.valid[0]) == (want is not None)
    if want is None:
        assert got.center[0].tolist() == [0.0, 0.0, 0.0] and got.size[0].tolist() == [0.0, 0.0, 0.0]
        return
    assert got.center[0, 2] == pytest.approx(want[0], rel=1e-6)
    assert got.size[0, 2] == pytest.approx(min(max(want[1], config.min_extent_m), config.max_extent_m), rel=1e-6)
    assert got.center[0, :2] == pytest.approx([0.0, 0.0], abs=1e-9)  # the box centre is the principal point
    assert got.size[0, :2] == pytest.approx([24 * want[0] / 20.0] * 2, rel=1e-6)


def test_the_clustering_thresholds_hold_exactly():
    """47 of 576 samples (8 %, rounded up) make an object, 46 do not; a bin holding 5 samples (1 %) continues the
    object, one holding 4 ends it."""
    from yolov5_dpu_ros.core.depth import GRID

    def samples(*groups):
        values = np.full(GRID * GRID, np.nan, np.float32)
        at = 0
        for count, metres in groups:
            values[at:at + count] = metres
            at += count
        return values.reshape(GRID, GRID)

    assert _one_box_per_pixel(samples((47, 2.0))).valid[0] and not _one_box_per_pixel(samples((46, 2.0))).valid[0]
    fine = DepthConfig(min_extent_m=0.01)
    continued = _one_box_per_pixel(samples((60, 2.0), (5, 2.04), (200, 6.0)), fine)  # 2.04 m: the next 2 % bin
    ended = _one_box_per_pixel(samples((60, 2.0), (4, 2.04), (200, 6.0)), fine)
    assert continued.size[0, 2] == pytest.approx(0.04, rel=1e-5) and continued.center[0, 2] == pytest.approx(2.0)
    assert ended.size[0, 2] == pytest.approx(0.01) and ended.center[0, 2] == pytest.approx(2.0)
    sparse = _one_box_per_pixel(samples((1, 2.0), (1, 2.04), (1, 2.08)), DepthConfig(min_fraction=0.005))
    assert sparse.valid[0] and sparse.center[0, 2] == pytest.approx(2.0)  # no bin populated: the window's first
    assert len(boxes_3d(np.zeros((0, 4)), np.ones((4, 4), np.float32), (4, 4), INTRINSICS).valid) == 0
    empty = boxes_3d(np.zeros((0, 4)), np.ones((4, 4), np.float32), (4, 4), INTRINSICS)
    assert empty.center.shape == empty.size.shape == (0, 3) and empty.valid.dtype == bool


@pytest.mark.parametrize("kwargs,message", [
    ({"scale": 0.0}, "depth_scale"), ({"scale": -0.001}, "depth_scale"), ({"scale": "mm"}, "depth_scale"),
    ({"min_fraction": 0.0}, "min_fraction"), ({"min_fraction": 1.5}, "min_fraction"),
    ({"min_fraction": None}, "min_fraction"),
])
def test_depth_settings_are_checked_naming_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthConfig(**kwargs)


def test_depth_settings_are_stored_as_floats():
    config = DepthConfig(scale=1, min_fraction=1)
    assert type(config.scale) is float and config.scale == 1.0 and type(config.min_fraction) is float
    assert DepthConfig().scale is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_boxes_of_one_frame_are_measured_each_as_if_alone(seed):
    """Vectorised over the detections of a frame: three boxes side by side in one call give what each gives alone."""
    from yolov5_dpu_ros.core.depth import GRID

    rng = np.random.default_rng(seed)
    scenes = [np.where((s >= 0.05) & (s <= 100.0), s, np.nan) for s in (_scene(rng) for _ in range(3))]
    depth = np.concatenate(scenes, axis=1).astype(np.float32)
    boxes = np.array([[k * GRID, 0.0, (k + 1) * GRID, GRID] for k in range(3)])
    k = Intrinsics(20.0, 20.0, 36.0, 12.0)
    together = boxes_3d(boxes, depth, depth.shape, k)
    for i in range(3):
        alone = boxes_3d(boxes[i:i + 1], depth, depth.shape, k)
        assert together.valid[i] == alone.valid[0]
        np.testing.assert_array_equal(together.center[i], alone.center[0])
        np.testing.assert_array_equal(together.size[i], alone.size[0])


def _samples_at(values: dict[float, int]) -> np.ndarray:
    """A 24x24 box (one pixel a sample): ``count`` samples at each depth, the rest invalid."""
    from yolov5_dpu_ros.core.depth import GRID

    flat = np.full(GRID * GRID, np.nan, np.float32)
    flat[:sum(values.values())] = np.repeat(list(values), list(values.values()))
    return flat.reshape(GRID, GRID)


@pytest.mark.parametrize("far,valid", [(46, False), (47, True)])
def test_an_object_near_100_m_needs_as_many_samples_as_any_other(far, valid):
    """The farthest window of bins (96.4 to 100 m) holds the same threshold: 47 of 576 samples make an object,
    46 do not (the bin of invalid samples beside it counts nothing), with sparse valid samples elsewhere."""
    scattered = dict.fromkeys((0.3, 0.6, 1.2, 2.4, 4.8, 9.6, 19.2, 38.4, 0.15, 76.8), 1)
    depth = _samples_at({99.0: far, **scattered})
    got = _one_box_per_pixel(depth)
    want = _cluster_reference(depth.astype(np.float64).ravel().tolist(), DepthConfig())
    assert bool(got.valid[0]) == valid == (want is not None)
    if valid:
        assert got.center[0, 2] == pytest.approx(99.0) == pytest.approx(want[0])


def test_an_object_reaching_the_last_bin_keeps_its_farthest_samples():
    """Samples at 97 m and 99.5 m fill the last two bins with no gap: the object runs to the last bin."""
    depth = _samples_at({97.0: 300, 99.5: 276})
    got = _one_box_per_pixel(depth)
    median, extent = _cluster_reference(depth.astype(np.float64).ravel().tolist(), DepthConfig())
    assert got.valid[0] and got.center[0, 2] == pytest.approx(median) == pytest.approx(97.0)
    assert got.size[0, 2] == pytest.approx(min(extent, DepthConfig().max_extent_m)) and extent == pytest.approx(2.5)


def test_each_box_starts_its_object_at_its_own_first_populated_bin():
    """Two boxes in one call: the second's nearest dense window starts on a bin holding one stray sample, so its
    object starts one bin later; the first box, elsewhere in depth, must not decide that."""
    from yolov5_dpu_ros.core.depth import GRID

    depth = np.concatenate([_samples_at({1.0: 576}), _samples_at({1.96: 1, 2.0: 60})], axis=1)
    boxes = np.array([[0.0, 0.0, GRID, GRID], [GRID, 0.0, 2 * GRID, GRID]])
    k = Intrinsics(20.0, 20.0, 24.0, 12.0)
    together = boxes_3d(boxes, depth, depth.shape, k)
    median, extent = _cluster_reference(_samples_at({1.96: 1, 2.0: 60}).astype(np.float64).ravel().tolist(),
                                        DepthConfig())
    assert together.valid.tolist() == [True, True] and extent == 0.0  # the stray 1.96 m sample is left out
    assert together.center[1, 2] == pytest.approx(median) == pytest.approx(2.0)
    assert together.size[1, 2] == pytest.approx(DepthConfig().min_extent_m)
