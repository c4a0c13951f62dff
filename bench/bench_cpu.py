"""CPU time per frame of ``yolov5-dpu detect`` (onnx backend), ONNX Runtime's defaults against the package's.

    python bench/bench_cpu.py [--frames 60] [--markdown bench/RESULTS_CPU.md]

Runs the real command in a child process on a folder of JPEGs and on a video (640x480 synthetic
shapes, the demo model at 320), with 1 and 2 workers, in two settings:
- "ORT default": each worker's ONNX Runtime takes every core and spin-waits between runs (what the
  package did before: ``--threads <cores> --onnx-spin``);
- "package default": the cores shared out among the workers, no spin-waiting (no flags).
CPU time is the child's user + system time; the cost of starting (imports, loading the model) is
taken out by also running one frame and subtracting. The CPU a frame takes from the process is what a
ROS middleware on the same cores does not get (see doc/cameras.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from report import emit  # noqa: E402

from demo.shapes import make_sample  # noqa: E402
from yolov5_dpu_ros.backends.onnx import usable_cores  # noqa: E402


def make_inputs(folder: Path, frames: int) -> dict[str, tuple[Path, Path]]:
    """name → (many-frame input, one-frame input of the same kind)."""
    images, one = folder / "images", folder / "one"
    images.mkdir()
    one.mkdir()
    video_path, video_one = folder / "clip.avi", folder / "clip_one.avi"
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    writers = [cv2.VideoWriter(str(p), fourcc, 30, (640, 480)) for p in (video_path, video_one)]
    for i in range(frames):
        image = make_sample(11, "bench", i, (640, 480)).image
        cv2.imwrite(str(images / f"f{i:03d}.jpg"), image)
        writers[0].write(image)
        if i == 0:
            cv2.imwrite(str(one / "f000.jpg"), image)
            writers[1].write(image)
    for w in writers:
        w.release()
    return {"folder of JPEGs": (images, one), "video (MJPG)": (video_path, video_one)}


def cpu_of(args: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``yolov5-dpu detect`` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "yolov5_dpu_ros.cli.main", "detect", *args, "--no-progress", "--jsonl",
                    os.devnull], check=True, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def per_frame(source: Path, one: Path, frames: int, flags: list[str], repeats: int) -> tuple[float, float]:
    """Median over repeats of (CPU ms, wall ms) per frame, start-up cost subtracted."""
    cpu, wall = [], []
    for _ in range(repeats):
        c_many, w_many = cpu_of([str(source), *flags])
        c_one, w_one = cpu_of([str(one), *flags])
        cpu.append((c_many - c_one) / (frames - 1) * 1e3)
        wall.append((w_many - w_one) / (frames - 1) * 1e3)
    return sorted(cpu)[len(cpu) // 2], sorted(wall)[len(wall) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    cores = usable_cores()
    settings = {"ORT default": ["--threads", str(cores), "--onnx-spin"], "package default": []}
    lines = [f"`yolov5-dpu detect`, onnx backend, demo model (320 input), 640x480 frames, {args.frames} frames, "
             f"{cores} usable cores, median of {args.repeats} runs; CPU = user + system time of the process", "",
             "| input | workers | setting | CPU ms / frame | wall ms / frame | CPU cores busy | CPU vs ORT default |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp), args.frames)
        for name, (source, one) in inputs.items():
            for workers in (1, 2):
                base = None
                for setting, flags in settings.items():
                    cpu, wall = per_frame(source, one, args.frames, [*flags, "--workers", str(workers)], args.repeats)
                    base = base or cpu
                    lines.append(f"| {name} | {workers} | {setting} | {cpu:.1f} | {wall:.1f} | {cpu / wall:.2f} | "
                                 f"{cpu / base:.2f}x |")
    text = "\n".join(lines)
    return emit(text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
