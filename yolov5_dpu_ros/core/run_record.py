"""Did the previous run of this node end without shutting down? A file per node names the running process.

A DPU fault does not raise: VART's glog CHECK or ``LOG(FATAL)`` aborts the process (SIGABRT), and the launch
file's ``respawn`` starts it again. The record is written at start and removed at every exit the node walks
through itself, so a record left behind by a process that no longer runs means the previous run was killed.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path


def record_path(node: str, folder: Path | None = None) -> Path:
    """The record of one node (by its fully qualified name) in the machine's temporary folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", node.strip("/")) or "node"
    return (folder or Path(tempfile.gettempdir())) / f"yolov5_dpu_ros.{name}.run"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def previous_abnormal_exit(path: Path) -> str | None:
    """One line about the previous run when it ended without shutting down (its record is still there and its
    process is gone); None when it ended cleanly, never ran, or still runs (another node of the same name)."""
    try:
        pid_text, started = path.read_text().split(maxsplit=1)
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if pid == os.getpid() or _alive(pid):
        return None
    return (f"restarted after an abnormal exit: the previous run (pid {pid}, started {started.strip()}) ended "
            "without shutting down; with the dpu backend that is a DPU fault (VART aborts the process), see the log "
            "lines before this start")


def start(path: Path) -> None:
    """Record this process as the node's running one (written whole: a temporary file renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    os.replace(tmp, path)


def finish(path: Path) -> None:
    """The node ends by its own hand: remove its record (only if it is still this process's)."""
    try:
        if int(path.read_text().split()[0]) == os.getpid():
            path.unlink()
    except (OSError, ValueError, IndexError):
        pass
