"""Middleware settings for camera-sized messages (ROS-free, so the launch file and the doctor use them too).

A 1280x720 bgr8 Image is 2.7 MB: with the middlewares' defaults most such frames never reach another process
(shared/notes/platform-facts.md section 10, measured on Humble). The package ships a CycloneDDS config (a large
socket receive buffer, capped by the kernel's ``net.core.rmem_max``) and a Fast DDS profile (a shared-memory
transport whose segment holds several frames; the publishing process needs it too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, MutableMapping

CYCLONE = "rmw_cyclonedds_cpp"
FASTDDS = "rmw_fastrtps_cpp"
HUMBLE_DEFAULT_RMW = FASTDDS
CONFIG_FILES = {CYCLONE: ("CYCLONEDDS_URI", "cyclonedds.xml"),
                FASTDDS: ("FASTRTPS_DEFAULT_PROFILES_FILE", "fastdds.xml")}
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
FRAME_720P_BGR8 = 1280 * 720 * 3
MIN_RMEM = 4 * 1024 * 1024  # measured enough for 1280x720 bgr8 at 30 Hz with CycloneDDS (section 10)
WANTED_RMEM = 64 * 1024 * 1024  # the config's max
SYSCTL_FIX = (f"sudo sysctl -w net.core.rmem_max={WANTED_RMEM}; to keep it, "
              f"echo 'net.core.rmem_max={WANTED_RMEM}' | sudo tee /etc/sysctl.d/60-yolov5-dpu-ros.conf")


def active_rmw(env: Mapping[str, str]) -> str:
    """The RMW this environment selects (Humble's default, Fast DDS, when RMW_IMPLEMENTATION is unset)."""
    return env.get("RMW_IMPLEMENTATION") or HUMBLE_DEFAULT_RMW


def middleware_environment(env: Mapping[str, str], config_dir: Path, enabled: bool = True) -> dict[str, str]:
    """The variables that apply the package's config for the active RMW: none when turned off, for another
    RMW, or when the user already set that middleware's variable (theirs wins)."""
    if not enabled or active_rmw(env) not in CONFIG_FILES:
        return {}
    variable, name = CONFIG_FILES[active_rmw(env)]
    if env.get(variable):
        return {}
    path = config_dir / name
    return {variable: f"file://{path}" if variable == "CYCLONEDDS_URI" else str(path)}


def read_rmem_max(path: Path = RMEM_MAX) -> int | None:
    """The kernel's cap on socket receive buffers, in bytes (None where it cannot be read: not Linux)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def rmem_advice(rmem_max: int | None) -> str | None:
    """What to do when the kernel caps socket receive buffers below what camera-sized frames need."""
    if rmem_max is None or rmem_max >= MIN_RMEM:
        return None
    return (f"the kernel caps socket receive buffers at {rmem_max} bytes (net.core.rmem_max), less than two "
            f"1280x720 bgr8 frames ({FRAME_720P_BGR8} bytes each): frames from a camera in another process "
            f"are lost in transport. Raise it: {SYSCTL_FIX}")


RMW_CHOICE = "YOLOV5_DPU_RMW"  # the user's choice of RMW for the node: auto (the default) or an RMW name
RMW_REASON = "YOLOV5_DPU_RMW_REASON"  # why the node got its RMW, set by whoever chose it (the launch file)
ROOT_REASON = ("the node runs as root (the dpu backend needs it) and Fast DDS moves no data between root and "
               "another user's processes over shared memory; CycloneDDS over UDP reaches every camera driver, "
               "Fast DDS ones included")
CYCLONE_MISSING = ("CycloneDDS is not installed (apt install ros-humble-rmw-cyclonedds-cpp): as root on Fast DDS "
                   "this node receives nothing from a camera driver run by another user")


@dataclass(frozen=True)
class NodeMiddleware:
    """The RMW the node runs on, why, and the variables that give it to the node's process."""

    rmw: str
    reason: str
    environment: dict[str, str]


def rmw_installed(rmw: str, env: Mapping[str, str]) -> bool:
    """Whether an RMW package is in the ament index (True where no index is sourced: nothing to tell)."""
    prefixes = [Path(p) for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return not prefixes or any((p / "share/ament_index/resource_index/packages" / rmw).is_file() for p in prefixes)


def node_middleware(env: Mapping[str, str], config_dir: Path, root: bool, requested: str = "auto",
                    config: bool = True) -> NodeMiddleware:
    """The node's RMW: the one asked for; else CycloneDDS when the node runs as root (so a camera driver of any
    user and RMW reaches it); else the shell's. With it, the package's config for that RMW unless the user set
    their own (``middleware_environment``)."""
    requested = requested.strip() or "auto"
    shell = active_rmw(env)
    if requested != "auto":
        rmw, reason = requested, f"asked for ({RMW_CHOICE} / rmw:={requested})"
    elif root and (shell == CYCLONE or rmw_installed(CYCLONE, env)):
        rmw, reason = CYCLONE, ROOT_REASON
    elif root:
        rmw, reason = shell, CYCLONE_MISSING
    else:
        rmw = shell
        reason = ("the shell's RMW_IMPLEMENTATION" if env.get("RMW_IMPLEMENTATION") else "Humble's default") + \
            " (the node does not run as root)"
    chosen = {**env, "RMW_IMPLEMENTATION": rmw}
    return NodeMiddleware(rmw, reason, {"RMW_IMPLEMENTATION": rmw, RMW_REASON: reason,
                                        **middleware_environment(chosen, config_dir, config)})


def camera_advice(node_rmw: str, shell_rmw: str, root: bool) -> str:
    """What the node's RMW means for a camera driver started by another user in this shell's RMW."""
    if not root:
        return "the node and a camera driver of the same user exchange frames on any RMW"
    if node_rmw == CYCLONE:
        return (f"a camera driver run by another user on {shell_rmw} reaches the root node over UDP (measured: "
                "30 of 30 Hz from a stock Fast DDS camera)")
    return (f"a camera driver run by another user reaches this root node on {node_rmw} only over UDP; Fast DDS "
            "delivers nothing across users (measured: 0 Hz): use rmw:=auto with CycloneDDS installed")


def prepare_node_environment(env: MutableMapping[str, str], config_dir: Path, root: bool) -> str:
    """Before ``rclpy.init``: the choice a launch file made stands; a node started otherwise (``ros2 run``) gets
    the same rule and config here (``YOLOV5_DPU_RMW`` asks for another RMW). Returns why it has its RMW."""
    if env.get(RMW_REASON):
        return env[RMW_REASON]
    chosen = node_middleware(env, config_dir, root, env.get(RMW_CHOICE, "auto"))
    env.update(chosen.environment)
    return chosen.reason
