"""The node's data flow without ROS: camera frames (1280x720 JPEG, as a /compressed topic brings them) into the
pipeline with 2 workers, as the node's image callback feeds it.

    python bench/bench_node_threads.py [--seconds 6] [--markdown bench/RESULTS_THREADS.md]

1. Decoding: a producer thread at 120 Hz (faster than the detector, so frames get replaced) either decodes each
   JPEG itself and submits the image (the callback before: every frame decoded on the executor's thread, also
   those replaced later), or submits the message and lets the worker that takes it decode it
   (``submit_lazy``). Output frames per second and CPU time per output frame (this process).
2. Ordering: a slow camera (5 Hz) alone, then beside a fast one (30 Hz: the cores are not saturated, so what
   is left is the ordering; and 120 Hz: they are); the slow camera's latency from submit to its result.
   Run on a checkout before the change, the same script measures the old global order (it falls back to
   decoding in the producer there, which is all that code could do).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from report import emit  # noqa: E402

from demo.shapes import make_sample  # noqa: E402
from yolov5_dpu_ros.core.conversions import image_from_compressed  # noqa: E402
from yolov5_dpu_ros.core.pipeline import DetectionPipeline  # noqa: E402

LAZY = hasattr(DetectionPipeline, "submit_lazy")


def detectors(workers: int):
    """The demo model through the package's own builder (whichever API the checkout has)."""
    from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

    try:
        from yolov5_dpu_ros.backends import OnnxSpec
        from yolov5_dpu_ros.core.workers import build_detectors

        return build_detectors(OnnxSpec(DEMO_ONNX), DEMO_META, workers)
    except ImportError:  # the checkout before the layout
        from yolov5_dpu_ros.core.detector import Detector

        first = Detector.from_files("onnx", DEMO_ONNX, DEMO_META, workers=workers)
        return [first] + [first.worker() for _ in range(workers - 1)]


def jpeg_frames(count: int = 8) -> list[bytes]:
    frames = []
    for i in range(count):
        image = cv2.resize(make_sample(9, "bench", i, (640, 360)).image, (1280, 720))
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return frames


def _decode(data: bytes):
    return image_from_compressed("jpeg", data), "bgr8"


def produce(pipeline, frames: list[bytes], rate: float, seconds: float, lazy: bool, source="cam",
            stamps: dict | None = None) -> int:
    """Submit frames at ``rate`` Hz for ``seconds``, as a camera callback would; returns how many."""
    period, start, n = 1.0 / rate, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        data = frames[n % len(frames)]
        tag = (source, time.perf_counter())
        if lazy:
            pipeline.submit_lazy(lambda d=data: _decode(d), tag=tag, source=source)
        else:
            pipeline.submit(*_decode(data), tag=tag, source=source)
        n += 1
        time.sleep(max(0.0, start + n * period - time.perf_counter()))
    return n


def decoding(frames: list[bytes], seconds: float) -> list[str]:
    rows = ["| decode in | camera frames | output fps | CPU ms per output frame | replaced |", "|---|---|---|---|---|"]
    for lazy in ([False, True] if LAZY else [False]):
        done: list = []
        pipeline = DetectionPipeline(detectors(2), done.append)
        cpu0, t0 = time.process_time(), time.perf_counter()
        sent = produce(pipeline, frames, 120.0, seconds, lazy)
        pipeline.wait_idle(30)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        dropped = pipeline.counts.dropped
        pipeline.close()
        rows.append(f"| {'the worker (submit_lazy)' if lazy else 'the producer (the callback)'} | {sent} | "
                    f"{len(done) / wall:.1f} | {cpu * 1e3 / max(len(done), 1):.1f} | {dropped} |")
    return rows


def ordering(frames: list[bytes], seconds: float) -> list[str]:
    rows = ["| slow camera (5 Hz) | frames | latency median ms | p95 ms |", "|---|---|---|---|"]
    for fast in (0.0, 30.0, 120.0):
        latency = []

        def on_result(result, latency=latency):
            source, submitted = result.tag
            if source == "slow":
                latency.append((time.perf_counter() - submitted) * 1e3)

        pipeline = DetectionPipeline(detectors(2), on_result)
        fast_thread = threading.Thread(target=produce, args=(pipeline, frames, fast or 1.0, seconds, LAZY, "fast"))
        if fast:
            fast_thread.start()
        produce(pipeline, frames, 5.0, seconds, LAZY, "slow")
        if fast:
            fast_thread.join()
        pipeline.wait_idle(30)
        pipeline.close()
        rows.append(f"| {f'beside a {fast:.0f} Hz camera' if fast else 'alone'} | {len(latency)} | "
                    f"{np.median(latency):.1f} | {np.percentile(latency, 95):.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    frames = jpeg_frames()
    lines = [f"## {'after' if LAZY else 'before'}: {os.cpu_count()} cores, 2 workers, 1280x720 JPEG, demo model", "",
             *decoding(frames, args.seconds), "", *ordering(frames, args.seconds)]
    return emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
