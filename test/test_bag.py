"""yolov5-dpu bag / compare on real rosbag2 (sqlite3, mcap) and ROS 1 bags written with rosbags."""

from __future__ import annotations

from pathlib import Path

import pytest
from bag_helpers import bag_messages, interrupt_at_frame, write_rgbd_bag, write_ros1_bag

from demo.make_demo_inputs import FRAME_ID, IMAGE_TOPIC, moving_shapes, write_bag
from yolov5_dpu_ros.cli.main import main
from yolov5_dpu_ros.replay.bag_io import DETECTIONS

pytestmark = pytest.mark.needs("rosbags", "onnxruntime")

DEMO_BAG = Path(__file__).resolve().parents[1] / "demo" / "shapes_camera_bag"


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "camera_mcap"
    write_bag(path, list(moving_shapes(3, 12)), storage="mcap")
    return path


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_one_array_per_frame_with_the_image_header(tmp_path, mcap_bag, storage):
    source = DEMO_BAG if storage == "sqlite3" else mcap_bag
    out = tmp_path / "detections"
    assert main(["bag", str(source), "--out", str(out), "--storage", storage, "--no-progress"]) == 0
    images = bag_messages(source, "sensor_msgs/msg/Image")
    arrays = bag_messages(out, DETECTIONS)
    assert len(arrays) == len(images) > 0
    for (_, t_in, img), (topic, t_out, arr) in zip(images, arrays):
        assert topic == "/detections" and t_out == t_in
        assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (img.header.stamp.sec, img.header.stamp.nanosec)
        assert arr.header.frame_id == img.header.frame_id == FRAME_ID
        for det in arr.detections:
            assert det.header.frame_id == FRAME_ID
            assert det.results[0].hypothesis.class_id in ("circle", "square", "triangle", "star", "cross")
            assert 0 <= det.bbox.center.position.x <= img.width and det.bbox.size_x > 0
    assert sum(len(a.detections) for _, _, a in arrays) >= len(arrays)  # the shapes are found
    assert (out / "metadata.yaml").is_file()
    timings = bag_messages(out, "diagnostic_msgs/msg/DiagnosticArray")
    assert len(timings) == len(images) and {kv.key for kv in timings[0][2].status[0].values} == {
        "preprocess", "inference", "postprocess", "latency ms (callback to publish)", "age ms (stamp to publish)"}
    for _, _, record in timings:
        values = {kv.key: float(kv.value) for kv in record.status[0].values}
        stages = values["preprocess"] + values["inference"] + values["postprocess"]
        assert stages <= values["latency ms (callback to publish)"] <= values["age ms (stamp to publish)"] + 1e-3
    assert all(d.id == "" for _, _, a in arrays for d in a.detections)  # no --track: no IDs


def test_bag_track_writes_ids_that_follow_the_moving_shapes(tmp_path):
    source = tmp_path / "camera"
    write_bag(source, list(moving_shapes(7, 30)))
    out = tmp_path / "tracked"
    assert main(["bag", str(source), "--out", str(out), "--no-progress", "--track"]) == 0
    arrays = [a for _, _, a in bag_messages(out, DETECTIONS)]
    ids = [d.id for a in arrays for d in a.detections]
    assert ids[: len(arrays[0].detections)] == [""] * len(arrays[0].detections)  # the first frame: tentative
    later = [d.id for a in arrays[5:] for d in a.detections]
    assert later and sum(i != "" for i in later) >= 0.8 * len(later)
    per_frame = [[d.id for d in a.detections if d.id] for a in arrays]
    assert all(len(f) == len(set(f)) for f in per_frame)
    assert len({i for f in per_frame for i in f}) <= 2 * max(len(f) for f in per_frame)  # IDs persist


