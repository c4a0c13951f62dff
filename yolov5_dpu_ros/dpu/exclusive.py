"""One DPU process per board: who holds the DPU now, found without touching it.

PYNQ downloads the bitstream on every ``Overlay()`` (pynq-dpu never passes ``download=False``), and VART
holds ``lockf(F_LOCK)`` on ``/tmp/DPU_<core>`` for its device handle's life (Vitis AI 2.5,
``vart/util/src/file_lock_lnx.cpp``). A second DPU process reprograms the PL under the first, whose next job
ends in VART's ``dpu timeout!`` abort, and then blocks on the lock without a word. The kernel lists every
POSIX lock in ``/proc/locks`` with its pid: reading it finds the holder without taking the lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DPU_LOCKS = Path("/tmp")
DPU_LOCK_GLOB = "DPU_*"
PROC = Path("/proc")


@dataclass(frozen=True)
class Holder:
    """A process holding a DPU lock file."""

    pid: int
    command: str  # its command line, or "" where the OS does not tell
    lock: Path

    def describe(self) -> str:
        return f"pid {self.pid}" + (f" ({self.command})" if self.command else "") + f", lock {self.lock}"


def _key(path: Path) -> str | None:
    """The file as /proc/locks names it: MAJOR:MINOR:INODE, major and minor in two-digit hex (fs/locks.c)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def _command(pid: int, proc: Path) -> str:
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def lock_holders(locks: Path = DPU_LOCKS, proc: Path = PROC) -> list[Holder]:
    """Every process holding a POSIX lock on a DPU lock file (waiters, marked ``->`` in /proc/locks, are not
    holders); empty where there is none or the OS does not list locks."""
    files = {key: path for path in sorted(locks.glob(DPU_LOCK_GLOB)) if (key := _key(path))}
    try:
        table = (proc / "locks").read_text()
    except OSError:
        return []
    holders = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] not in ("POSIX", "OFDLCK", "FLOCK"):
            continue
        pid, key = fields[4], fields[5]
        if key in files and pid.lstrip("-").isdigit() and int(pid) > 0:
            holders.append(Holder(int(pid), _command(int(pid), proc), files[key]))
    return holders


def other_holders(locks: Path = DPU_LOCKS, proc: Path = PROC) -> list[Holder]:
    """The DPU's holders other than this process."""
    return [h for h in lock_holders(locks, proc) if h.pid != os.getpid()]


def busy_message(holders: list[Holder]) -> str:
    """One line: who holds the DPU and what to do."""
    who = "; ".join(h.describe() for h in holders)
    return (f"the DPU is in use by another process ({who}): one DPU process per board, or the second reprograms "
            "the FPGA under the first. Stop that process first, or serve every camera from one node "
            "(input_topics, depth_topics) instead of starting a second node or yolov5-dpu --backend dpu")
