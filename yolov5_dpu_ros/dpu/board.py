"""The board's rules for the dpu backend, checked without PYNQ, VART or xir: pynq-dpu's overlay lookup and naming
(``dpu.bit``; the same code in 2.5.1 and 3.5.0), the ``.xmodel`` suffix, root, the PYNQ version, and the model
against its stack and its metadata.

The backend's pre-flight and ``yolov5-dpu doctor`` both use these functions and these messages, so a user
reads the same words for the same problem wherever it is found.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from yolov5_dpu_ros.core.model_meta import ModelMeta, match_heads
from yolov5_dpu_ros.dpu.stacks import NEEDS_PYNQ, DpuStack
from yolov5_dpu_ros.dpu.vart_conf import CORRECT, VART_CONF
from yolov5_dpu_ros.dpu.verdict import judge
from yolov5_dpu_ros.dpu.xmodel import XmodelInfo, read_xmodel

NEEDS_ROOT = ("the dpu backend must run as root: pynq-dpu's load_model rewrites /etc/vart.conf and copies the "
              "overlay's xclbin to /usr/lib (sudo -i, source /etc/profile.d/pynq_venv.sh, then start the node)")
OVERLAY_PARTS = (".bit", ".hwh", ".xclbin")
STOCK_OVERLAY = "dpu.bit"
CUSTOM_OVERLAY_RULE = ("put a custom overlay's files in a folder of their own named dpu.bit, dpu.hwh and dpu.xclbin "
                       "and give that folder's dpu.bit (bit:=/path/to/folder/dpu.bit)")


def pynq_dpu_folder() -> Path | None:
    """The installed pynq_dpu package's folder, found without importing it (which imports PYNQ and VART)."""
    spec = importlib.util.find_spec("pynq_dpu")
    return Path(spec.origin).parent if spec and spec.origin else None


def is_root() -> bool:
    """Whether this process runs as root (pynq-dpu writes /etc/vart.conf and /usr/lib)."""
    return os.geteuid() == 0


def pynq_version_ok(version: str, stack: DpuStack) -> bool:
    """Whether this PYNQ is the release the stack's pynq-dpu is made for."""
    return version.startswith(stack.pynq + ".") or version == stack.pynq


def pynq_version_note(stack: DpuStack) -> str:
    """Why another PYNQ may not work with this stack, and the fix."""
    return (f"pynq-dpu {stack.pynq_dpu} is made for PYNQ {stack.pynq}.x (PYNQ 3.1's XRT 2.17 is reported to break "
            f"VART 2.5 with a missing xclClose); if loading fails, use the Kria-PYNQ {stack.pynq}.1 image")


def resolve_overlay(bit: str | Path | None, package: Path | None) -> Path:
    """The overlay .bit as pynq-dpu finds it (as given, then inside the pynq_dpu package), named ``dpu.bit`` with
    its ``dpu.hwh`` and ``dpu.xclbin`` beside it: pynq-dpu copies ``<name>.xclbin`` to /usr/lib but always
    points VART at /usr/lib/dpu.xclbin (``/etc/vart.conf``), so an overlay of another name would run with another
    design's xclbin, or none."""
    if not bit and package is None:
        raise ValueError(NEEDS_PYNQ)
    given = Path(bit) if bit else Path(STOCK_OVERLAY)
    if given.suffix != ".bit":
        raise ValueError(f"overlay '{given}' is not a .bit file: give the overlay's dpu.bit (dpu.hwh and dpu.xclbin "
                         "beside it)")
    found = given if given.is_file() else package / given if package and (package / given).is_file() else None
    if found is None:
        where = f" or in {package}" if package else ""
        raise ValueError(f"overlay not found: {given} (looked as given{where}); install pynq-dpu in the PYNQ venv "
                         "(doc/board.md, 'Two DPU stacks') or give the path of a custom overlay")
    if found.name != STOCK_OVERLAY:
        raise ValueError(f"overlay '{found}': pynq-dpu copies {found.stem}.xclbin to /usr/lib but points VART "
                         f"at /usr/lib/dpu.xclbin (/etc/vart.conf), so VART would load another design's xclbin or "
                         f"none: {CUSTOM_OVERLAY_RULE}")
    missing = [str(found.with_suffix(s)) for s in OVERLAY_PARTS if not found.with_suffix(s).is_file()]
    if missing:
        raise ValueError(f"overlay files missing: {', '.join(missing)} (a DPU overlay needs dpu.bit, dpu.hwh and "
                         "dpu.xclbin in one folder)")
    return found


