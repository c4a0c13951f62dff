"""Frame sources for the CLI: image files, folders of images, and video files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from yolov5_dpu_ros.core.conversions import image_from_compressed

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


@dataclass(frozen=True)
class Source:
    """One input: a list of image files, or one video."""

    path: Path
    images: tuple[Path, ...] = ()
    is_video: bool = False

    def frame_count(self) -> int:
        """Number of frames (a video's container count, which may be 0 when unknown)."""
        if not self.is_video:
            return len(self.images)
        cap = cv2.VideoCapture(str(self.path))
        try:
            return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        finally:
            cap.release()


def resolve_source(path: str | Path) -> Source:
    """Check one command-line input; a ValueError says what is wrong and what is accepted."""
    path = Path(path)
    if path.is_dir():
        images = tuple(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        if not images:
            raise ValueError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return Source(path, images)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return Source(path, (path,))
    if suffix in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(path))
        ok = cap.isOpened()
        cap.release()
        if not ok:
            raise ValueError(f"{path}: OpenCV cannot open this video (is the file complete?)")
        return Source(path, is_video=True)
    raise ValueError(f"{path}: unsupported input type '{suffix}': give images "
                     f"({', '.join(IMAGE_SUFFIXES)}), videos ({', '.join(VIDEO_SUFFIXES)}) or folders")


@dataclass(frozen=True)
class Frame:
    """One decoded frame (BGR), or an unreadable one (image None) with the reason."""

    path: Path
    index: int
    image: np.ndarray | None
    error: str = ""


def iter_frames(source: Source) -> Iterator[Frame]:
    """Frames of one source in order; unreadable images come back as Frame(image=None)."""
    if source.is_video:
        cap = cv2.VideoCapture(str(source.path))
        try:
            index = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                yield Frame(source.path, index, image)
                index += 1
        finally:
            cap.release()
    for index, path in enumerate(source.images):
        try:  # decoded as a CompressedImage message is, so a frame is judged alike on every path
            yield Frame(path, index, image_from_compressed(path.suffix.lstrip("."), path.read_bytes()))
        except (OSError, ValueError) as e:
            yield Frame(path, index, None, f"unreadable image: {e}")
