"""``yolov5-dpu doctor``: will the dpu backend run here, and if not, what to fix, in one report.

Every check reads files, package metadata, environment variables and ``--version`` outputs; nothing imports
PYNQ, VART or XRT and nothing touches the DPU. Each rule is the one the backend's pre-flight applies, in the
same words (``dpu.board``, the xmodel verdict, the middleware advice). What a check reads comes through
``Environment``, so tests give it a KV260, a PC, or a broken board.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from yolov5_dpu_ros.core.middleware import (
    CONFIG_FILES,
    HUMBLE_DEFAULT_RMW,
    RMW_CHOICE,
    active_rmw,
    camera_advice,
    node_middleware,
    read_rmem_max,
    rmem_advice,
)
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.dpu import vart_conf
from yolov5_dpu_ros.dpu.board import (
    NEEDS_PYNQ,
    NEEDS_ROOT,
    check_model,
    check_tensors,
    pynq_dpu_folder,
    pynq_version_note,
    pynq_version_ok,
    resolve_overlay,
)
from yolov5_dpu_ros.dpu.exclusive import Holder, busy_message, other_holders
from yolov5_dpu_ros.dpu.installed import VART_LIBRARIES, installed_version, vart_version
from yolov5_dpu_ros.dpu.stacks import AUTO, STACKS, Detected, DpuStack, detect
from yolov5_dpu_ros.dpu.verdict import describe_fingerprint
from yolov5_dpu_ros.dpu.xmodel import read_xmodel

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "✔", WARN: "⚠", FAIL: "✗"}
XRT_VERSION_FILE = Path("/opt/xilinx/xrt/version.json")
VITIS_SITE = "/usr/lib/python3/site-packages"  # where vart and xir live; pynq_dpu adds it to sys.path on import
PYNQ_MODULES = ("pynq", "pynq_dpu", "vart", "xir")


def _importable(name: str) -> bool:
    """Whether this interpreter can import a module, with the path pynq_dpu adds for vart and xir."""
    return importlib.machinery.PathFinder.find_spec(name, [*sys.path, VITIS_SITE]) is not None


def _run_version(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


@dataclass
class Environment:
    """Where each check looks; the defaults read this machine."""

    device_tree_model: Path = Path("/proc/device-tree/model")
    meminfo: Path = Path("/proc/meminfo")
    os_release: Path = Path("/etc/os-release")
    vart_conf: Path = Path("/etc/vart.conf")
    xrt_version_file: Path = XRT_VERSION_FILE
    vart_libraries: Path = VART_LIBRARIES
    rmem_max: Path = Path("/proc/sys/net/core/rmem_max")
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    version: Callable[[str], str | None] = installed_version
    run_version: Callable[[list[str]], str | None] = _run_version
    geteuid: Callable[[], int] = os.geteuid
    pynq_dpu: Callable[[], Path | None] = pynq_dpu_folder
    importable: Callable[[str], bool] = _importable
    interpreter: str = sys.executable
    dpu_holders: Callable[[], list[Holder]] = other_holders
    cpu_count: Callable[[], int | None] = os.cpu_count
    kernel: Callable[[], str] = platform.release


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, its status, what was found and, for a problem, the fix."""

    name: str
    status: str
    found: str
    fix: str = ""
    dpu: bool = True  # does the dpu backend need this to pass


@dataclass
class Report:
    """All checks; ``dpu_ready`` when nothing the dpu backend needs failed."""

    checks: list[Check]

    @property
    def dpu_ready(self) -> bool:
        return not any(c.status == FAIL and c.dpu for c in self.checks)

    @property
    def onnx_ready(self) -> bool:
        return any(c.name == "onnx backend" and c.status == OK for c in self.checks)

    def text(self) -> str:
        lines = [f"{MARKS[c.status]} {c.name}: {c.found}" + (f"\n    fix: {c.fix}" if c.fix else "")
                 for c in self.checks]
        verdict = ("the dpu backend can start with these inputs" if self.dpu_ready else
                   "the dpu backend cannot start here: fix the ✗ lines above")
        onnx = "the onnx backend can run here" if self.onnx_ready else "the onnx backend cannot run here"
        return "\n".join([*lines, f"→ {verdict}; {onnx}"])

    def json(self) -> str:
        return json.dumps({"checks": [{k: v for k, v in asdict(c).items() if k != "dpu"} for c in self.checks],
                           "dpu_ready": self.dpu_ready, "onnx_ready": self.onnx_ready}, indent=2)


