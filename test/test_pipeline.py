"""Overlapped workers: input order kept, every frame accounted for, newest frame wins, fair sources.

The accelerator is the VART-contract emulator (TEST DOUBLE: no KV260 here; see vart_emulator.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from vart_emulator import EmulatedDpu, emulated_backend

from demo.shapes import make_sample
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.detector import Detector
from yolov5_dpu_ros.model_meta import load_meta
from yolov5_dpu_ros.pipeline import DetectionPipeline

FRAMES = [make_sample(9, "test", i, (320, 240)).image for i in range(6)]


@pytest.fixture()
def workers(tmp_path):
    meta = load_meta(DEMO_META)
    first = Detector(emulated_backend(EmulatedDpu(DEMO_ONNX, meta, latency_s=0.02), tmp_path), meta)

    def make(n):
        return [first] + [first.worker() for _ in range(n - 1)]

    return make


def _collect():
    results, lock = [], threading.Lock()

    def on_result(r):
        with lock:
            results.append(r)

    return results, on_result


@pytest.mark.parametrize("n", [1, 2, 3])
def test_results_leave_in_input_order_and_all_frames_are_counted(workers, n):
    results, on_result = _collect()
    pipe = DetectionPipeline(workers(n), on_result)
    for i in range(40):
        pipe.submit(FRAMES[i % len(FRAMES)], tag=i)
        time.sleep(0.004)  # faster than the 20 ms accelerator: some frames must be dropped
    assert pipe.wait_idle(10)
    pipe.close()
    seqs = [r.seq for r in results]
    assert seqs == sorted(seqs) and [r.tag for r in results] == seqs
    c = pipe.counts
    assert c.submitted == 40 and c.processed + c.failed + c.dropped == 40 and c.failed == 0
    assert c.dropped > 0 and len(results) == c.processed
    assert results[-1].tag == 39  # the newest frame is never the one dropped
    assert all(r.detections is not None for r in results)


def test_bad_frames_are_counted_and_do_not_stop_the_workers(workers):
    results, on_result = _collect()
    pipe = DetectionPipeline(workers(2), on_result)
    pipe.submit(np.zeros((0, 5, 3), np.uint8), tag="empty")
    pipe.wait_idle(5)
    pipe.submit(FRAMES[0], encoding="yuv422", tag="encoding")
    pipe.wait_idle(5)
    pipe.submit(FRAMES[1], tag="good")
    pipe.wait_idle(5)
    pipe.close()
    assert [r.tag for r in results] == ["empty", "encoding", "good"]
    assert "empty image" in results[0].error and "unsupported image encoding" in results[1].error
    assert results[2].error == "" and pipe.counts.failed == 2 and pipe.counts.processed == 1


def test_a_flooding_camera_does_not_starve_another(workers):
    results, on_result = _collect()
    pipe = DetectionPipeline(workers(1), on_result)
    for i in range(120):  # the busy camera offers a frame every 3 ms, the quiet one every ~120 ms
        pipe.submit(FRAMES[0], tag=("busy", i), source="busy")
        if i % 40 == 0:
            pipe.submit(FRAMES[1], tag=("quiet", i), source="quiet")
        time.sleep(0.003)
    pipe.wait_idle(10)
    pipe.close()
    quiet = [r for r in results if r.source == "quiet"]
    assert len(quiet) == 3  # every frame of the quiet camera got its turn
    assert pipe.counts.dropped > 0  # the busy one was throttled to what the DPU can take


def test_new_config_reaches_every_worker(workers):
    from yolov5_dpu_ros.postprocess import PostprocessConfig

    results, on_result = _collect()
    pipe = DetectionPipeline(workers(3), on_result)
    pipe.set_config(PostprocessConfig(conf_threshold=0.99))
    assert all(d.config.conf_threshold == 0.99 for d in pipe.detectors)
    pipe.close()