def test_compressed_topic_and_ros1_bag(tmp_path):
    ros1 = tmp_path / "camera.bag"
    write_ros1_bag(ros1, list(moving_shapes(4, 5)))
    assert main(["bag", str(ros1), "--out", str(tmp_path / "o1"), "--no-progress"]) == 0
    arrays = bag_messages(tmp_path / "o1", DETECTIONS)
    assert [a.header.stamp.sec for _, _, a in arrays] == [50, 51, 52, 53, 54]
    assert {a.header.frame_id for _, _, a in arrays} == {"cam1"}

    assert main(["bag", str(DEMO_BAG), "--out", str(tmp_path / "o2"), "--topics", IMAGE_TOPIC + "/compressed",
                 "--no-progress"]) == 0
    assert len(bag_messages(tmp_path / "o2", DETECTIONS)) == len(bag_messages(DEMO_BAG, "sensor_msgs/msg/Image"))


def test_compare_a_run_with_itself_agrees_fully(tmp_path, capsys):
    """The comparison itself needs no plotting library (a ROS machine may have none); the plot is the next test's."""
    out = tmp_path / "run"
    assert main(["bag", str(DEMO_BAG), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(out)]) == 0
    text = capsys.readouterr().out
    assert "matched by stamp 20, missing in B 0, missing in A 0" in text
    assert "precision of B against A: 1.0000  recall: 1.0000" in text and "mean |delta|: 0.0000" in text


@pytest.mark.needs("matplotlib")
def test_compare_plots_a_run_against_itself(tmp_path):
    out = tmp_path / "run"
    assert main(["bag", str(DEMO_BAG), "--out", str(out), "--no-progress"]) == 0
    assert main(["compare", str(out), str(out), "--plot", str(tmp_path / "cmp.png")]) == 0
    import cv2

    plot = cv2.imread(str(tmp_path / "cmp.png"))
    assert plot is not None and plot.shape == (750, 1100, 3) and (plot < 250).any()


def test_compare_plot_has_axes_legend_and_marks_missing_frames(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed here")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["bag", str(DEMO_BAG), "--out", str(a), "--no-progress"]) == 0
    frames = list(moving_shapes(4, 20))
    write_bag(tmp_path / "short", frames[:12])
    assert main(["bag", str(tmp_path / "short"), "--out", str(b), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "cmp.svg")]) == 0
    svg = (tmp_path / "cmp.svg").read_text()
    for label in ("time from the first header stamp (s)", "detections per frame", "A a: detections",
                  "B b: detections", "B b: frame missing (8)", "preprocess (ms)", "inference (ms)",
                  "postprocess (ms)", "median"):
        assert label in svg, label


@pytest.mark.parametrize("plot,message", [("cmp.xyz", "no writer for '.xyz'"), ("nope/cmp.png", "does not exist")])
def test_compare_refuses_a_plot_it_cannot_write_before_reading(tmp_path, capsys, plot, message):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed here")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(tmp_path / plot)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_compare_plot_without_matplotlib_says_how_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["compare", str(DEMO_BAG), str(DEMO_BAG), "--plot", str(tmp_path / "c.png")]) == 2
    assert "pip install 'yolov5_dpu_ros[plot]'" in capsys.readouterr().err


def test_a_failing_run_leaves_no_output_and_can_run_again(tmp_path, capsys):
    out = tmp_path / "out"
    bad_meta = tmp_path / "bad.yaml"
    bad_meta.write_text("input_size: [320, 320]\n")
    assert main(["bag", str(DEMO_BAG), "--out", str(out), "--model-meta", str(bad_meta), "--no-progress",
                 "--annotate", str(tmp_path / "videos")]) == 2
    assert "missing keys" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "videos").exists()
    assert main(["bag", str(DEMO_BAG), "--out", str(out), "--no-progress"]) == 0


def test_a_run_interrupted_midway_removes_its_partial_output(tmp_path, monkeypatch):
    interrupt_at_frame(monkeypatch, 3)
    out = tmp_path / "out"
    assert main(["bag", str(DEMO_BAG), "--out", str(out), "--no-progress"]) == 130
    assert not out.exists()