def _os_release(env: Environment) -> str:
    text = _read(env.os_release) or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)', text, re.M)
    return match.group(1) if match else "unknown OS"


def platform_checks(env: Environment) -> list[Check]:
    model = (_read(env.device_tree_model) or "").strip("\x00\n ")
    mem = re.search(r"MemTotal:\s+(\d+)", _read(env.meminfo) or "")
    facts = (f"{env.cpu_count() or '?'} cores, {int(mem.group(1)) // 1024 if mem else '?'} MiB memory, "
             f"kernel {env.kernel()}, {_os_release(env)}")
    if "KV260" in model or "KR260" in model:
        return [Check("board", OK, f"{model}; {facts}")]
    return [Check("board", FAIL, f"{model or 'not a Kria board (no device-tree model)'}; {facts}",
                  "the dpu backend runs on a Kria KV260/KR260 with Kria-PYNQ 3.0; on this machine use backend onnx")]


def stack_check(env: Environment, dpu_runtime: str) -> tuple[Check, Detected]:
    """The report's first line: the DPU stack the checks below are made against, and what decided it."""
    pynq_dpu = env.version("pynq-dpu") or env.version("pynq_dpu")
    found = detect(dpu_runtime, pynq_dpu, vart_version(env.vart_libraries))
    if found.stack is None:
        return Check("DPU stack", FAIL, found.how, found.problem), found
    what = (f"{found.stack.title} ({found.how}): runs models of Vitis AI {found.stack.compilers_text()} compiled "
            f"for its overlay's DPU")
    return Check("DPU stack", FAIL if found.problem else OK, what, found.problem), found


def pynq_checks(env: Environment, stack: DpuStack | None) -> list[Check]:
    checks = []
    pynq = env.version("pynq")
    if pynq is None:
        checks.append(Check("PYNQ", FAIL, "not installed in this Python", NEEDS_PYNQ))
    elif stack is None or pynq_version_ok(pynq, stack):
        checks.append(Check("PYNQ", OK, pynq))
    else:
        checks.append(Check("PYNQ", WARN, pynq, pynq_version_note(stack)))
    dpu = env.version("pynq-dpu") or env.version("pynq_dpu")
    if dpu is None or env.pynq_dpu() is None:
        checks.append(Check("pynq-dpu", FAIL, "not installed in this Python", NEEDS_PYNQ))
    else:
        other = stack is not None and dpu != stack.pynq_dpu
        checks.append(Check("pynq-dpu", WARN if other else OK, dpu,
                            f"the package is tested with pynq-dpu {stack.pynq_dpu} on this stack" if other and stack
                            else ""))
    xrt = _read(env.xrt_version_file)
    found = re.search(r'"BUILD_VERSION"\s*:\s*"([^"]+)"', xrt or "")
    xrt_version = found.group(1) if found else None
    if xrt_version is None:
        out = env.run_version(["xbutil", "--version"]) or ""
        match = re.search(r"Version\s*:\s*(\S+)", out)
        xrt_version = match.group(1) if match else None
    if xrt_version is None:
        checks.append(Check("XRT", FAIL, f"not found (no {env.xrt_version_file}, no xbutil)", NEEDS_PYNQ))
    else:
        newer = stack is not None and stack.vart == "2.5" and xrt_version.startswith(("2.17", "2.18"))
        checks.append(Check("XRT", WARN if newer else OK, xrt_version,
                            pynq_version_note(stack) if newer and stack else ""))
    vart = vart_version(env.vart_libraries)
    if vart is None:
        checks.append(Check("VART", FAIL, f"no libvart-runner.so in {env.vart_libraries}", NEEDS_PYNQ))
    else:
        ok = stack is None or vart.startswith(stack.vart)
        checks.append(Check("VART", OK if ok else FAIL, vart,
                            "" if ok or stack is None else f"{stack.title} needs VART {stack.vart}: {stack.setup}"))
    missing = [name for name in PYNQ_MODULES if not env.importable(name)]
    if missing:
        checks.append(Check("PYNQ venv", FAIL, f"{env.interpreter} cannot import {', '.join(missing)}",
                            "the node runs under the python3 of the shell that starts it: source "
                            "/etc/profile.d/pynq_venv.sh (as root) before sourcing ROS and starting the node; if it "
                            "was built before this package's setup.cfg set '/usr/bin/env python3', rebuild it "
                            "(colcon build)"))
    else:
        checks.append(Check("PYNQ venv", OK, f"{env.interpreter} imports {', '.join(PYNQ_MODULES)}"))
    return checks


