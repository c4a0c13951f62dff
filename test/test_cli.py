"""The yolov5-dpu detect command on images, folders and a video, and its one-line errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import random_bgr

from yolov5_dpu_ros.cli.main import main


@pytest.fixture()
def model_args(test_model):
    onnx_path, _, _ = test_model
    return ["--model", str(onnx_path), "--model-meta", str(onnx_path.with_suffix(".yaml")), "--conf", "0.05"]


def _write_images(folder, n, rng):
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i:02d}.png"), random_bgr(rng, 240 + 10 * i, 320))


def test_folder_to_jsonl_with_annotations_and_summary(tmp_path, model_args, capsys):
    rng = np.random.default_rng(0)
    _write_images(tmp_path / "imgs", 3, rng)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "det.jsonl"
    code = main(["detect", str(tmp_path / "imgs"), "--jsonl", str(out), "--annotate", str(tmp_path / "ann"),
                 *model_args])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"].rsplit("/", 1)[1] for r in records] == ["img00.png", "img01.png", "img02.png"]
    assert records[1]["height"] == 250 and records[1]["width"] == 320
    assert sum(len(r["detections"]) for r in records) > 0
    d = next(d for r in records for d in r["detections"])
    assert set(d) == {"class_id", "class_name", "score", "xyxy"} and 0 < d["score"] <= 1
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["img00.png", "img01.png", "img02.png"]
    err = capsys.readouterr().err
    assert "3 processed, 1 unreadable (skipped)" in err
    assert "median ms per frame: preprocess" in err
    assert "skipped " in err and "broken.jpg" in err


def test_annotations_mirror_the_input_folders_so_same_names_stay_apart(tmp_path, model_args, capsys):
    rng = np.random.default_rng(3)
    _write_images(tmp_path / "imgs" / "a", 1, rng)
    _write_images(tmp_path / "imgs" / "b", 1, rng)
    _write_images(tmp_path / "more", 1, rng)
    assert main(["detect", str(tmp_path / "imgs"), "--annotate", str(tmp_path / "ann"), *model_args]) == 0
    written = sorted(str(p.relative_to(tmp_path / "ann")) for p in (tmp_path / "ann").rglob("*.png"))
    assert written == ["a/img00.png", "b/img00.png"]
    a, b = (cv2.imread(str(tmp_path / "ann" / x / "img00.png")) for x in "ab")
    assert a is not None and b is not None and not np.array_equal(a, b)
    assert main(["detect", str(tmp_path / "imgs"), str(tmp_path / "more"), "--annotate", str(tmp_path / "two"),
                 *model_args]) == 0
    written = sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*.png"))
    assert written == ["imgs/a/img00.png", "imgs/b/img00.png", "more/img00.png"]


def test_video_gives_one_record_per_frame(tmp_path, model_args, capsys):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(1)
    for _ in range(6):
        writer.write(random_bgr(rng, 240, 320))
    writer.release()
    code = main(["detect", str(path), "--annotate", str(tmp_path / "ann"), *model_args])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [json.loads(line)["frame"] for line in lines] == list(range(6))
    cap = cv2.VideoCapture(str(tmp_path / "ann" / "clip_det.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.png", "no such file or folder"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "unsupported input type '.txt'"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "folder holds no images"),
])
def test_bad_inputs_exit_nonzero_with_one_line(tmp_path, model_args, capsys, make, message):
    code = main(["detect", str(make(tmp_path)), *model_args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0]


def test_bad_model_or_settings_exit_nonzero(tmp_path, model_args, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    assert main(["detect", str(img), *model_args, "--conf", "1.5"]) == 2
    assert "conf_threshold must be in (0, 1)" in capsys.readouterr().err
    assert main(["detect", str(img), "--model-meta", str(tmp_path / "nope.yaml")]) == 2
    assert "model metadata file not found" in capsys.readouterr().err


@pytest.fixture()
def one_image(tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    return img


@pytest.mark.parametrize("args,message", [
    (["--jsonl", "{tmp}/missing/out.jsonl"], "folder .*missing does not exist; create it first"),
    (["--jsonl", "{tmp}"], "is a folder: give a file name"),
    (["--annotate", "{tmp}/a.png"], "is a file: give a folder name"),
    (["--max-det", "0"], "max_detections must be in \\[1, inf\\]"),
    (["--conf", "nan"], "conf_threshold must be a finite number"),
    (["--iou", "inf"], "iou_threshold must be a finite number"),
    (["--threads", "-1"], "threads must be 0"),
    (["--classes", "-2"], "classes\\[\\] must be in"),
    (["--backend", "dpu", "--model", "{tmp}/a.png"], "only files named \\*.xmodel"),
    (["--backend", "dpu", "--dpu-fingerprint", "B4096"], "fingerprint 'B4096' is not a number"),
])
def test_every_bad_option_exits_2_with_one_line_and_writes_nothing(tmp_path, one_image, capsys, args, message):
    import re

    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["detect", str(one_image), "--no-progress", *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_metadata_files_exit_2_with_one_line(tmp_path, one_image, capsys):
    for content in (b"\xff\xfe\x00\x80 binary", b"names: {0: a, '1': b}\n", b"anchors: [[.inf, 1]]\n"):
        meta = tmp_path / "m.yaml"
        meta.write_bytes(content)
        assert main(["detect", str(one_image), "--model-meta", str(meta)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "m.yaml: " in err[0] and "Traceback" not in err[0]


def test_a_truncated_jpeg_in_a_folder_is_counted_unreadable(tmp_path, model_args, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    data = cv2.imencode(".jpg", random_bgr(np.random.default_rng(2), 240, 320))[1].tobytes()
    (folder / "whole.jpg").write_bytes(data)
    (folder / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # cv2.imread would fill the rest with grey
    assert main(["detect", str(folder), "--no-progress", *model_args]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["source"].rsplit("/", 1)[1] for line in captured.out.splitlines()] == ["whole.jpg"]
    assert "1 processed, 1 unreadable" in captured.err and "no end-of-image marker" in captured.err


def test_two_workers_give_the_same_lines_in_the_same_order(tmp_path, model_args, capsys):
    rng = np.random.default_rng(3)
    _write_images(tmp_path / "imgs", 8, rng)
    (tmp_path / "imgs" / "img03.png").write_bytes(b"\x89PNG broken")
    outputs = []
    for workers in ("1", "2"):
        assert main(["detect", str(tmp_path / "imgs"), "--no-progress", "--workers", workers, *model_args]) == 0
        captured = capsys.readouterr()
        outputs.append([{k: v for k, v in json.loads(line).items() if k != "timings_ms"}
                        for line in captured.out.splitlines()])
        assert "7 processed, 1 unreadable" in captured.err
    assert outputs[0] == outputs[1] and len(outputs[0]) == 7


def test_the_readme_command_writes_jsonl_into_the_annotation_folder_it_creates(tmp_path, capsys):
    """README: yolov5-dpu detect demo/images --annotate out --jsonl out/detections.jsonl (out/ not there yet)."""
    from pathlib import Path

    images = Path(__file__).resolve().parents[1] / "demo" / "images"
    out = tmp_path / "out"
    assert main(["detect", str(images), "--annotate", str(out), "--jsonl", str(out / "detections.jsonl"),
                 "--no-progress"]) == 0
    assert len((out / "detections.jsonl").read_text().splitlines()) == len(list(images.glob("*.jpg")))
    assert "6 processed, 0 unreadable" in capsys.readouterr().err


def test_detect_track_on_a_folder_sequence_writes_track_ids(tmp_path, capsys):
    from demo.make_demo_inputs import moving_shapes

    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(moving_shapes(3, 20)):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame)
    jsonl = tmp_path / "out.jsonl"
    assert main(["detect", str(folder), "--track", "--fps", "15", "--no-progress", "--jsonl", str(jsonl),
                 "--annotate", str(tmp_path / "ann"), "--workers", "2"]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(20))
    assert all(d["track_id"] is None for d in records[0]["detections"])  # tentative on the first frame
    ids = [d["track_id"] for r in records[3:] for d in r["detections"]]
    assert ids and sum(i is not None for i in ids) >= 0.8 * len(ids)
    assert len({i for i in ids if i is not None}) <= 2 * max(len(r["detections"]) for r in records)
    assert main(["detect", str(folder), "--track", "--fps", "0", "--no-progress"]) == 2
    assert "--fps must be above 0" in capsys.readouterr().err