def test_compare_sees_a_different_model_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["bag", str(DEMO_BAG), "--out", str(a), "--no-progress"]) == 0
    assert main(["bag", str(DEMO_BAG), "--out", str(b), "--no-progress", "--conf", "0.8"]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    recall = float(text.split("recall: ")[1].split()[0])
    assert 0 < recall < 1 and "precision of B against A: 1.0000" in text  # stricter B: fewer, all agreeing


def _corrupt_rosbag2(p: Path) -> Path:
    (p / "junk").mkdir()
    (p / "junk" / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    return p / "junk"


def _corrupt_ros1(p: Path) -> Path:
    (p / "x.bag").write_bytes(b"#ROSBAG V2.0\n garbage")
    return p / "x.bag"


@pytest.mark.parametrize("make,args,message", [
    (lambda p: p / "nope", [], "no such bag"),
    (_corrupt_rosbag2, [], "cannot read this bag"),
    (_corrupt_ros1, [], "cannot read this bag"),
    (lambda p: DEMO_BAG, ["--topics", "/nope/image"], "no image topic.*image topics in this bag: /camera/image_raw"),
])
def test_bad_bags_exit_nonzero_with_one_line(tmp_path, capsys, make, args, message):
    import re

    code = main(["bag", str(make(tmp_path)), "--out", str(tmp_path / "out"), "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(message, err[0])


def test_existing_output_and_missing_compare_input(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert main(["bag", str(DEMO_BAG), "--out", str(tmp_path / "out")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "no such bag" in capsys.readouterr().err


def test_bag_depth_topic_writes_detections_3d_beside_the_2d_ones(tmp_path):
    source = tmp_path / "rgbd"
    samples, truths = write_rgbd_bag(source)
    out = tmp_path / "out"
    assert main(["bag", str(source), "--out", str(out), "--no-progress", "--topics", "/camera/color/image_raw",
                 "--depth-topic", "/camera/aligned_depth_to_color/image_raw", "--track"]) == 0
    arrays_2d = bag_messages(out, DETECTIONS)
    arrays_3d = bag_messages(out, "vision_msgs/msg/Detection3DArray")
    assert len(arrays_3d) == len(arrays_2d) == len(samples)
    matched = 0
    for (_, _, a2), (topic, _, a3), zs in zip(arrays_2d, arrays_3d, truths):
        assert topic == "/detections_3d" and a3.header.stamp == a2.header.stamp
        assert a3.header.frame_id == "camera_color_optical_frame"
        by_id = {(d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 6)): d for d in a2.detections}
        for d3 in a3.detections:
            d2 = by_id[(d3.results[0].hypothesis.class_id, round(d3.results[0].hypothesis.score, 6))]
            assert d3.id == d2.id
            u, v = d2.bbox.center.position.x, d2.bbox.center.position.y
            z = d3.bbox.center.position.z
            assert d3.bbox.center.position.x == pytest.approx((u - 320) * z / 500, rel=1e-6)
            assert d3.bbox.center.position.y == pytest.approx((v - 240) * z / 500, rel=1e-6)
            assert d3.bbox.size.x == pytest.approx(d2.bbox.size_x * z / 500, rel=1e-6)
            assert min(abs(z - t) for t in zs) <= 0.02 * z  # on some object's surface, not the 5 m wall
            matched += 1
    assert matched >= len(samples)


def test_bag_depth_topic_that_is_not_there_is_refused_before_writing(tmp_path, capsys):
    source = tmp_path / "rgbd"
    write_rgbd_bag(source, frames=1)
    out = tmp_path / "out"
    assert main(["bag", str(source), "--out", str(out), "--no-progress", "--topics", "/camera/color/image_raw",
                 "--depth-topic", "/camera/depth/nope"]) == 2
    assert "no /camera/depth/nope of type sensor_msgs/msg/Image" in capsys.readouterr().err and not out.exists()
