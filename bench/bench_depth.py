"""Depth fusion: accuracy on generated RGB-D scenes with known geometry, and cost per frame, against the box
median (what most users write) in the same process.

    python bench/bench_depth.py [--repeat 100] [--markdown bench/RESULTS_DEPTH.md]

Scenes: ``rgbd_scenes.render`` (8 objects at 0.8-4 m before a wall at 5-7 m, 1 % noise, 5 % holes, a quarter
of them rings filling ~30 % of their box), 25 seeds for each encoding (16UC1 mm, 32FC1 m) and depth resolution
(1280x720 as the colour, 640x360). Error: distance between the estimated and the true 3D centre over the true
depth. Cost: 50 detections on a 1280x720 depth image (decoded once; ``depth_from_fields`` timed apart).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "test")]

from bench_pipeline import median_ms  # noqa: E402
from report import emit, timing_arguments  # noqa: E402
from rgbd_scenes import COLOUR_WH, K, render  # noqa: E402

from yolov5_dpu_ros.core.depth import Intrinsics, back_project, boxes_3d, depth_from_fields  # noqa: E402

INTRINSICS = Intrinsics.from_k(K)
COLOUR_HW = (COLOUR_WH[1], COLOUR_WH[0])


def box_median(xyxy: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The baseline: each box's median valid depth, its centre back-projected there."""
    sy, sx = depth.shape[0] / COLOUR_HW[0], depth.shape[1] / COLOUR_HW[1]
    z = np.array([np.nanmedian(depth[int(y1 * sy):int(y2 * sy) + 1, int(x1 * sx):int(x2 * sx) + 1])
                  for x1, y1, x2, y2 in xyxy])
    return back_project((xyxy[:, :2] + xyxy[:, 2:]) / 2, z, INTRINSICS)


def accuracy() -> list[str]:
    rows = ["| depth | resolution | objects | no depth | median error | p95 | thin objects max | box median: median, "
            "p95 |", "|---|---|---|---|---|---|---|---|"]
    for encoding in ("16UC1", "32FC1"):
        for wh in (COLOUR_WH, (640, 360)):
            errors, thin, baseline, invalid = [], [], [], 0
            for seed in range(25):
                scene = render(seed, encoding, wh)
                depth = depth_from_fields(encoding, wh[1], wh[0], scene.step, scene.depth_data)
                boxes = boxes_3d(scene.boxes, depth, COLOUR_HW, INTRINSICS)
                error = np.linalg.norm(boxes.center - scene.truth, axis=1) / scene.truth[:, 2]
                errors += error[boxes.valid].tolist()
                thin += error[boxes.valid & scene.thin].tolist()
                invalid += int((~boxes.valid).sum())
                baseline += (np.linalg.norm(box_median(scene.boxes, depth) - scene.truth, axis=1)
                             / scene.truth[:, 2]).tolist()
            rows.append(f"| {encoding} | {wh[0]}x{wh[1]} | {len(errors)} | {invalid} | {np.median(errors):.2%} | "
                        f"{np.percentile(errors, 95):.2%} | {max(thin):.2%} | {np.median(baseline):.2%}, "
                        f"{np.percentile(baseline, 95):.2%} |")
    return rows


def cost(repeat: int) -> list[str]:
    scene = render(0, "16UC1", COLOUR_WH, objects=50)
    depth = depth_from_fields("16UC1", COLOUR_WH[1], COLOUR_WH[0], scene.step, scene.depth_data)
    boxes = np.resize(scene.boxes, (50, 4))
    ours, base, decode = median_ms([lambda: boxes_3d(boxes, depth, COLOUR_HW, INTRINSICS),
                                    lambda: box_median(boxes, depth),
                                    lambda: depth_from_fields("16UC1", COLOUR_WH[1], COLOUR_WH[0], scene.step,
                                                              scene.depth_data)], repeat)
    return ["| 50 detections, 1280x720 depth | ms (median) | ratio |", "|---|---|---|",
            f"| boxes_3d (target <= 1 ms) | {ours:.3f} | {ours / base:.2f}x |",
            f"| box median (baseline) | {base:.3f} | 1.00x |",
            f"| depth_from_fields (16UC1 → metres, once per frame) | {decode:.3f} | |"]


def main() -> int:
    args = timing_arguments(__doc__)
    lines = ["# Depth fusion (3D boxes)", "", "`python bench/bench_depth.py` (scene generator: `bench/rgbd_scenes.py`)",
             "", "## Accuracy", "", *accuracy(), "", "## Cost", "", *cost(args.repeat)]
    return emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
