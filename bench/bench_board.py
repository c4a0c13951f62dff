"""The CPU side of a frame, stage by stage and single-threaded, and what it would take on a KV260's Cortex-A53.

    python bench/bench_board.py [--repeat 30] [--insns bench/a53/insns.json] [--markdown bench/RESULTS_BOARD.md]
    python bench/bench_board.py --list                      # the workloads' names
    python bench/bench_board.py --only NAME --calls N       # N calls of one workload, nothing printed (for qemu)

Stages as a frame goes through the node: decode (a raw bgr8 Image's bytes to pixels, or a JPEG CompressedImage),
pre-processing into a 640 int8 input, the DPU call (not run here: the Vitis AI model zoo's KV260 figures),
post-processing of a YOLOv5n-style head (80 classes, K objects), tracking, and the Detection2D field values the
message is built from. Calibration workloads repeat, with this package's own code, the operations whose KV260 times
a public thesis measured on the board (gunkungjibi-ctrl/thesis-yolo26-fpga, 05-benchmarks/results/kv260_results.md,
section E2: Python 3.9.9, numpy 1.21.2, OpenCV 4.5.2, aarch64): a resize to 640x640, BGR→RGB, and a uint8→int8
quantization either as numpy float arithmetic or as a 256-entry lookup.

``--insns`` takes the guest instruction count of every workload on aarch64 (``bench/a53/count_insns.sh`` runs
this file under ``qemu-aarch64`` with an instruction-counting plugin); the table then turns each stage into a KV260
estimate, by the board's instructions per millisecond on the calibration workloads and, as a cross-check, by the
board-to-this-machine time ratio of the same workloads. Everything runs on one thread: OpenCV's, and numpy's BLAS
(nothing here uses it).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "test")]

from bench_pipeline import ANCHORS, FIX_POINT, OUT_FIX_POINTS, median_ms  # noqa: E402
from heads import clustered_heads  # noqa: E402  (the tests' generator of realistic raw heads)
from report import emit  # noqa: E402

from yolov5_dpu_ros.core.conversions import detection_fields, image_from_compressed, image_from_fields  # noqa: E402
from yolov5_dpu_ros.core.model_meta import meta_from_dict  # noqa: E402
from yolov5_dpu_ros.core.postprocess import PostprocessConfig, Postprocessor  # noqa: E402
from yolov5_dpu_ros.core.preprocess import Preprocessor, letterbox_geometry, quantization_table  # noqa: E402
from yolov5_dpu_ros.core.tracking import Tracker  # noqa: E402

INPUT = 640
CAMERAS = {"640x480": (480, 640), "1280x720": (720, 1280)}
OBJECTS = (5, 50, 200)
THESIS_FIX_POINT = 6  # the thesis' pre-processing quantizes with fix point 6
QUANTIZERS = ("shifted", "lookup", "arithmetic")  # "auto": the first where it can, else the faster of the others
# KV260 medians of the thesis' bench_preproc.py (section E2), ms: (mode, source) → time
BOARD_MS = {"calib_float_640x640": 44.36, "calib_float_640x360": 53.88,
            "calib_lut_640x640": 3.65, "calib_lut_640x360": 6.73}
A53_HZ = 1.333e9  # the KV260's application cores (XCK26: 4x Cortex-A53 up to 1.333 GHz)
IPC = (1.0, 0.5)  # the range assumed for this code on the in-order, dual-issue A53: low and high estimate
# Vitis AI model zoo, KV260 (DPUCZDX8G B4096), single thread: fps of the DPU alone
DPU_FPS = {"yolov5-nano 640": 78.1, "YOLOX-nano 416": 198.1}


@dataclass(frozen=True)
class Workload:
    """One timed call; ``stage`` groups it in the per-frame sum (empty for calibration)."""

    name: str
    stage: str
    camera: str
    objects: int
    call: Callable[[], object]


def _camera_frame(hw: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic BGR frame (JPEG-compressible like a camera's), the same on every run."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (hw[0] // 8, hw[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(small, hw[::-1], interpolation=cv2.INTER_LINEAR)


def _calibration(name: str, hw: tuple[int, int], lut: bool) -> Workload:
    """The thesis' pre-processing: plain resize to 640x640, BGR→RGB, quantize with fix point 6."""
    frame = _camera_frame(hw)
    table = quantization_table(THESIS_FIX_POINT)

    def float_path():
        rgb = cv2.cvtColor(cv2.resize(frame, (INPUT, INPUT)), cv2.COLOR_BGR2RGB)
        return np.clip(np.round(rgb.astype(np.float32) / 255.0 * 2.0**THESIS_FIX_POINT), -128, 127).astype(np.int8)

    def lut_path():
        return cv2.LUT(cv2.cvtColor(cv2.resize(frame, (INPUT, INPUT)), cv2.COLOR_BGR2RGB), table)

    return Workload(name, "", "", 0, lut_path if lut else float_path)


