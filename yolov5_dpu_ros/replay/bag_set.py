"""Which bags a replay takes: bag paths, folders holding bags, globs and list files, each bag with the relative path
its output keeps under the run folder."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from yolov5_dpu_ros.replay.bag_io import BagError

ROS1_SUFFIX = ".bag"


@dataclass(frozen=True)
class BagInput:
    """One bag (a rosbag2 folder or a ROS 1 ``.bag`` file) and where its output goes, relative to the run folder."""

    path: Path
    rel: Path


def is_rosbag2(path: Path) -> bool:
    """A rosbag2 is a folder with its ``metadata.yaml``."""
    return path.is_dir() and (path / "metadata.yaml").is_file()


def _output_rel(rel: Path) -> Path:
    """A ROS 1 ``x.bag`` gives the rosbag2 folder ``x``; a rosbag2 keeps its name."""
    return rel.with_suffix("") if rel.suffix == ROS1_SUFFIX else rel


def _bags_under(folder: Path) -> Iterator[Path]:
    """Every bag below a folder that is not a bag itself, in name order; a rosbag2 folder is not entered."""
    for child in sorted(folder.iterdir()):
        if is_rosbag2(child) or (child.is_file() and child.suffix == ROS1_SUFFIX):
            yield child
        elif child.is_dir():
            yield from _bags_under(child)


def _expand(item: str, base: Path) -> list[BagInput]:
    """The bags one argument names, relative to the part of it that names a folder."""
    path = Path(item) if Path(item).is_absolute() else base / item
    if glob.has_magic(item):
        parts = path.parts
        first_magic = next(i for i, p in enumerate(parts) if glob.has_magic(p))
        root = Path(*parts[:first_magic]) if first_magic else Path(".")
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
        if not matches:
            raise BagError(f"{item}: the pattern matches nothing")
        found: list[BagInput] = []
        for m in matches:
            if is_rosbag2(m) or (m.is_file() and m.suffix == ROS1_SUFFIX):
                found.append(BagInput(m, _output_rel(m.relative_to(root))))
            elif m.is_dir():
                found += [BagInput(b, _output_rel(b.relative_to(root))) for b in _bags_under(m)]
        return found
    if not path.exists():
        raise BagError(f"{item}: no such bag or folder")
    if is_rosbag2(path) or path.is_file():
        return [BagInput(path, _output_rel(Path(path.name)))]
    bags = [BagInput(b, _output_rel(b.relative_to(path))) for b in _bags_under(path)]
    if not bags:
        raise BagError(f"{item}: a folder with no bag in it (a rosbag2 folder holds metadata.yaml; ROS 1 bags end "
                       "in .bag)")
    return bags


def read_list_file(path: Path) -> list[str]:
    """A list file's entries: one bag, folder or pattern a line, ``#`` starts a comment, blank lines skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise BagError(f"{path}: cannot read the list file ({e.strerror})") from e
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def find_bags(items: Sequence[str], list_file: Path | None = None, cwd: Path = Path(".")) -> list[BagInput]:
    """Every bag the arguments and the list file name (list entries relative to the list file's folder), each
    once; two bags whose outputs would share a path are refused."""
    named = [(item, cwd) for item in items]
    if list_file is not None:
        named += [(item, list_file.parent) for item in read_list_file(list_file)]
    if not named:
        raise BagError("no bag given: name bags, folders of bags, patterns, or --list FILE")
    bags: dict[Path, BagInput] = {}
    outputs: dict[Path, Path] = {}
    for item, base in named:
        for bag in _expand(item, base):
            key = bag.path.resolve()
            if key in bags:
                continue
            if bag.rel in outputs:
                raise BagError(f"{outputs[bag.rel]} and {bag.path} would both write {bag.rel}: name their common "
                               "parent folder instead, so each keeps its relative path")
            bags[key], outputs[bag.rel] = bag, bag.path
    return list(bags.values())
