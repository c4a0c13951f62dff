"""Middleware settings for camera-sized messages (ROS-free, so the launch file and the doctor use them too).

A 1280x720 bgr8 Image is 2.7 MB: with the middlewares' defaults most such frames never reach another process
(shared/notes/platform-facts.md section 10, measured on Humble). The package ships a CycloneDDS config (a large
socket receive buffer, capped by the kernel's ``net.core.rmem_max``) and a Fast DDS profile (a shared-memory
transport whose segment holds several frames; the publishing process needs it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

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
