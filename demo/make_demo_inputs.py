"""Demo inputs: a few held-out images and a short rosbag2 of a camera watching shapes move.

    python -m demo.make_demo_inputs [--out demo]

Writes demo/images/*.jpg and demo/shapes_camera_bag/ (rosbag2, sqlite3): /camera/image_raw
(sensor_msgs/Image, bgr8) and /camera/image_raw/compressed (sensor_msgs/CompressedImage, jpeg),
both with the same header stamp and frame_id per frame, recorded at 8 Hz.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from demo.shapes import NAMES, _background, _draw, make_sample

FRAME_ID = "camera_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 125_000_000
DEMO_IMAGE_SIZES = ((640, 480), (320, 240), (1280, 720), (480, 360), (400, 400), (352, 288))


def moving_shapes(seed: int, frames: int, size_wh=(320, 240)) -> Iterator[np.ndarray]:
    """BGR frames of a fixed cluttered scene with shapes drifting, turning and crossing each other."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    scene = _background(rng, w, h)
    movers = [(NAMES[i % len(NAMES)], rng.uniform(0, w), rng.uniform(0, h), rng.uniform(14, 40),
               rng.uniform(-9, 9), rng.uniform(-7, 7), rng.uniform(0, math.pi), rng.uniform(-0.2, 0.2),
               tuple(int(v) for v in rng.integers(0, 256, 3))) for i in range(6)]
    for t in range(frames):
        img = scene.copy()
        mask = np.zeros((h, w), np.uint8)
        for kind, x, y, r, vx, vy, angle, spin, color in movers:
            cx, cy = (x + vx * t) % (w + 2 * r) - r, (y + vy * t) % (h + 2 * r) - r
            _draw(img, mask, kind, cx, cy, r, angle + spin * t, color, None)
        noise = rng.normal(0, 3, img.shape).astype(np.int16)
        yield np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_bag(path: Path, frames: list[np.ndarray], storage: str = "sqlite3") -> None:
    """A rosbag2 with each frame as Image (bgr8) and CompressedImage (jpeg)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    header_t, time_t = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    image_t, jpeg_t = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/CompressedImage"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    if path.exists():
        shutil.rmtree(path)
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        raw = writer.add_connection(IMAGE_TOPIC, image_t.__msgtype__, typestore=ts)
        comp = writer.add_connection(COMPRESSED_TOPIC, jpeg_t.__msgtype__, typestore=ts)
        for i, frame in enumerate(frames):
            ns = START_NS + i * PERIOD_NS
            header = header_t(stamp=time_t(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=FRAME_ID)
            h, w = frame.shape[:2]
            msg = image_t(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                          data=np.ascontiguousarray(frame).reshape(-1))
            writer.write(raw, ns, ts.serialize_cdr(msg, image_t.__msgtype__))
            jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].reshape(-1)
            writer.write(comp, ns, ts.serialize_cdr(jpeg_t(header=header, format="jpeg", data=jpg),
                                                    jpeg_t.__msgtype__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(DEMO_IMAGE_SIZES):
        cv2.imwrite(str(images / f"shapes_{i}.jpg"), make_sample(7, "demo", i, size).image,
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    write_bag(args.out / "shapes_camera_bag", list(moving_shapes(3, args.frames)))
    print(f"wrote {images} and {args.out / 'shapes_camera_bag'}")


if __name__ == "__main__":
    main()
