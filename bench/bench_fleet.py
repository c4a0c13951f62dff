"""Fleet replay: 20 bags through `yolov5-dpu replay` on Ray (1 and 2 actors) against today's loop of one
`yolov5-dpu bag` command per bag, and against the same bags run in this process without Ray (the floor).

    python bench/bench_fleet.py [--frames 30] [--markdown bench/RESULTS_FLEET.md]

Every run processes the same frames with the demo model (ONNX Runtime, one thread per worker, as replay gives a
worker its CPU share). Ray's overhead per bag is what the 1-actor replay costs beyond the in-process run and Ray's own
start (its cluster and the actor's model load), divided by the bags.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from report import emit  # noqa: E402

from demo.make_demo_inputs import moving_shapes, write_bag  # noqa: E402
from yolov5_dpu_ros.backends import OnnxSpec  # noqa: E402
from yolov5_dpu_ros.core.postprocess import PostprocessConfig  # noqa: E402
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX  # noqa: E402
from yolov5_dpu_ros.replay.bag_set import find_bags  # noqa: E402
from yolov5_dpu_ros.replay.job import BagJob, ModelSpec  # noqa: E402
from yolov5_dpu_ros.replay.ledger import RunKey, input_fingerprint  # noqa: E402
from yolov5_dpu_ros.replay.one_bag import BagOptions  # noqa: E402

BAGS = 20
CLI = [sys.executable, "-m", "yolov5_dpu_ros.cli.main"]


def make_bags(root: Path, frames: int) -> int:
    """20 rosbag2 of 640x480 bgr8 frames (and their JPEG stream, which replay leaves alone); their total bytes."""
    for i in range(BAGS):
        write_bag(root / f"site_{i % 2}" / f"run{i:02d}", list(moving_shapes(i, frames, (640, 480))))
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def in_process(bags: Path, out: Path) -> float:
    """The same bags in this process, one model load, no Ray: the floor the fleet is compared with."""
    from yolov5_dpu_ros.replay.fleet import run_here

    jobs = [BagJob(b, out / b.rel, *input_fingerprint(b.path)) for b in find_bags([str(bags)])]
    start = time.perf_counter()
    run_here(jobs, ModelSpec(OnnxSpec(DEMO_ONNX, 1, False), DEMO_META, PostprocessConfig()), BagOptions(),
             RunKey("m", "o", "v"), lambda r: None, lambda n: None)
    return time.perf_counter() - start


def ray_start() -> float:
    """A local Ray cluster and one actor with the model loaded, ready: what a replay pays before its first bag."""
    import logging

    import ray

    from yolov5_dpu_ros.replay.fleet import BagWorker, ProgressBoard

    start = time.perf_counter()
    ray.init(address="local", log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    try:
        board = ray.remote(num_cpus=0)(ProgressBoard).options(name="bench-board").remote()  # held: named, alive
        worker = ray.remote(num_cpus=1)(BagWorker).remote(
            ModelSpec(OnnxSpec(DEMO_ONNX, 1, False), DEMO_META, PostprocessConfig()), BagOptions(),
            RunKey("m", "o", "v"), "bench-board")
        ray.get([worker.__ray_ready__.remote(), board.__ray_ready__.remote()])
        return time.perf_counter() - start
    finally:
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30, help="frames per bag (default 30)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = make_bags(work / "bags", args.frames)
        frames = BAGS * args.frames
        floor = in_process(work / "bags", work / "here")
        loop = 0.0
        for bag in find_bags([str(work / "bags")]):
            (work / "loop" / bag.rel).parent.mkdir(parents=True, exist_ok=True)
            loop += timed([*CLI, "bag", str(bag.path), "--out", str(work / "loop" / bag.rel), "--no-progress",
                           "--threads", "1"])
        fleet = {n: timed([*CLI, "replay", str(work / "bags"), "--out", str(work / f"fleet{n}"), "--workers", str(n),
                           "--no-progress"]) for n in (1, 2)}
        start = ray_start()
    rows = [("in this process, no Ray (floor)", floor), ("one `yolov5-dpu bag` per bag (today)", loop),
            ("`yolov5-dpu replay`, 1 actor", fleet[1]), ("`yolov5-dpu replay`, 2 actors", fleet[2])]
    out = ["# Fleet replay", "", f"`python bench/bench_fleet.py --frames {args.frames}` on this machine "
           f"({os.cpu_count()} CPUs): {BAGS} rosbag2 of {args.frames} 640x480 bgr8 frames each "
           f"({size / 1e6:.0f} MB in all, {size / frames / 1e6:.2f} MB a frame with its JPEG copy), demo model, ONNX "
           "Runtime with one thread per worker.", "",
           "| run | seconds | bags/s | frames/s | vs today |", "|---|---|---|---|---|"]
    for name, seconds in rows:
        out.append(f"| {name} | {seconds:.1f} | {BAGS / seconds:.2f} | {frames / seconds:.1f} | "
                   f"{loop / seconds:.2f}x |")
    overhead = (fleet[1] - start - floor) / BAGS
    out += ["", f"Ray's start (local cluster, one actor with the model loaded): {start:.2f} s. Ray's overhead per bag "
                f"beyond that (1 actor against the in-process run): {overhead * 1e3:.0f} ms. CPU per frame in this "
                f"process: {floor / frames * 1e3:.1f} ms (decode, pre, inference, post, write)."]
    out += projection(size / frames, floor / frames)
    return emit("\n".join(out), args.markdown)


STORAGE = (("1 GbE NFS", 0.11e9), ("10 GbE NFS", 1.1e9), ("local NVMe", 3.0e9))  # bytes/s a node can read


def projection(bytes_per_frame: float, cpu_s_per_frame: float) -> list[str]:
    """Where a node saturates: the cores whose frames read as fast as its storage delivers."""
    per_core = bytes_per_frame / cpu_s_per_frame  # bytes/s one busy core reads
    out = ["", "## Where a cluster saturates (projection from the two measured costs)", "",
           f"One busy core reads {per_core / 1e6:.0f} MB/s of bag ({bytes_per_frame / 1e6:.2f} MB a frame every "
           f"{cpu_s_per_frame * 1e3:.1f} ms). A node is CPU-bound below the core count in the table and storage-bound "
           "above it; the cluster adds nodes linearly until the shared storage's own bandwidth is reached (Ray's "
           "per-bag overhead above is small against a bag of minutes).", "",
           "| storage per node | read bandwidth | cores it feeds | frames/s per node at that point |",
           "|---|---|---|---|"]
    for name, bandwidth in STORAGE:
        out.append(f"| {name} | {bandwidth / 1e9:.2f} GB/s | {bandwidth / per_core:.1f} | "
                   f"{bandwidth / bytes_per_frame:.0f} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