def workloads() -> list[Workload]:
    """Every workload, built once (inputs, heads, trackers warmed up), in table order."""
    out = [_calibration(f"calib_{mode}_{w}x{h}", (h, w), mode == "lut")
           for mode in ("float", "lut") for w, h in ((640, 640), (640, 360))]
    meta = meta_from_dict({"input_size": [INPUT, INPUT], "strides": [8, 16, 32], "anchors": ANCHORS,
                           "names": [str(i) for i in range(80)], "input_fix_point": FIX_POINT})
    post = Postprocessor(meta, meta.head_shapes, OUT_FIX_POINTS)
    config = PostprocessConfig()
    for camera, hw in CAMERAS.items():
        frame = _camera_frame(hw)
        raw = frame.tobytes()
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        out += [
            Workload(f"decode_raw_{camera}", "decode (raw Image)", camera, 0,
                     lambda raw=raw, hw=hw: image_from_fields("bgr8", hw[0], hw[1], hw[1] * 3, raw, 0)),
            Workload(f"decode_jpeg_{camera}", "decode (JPEG)", camera, 0,
                     lambda jpeg=jpeg: image_from_compressed("jpeg", jpeg)),
        ]
        for quantizer in QUANTIZERS:
            pre = Preprocessor((INPUT, INPUT), FIX_POINT, quantizer=quantizer)
            out.append(Workload(f"pre_{quantizer}_{camera}", f"pre-processing ({quantizer})", camera, 0,
                                lambda pre=pre, frame=frame: pre(frame)))
        letterbox = letterbox_geometry(hw, (INPUT, INPUT))
        for k in OBJECTS:
            heads = clustered_heads(meta, np.random.default_rng(k), OUT_FIX_POINTS, k)
            found = post(heads, letterbox, config)
            tracker, clock = Tracker(), (i / 30 for i in itertools.count())
            for _ in range(5):  # tracks confirmed, as in a steady scene
                tracker.update(next(clock), found)
            out += [
                Workload(f"post_{camera}_K{k}", "post-processing", camera, k,
                         lambda h=heads, lb=letterbox: post(h, lb, config)),
                Workload(f"track_{camera}_K{k}", "tracking", camera, k,
                         lambda t=tracker, c=clock, f=found: t.update(next(c), f)),
                Workload(f"fields_{camera}_K{k}", "message fields", camera, k,
                         lambda f=found: detection_fields(f, meta.names)),
            ]
    return out


def board_ms(instructions: float, ipc: float) -> float:
    """Milliseconds on one 1.333 GHz Cortex-A53 core at an average of ``ipc`` instructions per cycle."""
    return instructions / (ipc * A53_HZ) * 1e3


METHOD = """\
An estimate, not a measurement: no KV260 was in reach. Each stage ran single-threaded on this machine (the
"this machine" columns) and, for the KV260 columns, on aarch64 under qemu-aarch64 with an instruction-counting plugin
(`bench/a53/count_insns.sh`: Python 3.11, numpy 1.26.4, OpenCV 4.10.0's aarch64 wheel; a warm call's instructions as
the difference of runs with 1 and 11 calls). Instructions become time on one 1.333 GHz Cortex-A53 at 1.0 (low) to
0.5 (high) instructions per cycle. The calibration rows repeat operations whose time a public thesis measured on a
KV260 (gunkungjibi-ctrl/thesis-yolo26-fpga, 05-benchmarks/results/kv260_results.md, E2: Python 3.9.9, numpy 1.21.2,
OpenCV 4.5.2): numpy's float path ran there at 0.2 instructions per cycle (5 MB float temporaries through DRAM), the
lookup path faster than one core can issue (OpenCV's own threads). DPU times: the Vitis AI model zoo's KV260
figures. Not in these numbers: rclpy's message conversion and publishing."""


