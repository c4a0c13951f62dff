"""Guards that name the environment a model_prep step needs before it fails inside it."""

from __future__ import annotations

import importlib
import shutil

VITIS_AI_DOCKER = ("run it inside the Vitis AI 2.5 docker (xilinx/vitis-ai-cpu:2.5 or the GPU image), in the "
                   "vitis-ai-pytorch conda environment; see model_prep/README.md")


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
