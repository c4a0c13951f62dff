"""Guards that name the environment a model_prep step needs before it fails inside it."""

from __future__ import annotations

import importlib
import shutil

from yolov5_dpu_ros.dpu.stacks import STACKS

VITIS_AI_DOCKER = ("run it inside the Vitis AI docker of the board's DPU stack, in its vitis-ai-pytorch conda "
                   "environment: " + "; ".join(f"{s.name}: {s.docker} ({s.python})" for s in STACKS.values()) +
                   " (doc/model_preparation.md)")


def require_module(name: str, step: str, where: str = VITIS_AI_DOCKER):
    """Import a module or exit with one line saying where this step runs."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise SystemExit(f"{step} needs '{name}', which is not importable here ({e}): {where}") from e


def require_program(name: str, step: str) -> str:
    """The path of a program, or exit with one line saying where this step runs."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{step} needs '{name}', which is not on PATH: {VITIS_AI_DOCKER}")
    return path
