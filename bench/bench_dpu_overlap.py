"""DPU utilisation with 1, 2 and 3 workers, on the VART-contract emulator at a fixed 7 ms per run.

    python bench/bench_dpu_overlap.py [--seconds 4] [--markdown bench/RESULTS_DPU.md]

The emulator (a test double: no KV260 here) serialises runs on one DPU core like the KV260's single
B4096 and spends 7 ms per run in sleep, using no CPU, as the DPU would (the Vitis AI Library's
multi-thread yolov5n-640 rate on the KV260 is 138 fps, about 7 ms a frame). Its outputs are
generated heads with 20 objects. A camera thread offers 1280x720 frames faster than the DPU can
take them; the pipeline keeps the newest. Target: >= 90 % DPU utilisation with 2 workers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "test")]

from heads import clustered_heads  # noqa: E402
from report import emit  # noqa: E402
from vart_emulator import EmulatedDpu, emulated_backend  # noqa: E402

from yolov5_dpu_ros.core.detector import Detector  # noqa: E402
from yolov5_dpu_ros.core.model_meta import meta_from_dict  # noqa: E402
from yolov5_dpu_ros.core.pipeline import DetectionPipeline  # noqa: E402

LATENCY_S = 0.007
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
META = meta_from_dict({"input_size": [640, 640], "strides": [8, 16, 32], "anchors": ANCHORS,
                       "names": [str(i) for i in range(80)], "input_fix_point": 6,
                       "output_fix_points": [4, 4, 3]})


def run(workers: int, seconds: float, folder: Path) -> dict:
    heads = clustered_heads(META, np.random.default_rng(0), META.output_fix_points, 20)

    def replay(_input, outputs):
        for out, head in zip(outputs, heads):
            out[...] = head

    dpu = EmulatedDpu(None, META, latency_s=LATENCY_S, compute=replay)
    first = Detector(emulated_backend(dpu, folder), META)
    timings = []
    pipe = DetectionPipeline([first] + [first.worker() for _ in range(workers - 1)],
                             lambda r: timings.append(r.outcome.timings))
    rng = np.random.default_rng(1)
    frames = [np.repeat(np.repeat(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8), 8, 0), 8, 1)
              for _ in range(4)]
    stop = threading.Event()

    def camera():
        i = 0
        while not stop.is_set():
            pipe.submit(frames[i % len(frames)], tag=i)
            i += 1
            time.sleep(0.001)

    feeder = threading.Thread(target=camera)
    time.sleep(0.2)
    start, done0 = time.perf_counter(), pipe.counts.processed
    feeder.start()
    time.sleep(seconds)
    wall = time.perf_counter() - start
    done = pipe.counts.processed - done0
    stop.set()
    feeder.join()
    pipe.wait_idle(5)
    pipe.close()
    # every frame processed held the one DPU core for LATENCY_S
    return dict(workers=workers, fps=done / wall, utilisation=done * LATENCY_S / wall, dropped=pipe.counts.dropped,
                submitted=pipe.counts.submitted,
                pre=statistics.median(t.preprocess_ms for t in timings),
                dpu=statistics.median(t.inference_ms for t in timings),
                post=statistics.median(t.postprocess_ms for t in timings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args.seconds, Path(tmp) / str(n)) for n in (1, 2, 3)]
    lines = [f"DPU emulated at {LATENCY_S * 1e3:.0f} ms per run (ceiling {1 / LATENCY_S:.0f} fps), 1280x720 camera "
             "frames, 640 input, 80 classes, 20 objects", "",
             "| workers | fps | DPU utilisation | vs 1 worker | median pre / DPU call / post ms | frames dropped |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['fps']:.1f} | {100 * r['utilisation']:.1f} % | "
                     f"{r['fps'] / rows[0]['fps']:.2f}x | {r['pre']:.2f} / {r['dpu']:.2f} / {r['post']:.2f} | "
                     f"{r['dropped']} of {r['submitted']} |")
    two = rows[1]["utilisation"]
    verdict = "met" if two >= 0.9 else "NOT met"
    lines += ["", f"Target >= 90 % utilisation with 2 workers: {100 * two:.1f} % ({verdict})."]
    text = "\n".join(lines)
    return emit(text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
