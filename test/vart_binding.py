"""Builds and imports the TEST DOUBLE of VART's runner binding (``vart_binding/runner_standin.cpp``).

Compiled once per source version with pybind11 (PyPI) and the system C++ compiler into the reference cache
(``~/.cache/yolov5_dpu_ros``); where either is missing, ``load`` raises ``BindingUnavailableError`` with the
reason, and the tests that need the emulated DPU skip with it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

from reference_sources import CACHE

SOURCE = Path(__file__).resolve().parent / "vart_binding" / "runner_standin.cpp"
NAME = "vart_runner_standin"


class BindingUnavailableError(Exception):
    """The stand-in cannot be built here; the message says why."""


def _build(target: Path) -> None:
    try:
        import pybind11
    except ImportError as e:
        raise BindingUnavailableError("pybind11 is not installed (pip install pybind11)") from e
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise BindingUnavailableError("no C++ compiler (c++/g++) on PATH to build the VART binding stand-in")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    cmd = [compiler, "-O1", "-shared", "-fPIC", "-std=c++17", f"-I{sysconfig.get_paths()['include']}",
           f"-I{pybind11.get_include()}", str(SOURCE), "-o", str(partial)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BindingUnavailableError(f"building the VART binding stand-in failed: {done.stderr[-2000:]}")
    partial.replace(target)


def load() -> ModuleType:
    """The compiled stand-in module (built on first use)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    digest = hashlib.sha256(SOURCE.read_bytes() + sys.version.encode()).hexdigest()[:16]
    target = CACHE / "vart_binding" / digest / f"{NAME}{sysconfig.get_config_var('EXT_SUFFIX')}"
    if not target.is_file():
        _build(target)
    spec = importlib.util.spec_from_file_location(NAME, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[NAME] = module
    return module