def check_tensors(info: XmodelInfo, meta: ModelMeta) -> None:
    """The model's input and heads must be the ones the metadata describes."""
    unquantized = [t.name for t in (*info.inputs, *info.outputs) if t.fix_point is None]
    if unquantized:
        raise ValueError(f"{info.path}: tensors {unquantized} carry no fix_point: give the compiled DPU model")
    expected_in = (1, *meta.input_hw, 3)
    if len(info.inputs) != 1 or info.inputs[0].shape != expected_in:
        raise ValueError(f"{info.path}: input tensors {[t.shape for t in info.inputs]}, the metadata expects one "
                         f"{expected_in} (NHWC): use the metadata written for this model")
    match_heads([t.shape for t in info.outputs], meta, [t.name for t in info.outputs])


def check_name(xmodel: str | Path) -> Path:
    """The model's path, when its name is one pynq-dpu loads."""
    path = Path(xmodel)
    if path.suffix != ".xmodel":
        raise ValueError(f"{path}: pynq-dpu loads only files named *.xmodel; rename it or give the "
                         "compiled .xmodel")
    return path


def check_model(xmodel: str | Path, meta: ModelMeta | None, stack: DpuStack, fingerprint: int | None = None,
                allow_other_compiler: bool = False) -> tuple[XmodelInfo, list[str]]:
    """The xmodel's name, verdict on ``stack`` and tensors (against ``meta`` when given); returns its facts and the
    verdict's warnings, raises ValueError naming the first problem and its fix."""
    path = check_name(xmodel)
    info = read_xmodel(path)
    verdict = judge(info, stack, fingerprint, allow_other_compiler)
    verdict.check()
    if meta is not None:
        check_tensors(info, meta)
    return info, list(verdict.notes)


DOCTOR = ("ros2 run yolov5_dpu_ros yolov5-dpu doctor --xmodel X --model-meta M checks the board, PYNQ, pynq-dpu, "
          "XRT, root, the DPU and the model")


def explain(error: BaseException) -> str:
    """One line for a failure while loading or running a model: the error's type and message, and what to do.
    Our own ValueErrors already name the fix; what comes from PYNQ, XRT, pynq-dpu or VART gets its likely cause,
    told by what the error is (a missing module, a file, a permission, an assert), never by its base class."""
    if isinstance(error, ValueError):
        return str(error)
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    filename = getattr(error, "filename", None)
    if isinstance(error, PermissionError):
        return f"{text}; {NEEDS_ROOT}"
    if isinstance(error, AssertionError):
        return (f"{text}; pynq-dpu's load_model asserts exactly one DPU subgraph: check the model "
                f"(python -m model_prep.inspect X, or {DOCTOR})")
    if isinstance(error, ImportError):
        return f"{text}; {NEEDS_PYNQ}. {DOCTOR}"
    if filename == str(VART_CONF) or "check_vart_config" in _frames(error):
        return (f"{text}; pynq-dpu reads {VART_CONF} before rewriting it and could not: "
                f"echo '{CORRECT}' | sudo tee {VART_CONF}")
    if isinstance(error, FileNotFoundError):
        return f"{text}; a file the DPU runtime needs is missing ({filename or 'see above'}). {DOCTOR}"
    if isinstance(error, OSError):
        return f"{text}; the DPU runtime failed on a file or device ({filename or 'see above'}). {DOCTOR}"
    return f"{text}; the DPU runtime or the model loader failed. {DOCTOR}"


def _frames(error: BaseException) -> list[str]:
    """The function names of an exception's traceback, innermost last."""
    names, tb = [], error.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names