def render(loads: list[Workload], x86_ms: dict[str, float], insns: dict[str, float] | None) -> str:
    out = ["## The CPU side of a frame on a KV260 (estimate)", "", METHOD, "",
           "### Calibration: operations whose KV260 time was measured on the board", "",
           "| workload | this machine, ms | aarch64 instructions | KV260 measured, ms | KV260 / this machine | "
           "implied instructions per cycle |", "|---|---|---|---|---|---|"]
    for name, board in BOARD_MS.items():
        count = insns.get(name) if insns else None
        implied = f"{count / (board * 1e-3 * A53_HZ):.2f}" if count else "—"
        out.append(f"| {name} | {x86_ms[name]:.3f} | {f'{count / 1e6:.1f} M' if count else '—'} | {board:.2f} | "
                   f"{board / x86_ms[name]:.1f}x | {implied} |")
    out += ["", f"### Stages of one frame (ms; KV260: at {IPC[0]} to {IPC[1]} instructions per cycle)", "",
            "| stage | camera | K | this machine | aarch64 instructions | KV260 estimate |",
            "|---|---|---|---|---|---|"]
    for w in loads:
        if not w.stage:
            continue
        count = insns.get(w.name) if insns else None
        est = f"{board_ms(count, IPC[0]):.2f}–{board_ms(count, IPC[1]):.2f}" if count else "—"
        out.append(f"| {w.stage} | {w.camera} | {w.objects or ''} | {x86_ms[w.name]:.3f} | "
                   f"{f'{count / 1e6:.2f} M' if count else '—'} | {est} |")
    if insns:
        out += ["", *frame_budget(loads, insns)]
    return "\n".join(out)


def frame_budget(loads: list[Workload], insns: dict[str, float]) -> list[str]:
    """Per camera and K: one frame's CPU on the board (the high estimate; pre-processing by the faster quantizer, as
    "auto" picks) and the fps one and two workers sustain with yolov5-nano's DPU time (two workers: one frame's DPU
    call under the other's CPU, the CPU parts one after the other)."""
    dpu_ms = 1e3 / DPU_FPS["yolov5-nano 640"]
    out = [f"### Frames per second on the KV260 (estimate at {IPC[1]} instructions per cycle; DPU: yolov5-nano 640, "
           f"{dpu_ms:.1f} ms)", "",
           "| camera | K | CPU ms per frame, raw Image | 1 worker | 2 workers | CPU ms per frame, JPEG | 1 worker | "
           "2 workers |", "|---|---|---|---|---|---|---|---|"]
    for camera in CAMERAS:
        pre = min(insns[f"pre_{q}_{camera}"] for q in QUANTIZERS)
        for k in OBJECTS:
            rest = sum(insns[w.name] for w in loads if w.camera == camera and w.objects == k)
            row = [camera, str(k)]
            for decode in ("decode_raw", "decode_jpeg"):
                cpu = board_ms(pre + rest + insns[f"{decode}_{camera}"], IPC[1])
                row += [f"{cpu:.1f}", f"{1e3 / (cpu + dpu_ms):.0f}", f"{1e3 / max(cpu, dpu_ms):.0f}"]
            out.append("| " + " | ".join(row) + " |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30,
                        help="timed calls per workload, in four rounds (the lowest round median reported)")
    parser.add_argument("--insns", type=Path, help="JSON of aarch64 instructions per call (count_insns.sh)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--list", action="store_true", help="print the workloads' names")
    parser.add_argument("--only", help="run one workload --calls times and print nothing")
    parser.add_argument("--calls", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    loads = workloads()
    if args.list:
        print("\n".join(w.name for w in loads))
        return 0
    if args.only:
        calls = {w.name: w.call for w in loads}
        if args.only not in calls:
            parser.error(f"no workload {args.only!r}: --list names them")
        call = calls[args.only]
        gc.collect()
        gc.freeze()  # the set-up's objects stay out of the collections the calls trigger, as in a node that runs long
        for _ in range(args.calls):
            call()
        return 0
    x86_ms = dict(zip((w.name for w in loads), median_ms([w.call for w in loads], args.repeat)))
    insns = json.loads(args.insns.read_text()) if args.insns else None
    return emit(render(loads, x86_ms, insns), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
