"""Overlapped workers: input order kept, every frame accounted for, newest frame wins, fair sources.

The accelerator is the VART-contract emulator (TEST DOUBLE: no KV260 here; see vart_emulator.py)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from logcapture import logged
from props import HealthCheck, given, settings, st
from vart_emulator import EmulatedDpu, emulated_backend

from demo.shapes import make_sample
from yolov5_dpu_ros.core.detector import Detector
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.core.pipeline import Detected, DetectionPipeline, Failed
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

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
    assert all(isinstance(r.outcome, Detected) for r in results)


def test_bad_frames_are_counted_and_do_not_stop_the_workers(workers):
    results, on_result = _collect()
    pipe = DetectionPipeline(workers(2), on_result)
    pipe.submit(np.zeros((0, 5, 3), np.uint8), tag="empty")
    pipe.wait_idle(5)
    pipe.submit(FRAMES[0], encoding="nv12", tag="encoding")
    pipe.wait_idle(5)
    pipe.submit(FRAMES[1], tag="good")
    pipe.wait_idle(5)
    pipe.close()
    assert [r.tag for r in results] == ["empty", "encoding", "good"]
    assert "empty image" in results[0].outcome.error and "unsupported image encoding" in results[1].outcome.error
    assert isinstance(results[2].outcome, Detected) and pipe.counts.failed == 2 and pipe.counts.processed == 1


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
    from yolov5_dpu_ros.core.postprocess import PostprocessConfig

    results, on_result = _collect()
    pipe = DetectionPipeline(workers(3), on_result)
    pipe.set_config(PostprocessConfig(conf_threshold=0.99))
    assert all(d.config.conf_threshold == 0.99 for d in pipe.detectors)
    pipe.close()


@pytest.fixture(scope="module")
def onnx_workers():
    """Three Detectors on the demo model with the onnx backend (the pipeline's own accounting is under test)."""
    from yolov5_dpu_ros.backends.onnx import OnnxBackend

    meta = load_meta(DEMO_META)
    first = Detector(OnnxBackend(DEMO_ONNX, meta, threads=1), meta)
    return [first, first.worker(), first.worker()]


class _Closing:
    """A Detector wrapper for one pipeline: the module's detectors outlive each pipeline's close()."""

    def __init__(self, detector):
        self.detector, self.config = detector, detector.config

    def detect_split(self, image, encoding):
        return self.detector.detect_split(image, encoding)

    def close(self):
        pass


def test_a_failing_consumer_is_counted_and_the_pipeline_goes_on(onnx_workers):
    delivered = []

    def on_result(r):
        delivered.append(r.seq)
        if r.tag % 3 == 0:
            raise RuntimeError("publisher's context is invalid")  # as a publish during ROS shutdown

    pipe = DetectionPipeline([_Closing(d) for d in onnx_workers[:2]], on_result)
    with logged("yolov5_dpu_ros.core.pipeline", logging.ERROR) as messages:
        for i in range(9):
            pipe.submit(FRAMES[i % len(FRAMES)], tag=i)
            assert pipe.wait_idle(10)
        pipe.close()
    assert delivered == list(range(9)) and pipe.counts.callback_errors == 3 and pipe.counts.processed == 9
    assert any("on_result raised" in m for m in messages)


def test_a_backend_fault_mid_run_is_a_failed_frame(onnx_workers, monkeypatch):
    results, on_result = _collect()
    worker = _Closing(onnx_workers[0])
    pipe = DetectionPipeline([worker], on_result)
    pipe.submit(FRAMES[0], tag=0)
    assert pipe.wait_idle(10)
    monkeypatch.setattr(worker.detector.backend, "run", lambda *a: (_ for _ in ()).throw(OSError("DMA timeout")))
    pipe.submit(FRAMES[1], tag=1)
    assert pipe.wait_idle(10)
    monkeypatch.undo()
    pipe.submit(FRAMES[2], tag=2)
    assert pipe.wait_idle(10)
    pipe.close()
    assert [r.tag for r in results] == [0, 1, 2] and "OSError: DMA timeout" in results[1].outcome.error
    assert (pipe.counts.processed, pipe.counts.failed) == (2, 1)


_JOBS = st.lists(st.tuples(st.sampled_from(["front", "rear", "top"]), st.sampled_from(["good", "empty", "odd"]),
                           st.booleans(), st.sampled_from([0.0, 0.0, 0.002])), min_size=1, max_size=14)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=_JOBS, n_workers=st.integers(1, 3))
def test_every_frame_is_accounted_for_in_order_and_close_returns(onnx_workers, jobs, n_workers):
    """Property: whatever frames, failures and consumer errors come, submitted = processed + failed + dropped;
    each result is delivered once, in submission order (so in order per source); failing consumers are
    counted; wait_idle and close return."""
    images = {"good": FRAMES[0], "empty": np.zeros((0, 4, 3), np.uint8), "odd": np.zeros((4, 4, 5), np.uint8)}
    delivered = []
    raising = {i for i, (_, _, raises, _) in enumerate(jobs) if raises}

    def on_result(r):
        delivered.append(r)
        if r.tag in raising:
            raise ValueError("consumer failed")

    pipe = DetectionPipeline([_Closing(d) for d in onnx_workers[:n_workers]], on_result)
    for i, (source, kind, _, pause) in enumerate(jobs):
        pipe.submit(images[kind], tag=i, source=source)
        time.sleep(pause)
    assert pipe.wait_idle(30)
    closer = threading.Thread(target=pipe.close)
    closer.start()
    closer.join(30)
    assert not closer.is_alive()
    c = pipe.counts
    assert c.submitted == len(jobs) == c.processed + c.failed + c.dropped
    assert len(delivered) == c.processed + c.failed
    seqs = [r.seq for r in delivered]
    assert len(seqs) == len(set(seqs))  # each frame delivered once; the order holds per source (below)
    for source in ("front", "rear", "top"):
        tags = [r.tag for r in delivered if r.source == source]
        assert tags == sorted(tags)
    assert c.failed == sum(1 for r in delivered if isinstance(r.outcome, Failed))
    assert all(isinstance(r.outcome, Detected) == (jobs[r.tag][1] == "good") for r in delivered)
    assert c.callback_errors == sum(1 for r in delivered if r.tag in raising)
    assert sum(pipe.dropped_by_source.values()) == c.dropped