def access_checks(env: Environment) -> list[Check]:
    root = env.geteuid() == 0
    checks = [Check("root", OK if root else FAIL, "running as root" if root else f"uid {env.geteuid()}",
                    "" if root else NEEDS_ROOT)]
    conf = _read(env.vart_conf)
    wrong = vart_conf.problem(conf)
    if wrong:
        checks.append(Check("/etc/vart.conf", WARN, wrong, f"the dpu backend writes '{vart_conf.CORRECT}' before "
                            f"pynq-dpu reads it (as root); or: echo '{vart_conf.CORRECT}' | sudo tee {env.vart_conf}",
                            dpu=False))
    else:
        named = vart_conf.firmware(conf)
        after = "" if named == vart_conf.VART_FIRMWARE else f" (pynq-dpu rewrites it to {vart_conf.VART_FIRMWARE})"
        checks.append(Check("/etc/vart.conf", OK, f"VART loads the xclbin {named}{after}"))
    holders = env.dpu_holders()
    checks.append(Check("DPU", FAIL, busy_message(holders)) if holders else
                  Check("DPU", OK, "no other process holds it (VART's lock files /tmp/DPU_*)"))
    return checks


def overlay_checks(env: Environment, bit: str | None, stack: DpuStack | None, fingerprint: int | None) -> list[Check]:
    try:
        found = resolve_overlay(bit, env.pynq_dpu())
    except ValueError as e:
        return [Check("overlay", FAIL, bit or "pynq-dpu's own dpu.bit", str(e))]
    which = "a custom overlay" if bit else "pynq-dpu's stock KV260 overlay"
    dpu = fingerprint if fingerprint is not None else stack.fingerprint if stack else None
    return [Check("overlay", OK, f"{found} with .hwh and .xclbin ({which}, DPU fingerprint "
                                 f"{describe_fingerprint(dpu)})")]


def _model_check(xmodel: str, name: str, stack: DpuStack, fingerprint: int | None,
                 allow_other_compiler: bool) -> Check:
    try:
        info, notes = check_model(xmodel, None, stack, fingerprint, allow_other_compiler)
    except ValueError as e:
        return Check(name, FAIL, str(xmodel), str(e))
    tensors = (f"input {[list(t.shape) for t in info.inputs]}, outputs (VART order) "
               f"{[list(t.shape) for t in info.outputs]}")
    return Check(name, WARN if notes else OK, f"{xmodel}: Vitis AI {', '.join(info.compilers) or '?'}, {tensors}",
                 " ".join(notes))


def model_checks(xmodel: str, meta_path: str | None, stack: DpuStack | None, fingerprint: int | None,
                 allow_other_compiler: bool) -> list[Check]:
    """The model's verdict on the board's stack (on every stack, one line each, where the board has none)."""
    try:
        meta = load_meta(meta_path) if meta_path else None
    except ValueError as e:
        return [Check("model metadata", FAIL, str(meta_path), str(e))]
    judged = [(stack, "xmodel")] if stack else [(s, f"xmodel on the {s.name} stack") for s in STACKS.values()]
    checks = [_model_check(xmodel, name, s, fingerprint, allow_other_compiler) for s, name in judged]
    if meta is not None and Path(xmodel).suffix == ".xmodel":
        try:
            info = read_xmodel(Path(xmodel))
        except ValueError:
            return checks  # the xmodel line says why it cannot be read
        try:
            check_tensors(info, meta)
            checks.append(Check("model metadata", OK, f"{meta_path}: heads match ({meta.family}, "
                                                      f"{meta.num_classes} classes)"))
        except ValueError as e:
            checks.append(Check("model metadata", FAIL, str(meta_path), str(e)))
    return checks


