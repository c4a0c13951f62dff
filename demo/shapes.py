"""Deterministic synthetic detection data: coloured shapes on cluttered backgrounds, YOLO labels.

Five classes (circle, square, triangle, star, cross) with varied size, colour and rotation,
overlapping each other and partly hidden by occluders, on textured noisy backgrounds with
distractor strokes. Every image is a pure function of (seed, split, index), so train/val/test
never share an image and any image can be made again anywhere.

    python -m demo.shapes OUT_DIR --train 4000 --val 400 --test 400
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

NAMES = ("circle", "square", "triangle", "star", "cross")
SPLITS = ("train", "val", "test")
SIZES_WH = ((320, 240), (416, 320), (480, 360), (640, 480), (352, 288), (400, 400), (512, 384))
MIN_VISIBLE = 0.5  # an object less visible than this is not labelled


@dataclass(frozen=True)
class Sample:
    """One generated image (BGR) and its labels: class ids and xyxy pixel boxes."""

    image: np.ndarray
    class_id: np.ndarray  # (N,) int
    xyxy: np.ndarray  # (N, 4) float, pixels

    def yolo_lines(self) -> list[str]:
        """YOLO txt label lines: class cx cy w h, normalised to the image size."""
        h, w = self.image.shape[:2]
        lines = []
        for c, (x1, y1, x2, y2) in zip(self.class_id, self.xyxy):
            lines.append(f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                         f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        return lines


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Low-frequency colour field + fine noise + distractor strokes and blobs."""
    coarse = rng.integers(0, 256, (rng.integers(2, 6), rng.integers(2, 6), 3), dtype=np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    texture = cv2.resize(rng.integers(-40, 41, (h // 4 + 1, w // 4 + 1, 1), dtype=np.int16).astype(np.float32),
                         (w, h), interpolation=cv2.INTER_LINEAR)
    img += texture.astype(np.int16)[:, :, None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 12)):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.6:
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(5, 60)), int(rng.integers(3, 30)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, float(rng.uniform(60, 300)), color,
                        int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices of a shape of circumradius r, rotated by angle (radians)."""
    if kind == "square":
        t = np.arange(4) * math.pi / 2 + math.pi / 4
        radii = np.full(4, r)
    elif kind == "triangle":
        t = np.arange(3) * 2 * math.pi / 3 - math.pi / 2
        radii = np.full(3, r)
    elif kind == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
    elif kind == "cross":
        a = r * 0.32  # half arm width; arm tips at distance r
        pts = np.array([(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a), (-r, a),
                        (-r, -a), (-a, -a)], np.float64)
        c, s = math.cos(angle), math.sin(angle)
        return pts @ np.array([[c, s], [-s, c]]) + (cx, cy)
    else:
        raise ValueError(kind)
    t = t + angle
    return np.stack((cx + radii * np.cos(t), cy + radii * np.sin(t)), axis=1)


def _draw(canvas: np.ndarray, mask: np.ndarray, kind: str, cx: float, cy: float, r: float, angle: float,
          color, outline) -> np.ndarray:
    """Draw one shape on the canvas and its instance mask; returns its xyxy box (unclipped)."""
    shift = 4  # sub-pixel precision for anti-aliased edges
    if kind == "circle":
        centre = (int(round(cx * 16)), int(round(cy * 16)))
        rad = int(round(r * 16))
        cv2.circle(canvas, centre, rad, color, -1, cv2.LINE_AA, shift)
        if outline is not None:
            cv2.circle(canvas, centre, rad, outline, 2, cv2.LINE_AA, shift)
        cv2.circle(mask, centre, rad, 255, -1, cv2.LINE_8, shift)
        return np.array([cx - r, cy - r, cx + r, cy + r])
    pts = _polygon(kind, cx, cy, r, angle)
    ipts = np.round(pts * 16).astype(np.int32)[None]
    cv2.fillPoly(canvas, ipts, color, cv2.LINE_AA, shift)
    if outline is not None:
        cv2.polylines(canvas, ipts, True, outline, 2, cv2.LINE_AA, shift)
    cv2.fillPoly(mask, ipts, 255, cv2.LINE_8, shift)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def make_sample(seed: int, split: str, index: int, size_wh: tuple[int, int] | None = None) -> Sample:
    """The image and labels for (seed, split, index)."""
    rng = _rng(seed, split, index)
    w, h = size_wh or SIZES_WH[int(rng.integers(len(SIZES_WH)))]
    img = _background(rng, w, h)
    owner = np.zeros((h, w), np.int16)  # which object each pixel shows (0 = none)
    objects = []
    for k in range(int(rng.integers(1, 9))):
        kind_id = int(rng.integers(len(NAMES)))
        r = float(rng.uniform(8, min(w, h) * 0.22))
        cx, cy = float(rng.uniform(-0.2 * r, w + 0.2 * r)), float(rng.uniform(-0.2 * r, h + 0.2 * r))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        outline = tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.random() < 0.3 else None
        mask = np.zeros((h, w), np.uint8)
        box = _draw(img, mask, NAMES[kind_id], cx, cy, r, float(rng.uniform(0, 2 * math.pi)), color, outline)
        owner[mask > 0] = k + 1
        objects.append((kind_id, box, int(np.count_nonzero(mask))))
    for _ in range(int(rng.integers(0, 3))):  # occluders: long bars (never square) hiding parts of objects
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        thick, length = int(rng.integers(4, 14)), int(rng.integers(min(w, h) // 4, min(w, h) // 2))
        bw, bh = (thick, length) if rng.random() < 0.5 else (length, thick)
        cv2.rectangle(img, (x, y), (x + bw, y + bh), color, -1)
        owner[y:y + bh, x:x + bw] = 0
    img = np.clip(img.astype(np.int16) + rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.int16),
                  0, 255).astype(np.uint8)
    visible = np.bincount(owner.ravel(), minlength=len(objects) + 1)
    class_id, boxes = [], []
    for k, (kind_id, box, area) in enumerate(objects):
        clipped = np.clip(box, 0, [w, h, w, h])
        if area == 0 or visible[k + 1] / area < MIN_VISIBLE or min(clipped[2:] - clipped[:2]) < 6:
            continue
        class_id.append(kind_id)
        boxes.append(clipped)
    return Sample(img, np.asarray(class_id, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4))


def _write_one(job: tuple[Path, int, str, int]) -> None:
    out, seed, split, i = job
    s = make_sample(seed, split, i)
    cv2.imwrite(str(out / "images" / split / f"{i:05d}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (out / "labels" / split / f"{i:05d}.txt").write_text("".join(line + "\n" for line in s.yolo_lines()))


def write_dataset(out: Path, counts: dict[str, int], seed: int = 0, jobs: int = 1) -> Path:
    """Write images/<split>/*.jpg, labels/<split>/*.txt and data.yaml (YOLOv5 layout)."""
    work = []
    for split, n in counts.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        work += [(out, seed, split, i) for i in range(n)]
    if jobs > 1:
        with multiprocessing.Pool(jobs) as pool:
            pool.map(_write_one, work, chunksize=32)
    else:
        for job in work:
            _write_one(job)
    data = out / "data.yaml"
    data.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\n"
                    f"nc: {len(NAMES)}\nnames: {list(NAMES)}\n")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    for split, n in zip(SPLITS, (4000, 400, 400)):
        parser.add_argument(f"--{split}", type=int, default=n, help=f"{split} images (default {n})")
    args = parser.parse_args()
    print(write_dataset(args.out, {s: getattr(args, s) for s in SPLITS}, args.seed, args.jobs))


if __name__ == "__main__":
    main()
