"""``/etc/vart.conf`` as pynq-dpu (2.5.1; 3.5.0 has the same code) and VART read it: which xclbin VART loads, and
whether pynq-dpu can read it.

pynq-dpu's ``check_vart_config`` opens the file for reading before it rewrites it: a missing file is a
``FileNotFoundError``; a first line without ``/usr/lib/dpu.xclbin`` and without a space is an ``IndexError``
(it prints the old value with ``line.strip('\\n').split(' ')[1]``). It then writes
``firmware: /usr/lib/dpu.xclbin``, and VART loads the xclbin that line names when a runner opens the device.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

VART_CONF = Path("/etc/vart.conf")
VART_FIRMWARE = "/usr/lib/dpu.xclbin"  # what pynq-dpu writes into vart.conf, always
CORRECT = f"firmware: {VART_FIRMWARE}"


def read_text(path: Path) -> str | None:
    """The file's text, or None when it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def problem(text: str | None) -> str | None:
    """Why pynq-dpu's ``check_vart_config`` would raise on this vart.conf text (None: it reads it)."""
    if text is None:
        return "absent: pynq-dpu reads it before rewriting it and raises FileNotFoundError"
    first = text.split("\n", 1)[0]
    if VART_FIRMWARE not in first and len(first.split(" ")) < 2:
        return f"malformed (first line {first!r}): pynq-dpu raises IndexError reading it"
    return None


def firmware(text: str | None) -> str | None:
    """The xclbin a vart.conf text names on its ``firmware:`` line."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "firmware" and value.strip():
            return value.strip()
    return None


def repair(path: Path = VART_CONF) -> str | None:
    """Write ``firmware: /usr/lib/dpu.xclbin`` when pynq-dpu could not read the file (needs root); returns what
    was wrong, or None when nothing was. Written beside the file and renamed: never half-written."""
    wrong = problem(read_text(path))
    if wrong is None:
        return None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".vart.conf.")
        with os.fdopen(fd, "w") as out:
            out.write(CORRECT + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ValueError(f"{path} is {wrong}, and writing '{CORRECT}' into it failed ({e}): run as root, or write "
                         f"it yourself: echo '{CORRECT}' | sudo tee {path}") from e
    return wrong