def ros_checks(env: Environment) -> list[Check]:
    distro = env.environ.get("ROS_DISTRO", "")
    checks = [Check("ROS 2", OK if distro == "humble" else WARN, distro or "not sourced",
                    "" if distro == "humble" else "source /opt/ros/humble/setup.bash (the node targets Humble)",
                    dpu=False)]
    rclpy = env.importable("rclpy")
    checks.append(Check("rclpy", OK if rclpy else WARN, "importable" if rclpy else "not importable",
                        "" if rclpy else "source ROS 2 Humble in this shell (after the PYNQ venv)", dpu=False))
    prefixes = [Path(p) for p in env.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    vision = next((m.group(1) for p in prefixes
                   if (m := re.search(r"<version>([^<]+)</version>",
                                      _read(p / "share" / "vision_msgs" / "package.xml") or ""))), None)
    checks.append(Check("vision_msgs", OK if vision and vision.startswith("4.") else WARN,
                        vision or "not found in the ament index",
                        "" if vision and vision.startswith("4.") else "apt install ros-humble-vision-msgs (4.x: "
                                                                      "hypothesis.class_id, bbox.center.position)",
                        dpu=False))
    ours = any((p / "share" / "ament_index" / "resource_index" / "packages" / "yolov5_dpu_ros").is_file()
               for p in prefixes)
    checks.append(Check("yolov5_dpu_ros", OK if ours else WARN, "in the ament index" if ours else "not in the "
                        "ament index", "" if ours else "colcon build, then source install/setup.bash", dpu=False))
    onnx = env.importable("onnxruntime")
    checks.append(Check("onnx backend", OK if onnx else WARN, "onnxruntime importable" if onnx else
                        "onnxruntime not installed", "" if onnx else "pip install onnxruntime", dpu=False))
    return checks


def middleware_checks(env: Environment) -> list[Check]:
    rmw = active_rmw(env.environ)
    default = "" if env.environ.get("RMW_IMPLEMENTATION") else " (Humble's default; RMW_IMPLEMENTATION unset)"
    root = env.geteuid() == 0
    node = node_middleware(env.environ, Path("config"), root, env.environ.get(RMW_CHOICE, "auto"))
    across = root and node.rmw == HUMBLE_DEFAULT_RMW
    checks = [Check("middleware", OK, f"shell {rmw}{default}", dpu=False),
              Check("node middleware", FAIL if across else OK,
                    f"the node runs on {node.rmw}: {node.reason}; {camera_advice(node.rmw, rmw, root)}",
                    "apt install ros-humble-rmw-cyclonedds-cpp and start the node with rmw:=auto (the default)"
                    if across else "", dpu=False)]
    rmem = read_rmem_max(env.rmem_max)
    advice = rmem_advice(rmem)
    checks.append(Check("net.core.rmem_max", WARN if advice else OK,
                        f"{rmem} bytes" if rmem is not None else "unknown", advice or "", dpu=False))
    if rmw in CONFIG_FILES:
        variable, name = CONFIG_FILES[rmw]
        own = env.environ.get(variable)
        checks.append(Check("middleware config", OK, f"{variable}={own} (yours, kept)" if own else
                            f"detect.launch.py applies config/{name} ({variable})", dpu=False))
    return checks


def diagnose(env: Environment | None = None, xmodel: str | None = None, meta: str | None = None,
             bit: str | None = None, fingerprint: int | None = None, allow_other_compiler: bool = False,
             dpu_runtime: str = AUTO) -> Report:
    """Every check, in the report's order: the DPU stack first, since the checks after it are made against it."""
    env = env or Environment()
    first, found = stack_check(env, dpu_runtime)
    stack = found.stack
    checks = [first, *platform_checks(env), *pynq_checks(env, stack), *access_checks(env),
              *overlay_checks(env, bit, stack, fingerprint)]
    if xmodel:
        checks += model_checks(xmodel, meta, stack, fingerprint, allow_other_compiler)
    checks += [*ros_checks(env), *middleware_checks(env)]
    return Report(checks)
