"""Which DPU stack this machine has: pynq-dpu's installed version (package metadata, no import) and VART's (its
runner library's file name), read before anything touches the DPU."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Callable

from yolov5_dpu_ros.dpu.stacks import AUTO, Detected, DpuStack, detect

VART_LIBRARIES = Path("/usr/lib")


def vart_version(libraries: Path) -> str | None:
    """VART's version from its runner library's file name (libvart-runner.so.3.5.0), without loading it."""
    if not libraries.is_dir():
        return None
    versions = sorted({p.name.split(".so.", 1)[1] for p in libraries.glob("libvart-runner.so.*")})
    full = [v for v in versions if v.count(".") >= 2] or versions
    return full[-1] if full else None


def installed_version(name: str) -> str | None:
    """An installed distribution's version from its metadata (None: not installed), without importing it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def detect_here(choice: str = AUTO, version: Callable[[str], str | None] = installed_version,
                libraries: Path | None = None) -> Detected:
    """``detect`` with this machine's installed pynq-dpu (package metadata) and VART (library file names, in
    ``libraries``, default VART_LIBRARIES)."""
    if choice != AUTO:
        return detect(choice)
    return detect(choice, version("pynq-dpu") or version("pynq_dpu"), vart_version(libraries or VART_LIBRARIES))


def resolve(choice: str = AUTO) -> DpuStack:
    """The stack the dpu backend runs on here; ValueError naming the problem and the fix."""
    found = detect_here(choice)
    if found.stack is None or found.problem:
        raise ValueError(found.problem)
    return found.stack
