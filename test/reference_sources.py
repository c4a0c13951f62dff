"""Reference code the tests run against, fetched from PyPI once into a cache outside the repository.

Only the files the tests read are extracted (``~/.cache/yolov5_dpu_ros``, ``YOLOV5_DPU_CACHE`` to move
it); nothing is committed, and a test that needs a source it cannot fetch is skipped with the reason.
- pynq-dpu 2.5.1 (Apache-2.0): its ``dpu.py`` and the DPU-PYNQ YOLOv3 notebook, with ``pip download``.
- YOLOX 0.3.0 (Megvii, Apache-2.0): its sdist's metadata cannot be built without torch's build tools,
  so the sdist file itself is fetched from PyPI's simple index.
Functions are taken from these files by name (``functions``), so the tests call the references' own code.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CACHE = Path(os.environ.get("YOLOV5_DPU_CACHE", Path.home() / ".cache" / "yolov5_dpu_ros"))


class SourceUnavailableError(Exception):
    """The reference could not be fetched here; the message says which and why."""


def _pip_download(requirement: str, folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), requirement],
                   check=True, capture_output=True, timeout=180)
    (sdist,) = folder.glob("*.tar.gz")
    return sdist


def _simple_index_download(name: str, filename: str, folder: Path) -> Path:
    page = urllib.request.urlopen(f"https://pypi.org/simple/{name}/", timeout=60).read().decode()
    (url,) = {u for u in re.findall(r'href="([^"#]+)', page) if u.endswith("/" + filename)}
    target = folder / filename
    target.write_bytes(urllib.request.urlopen(url, timeout=120).read())
    return target


@dataclass(frozen=True)
class Sdist:
    """Some files of one sdist, extracted into the cache whole or not at all."""

    top: str  # the sdist's top folder, e.g. pynq_dpu-2.5.1
    members: tuple[str, ...]  # paths below ``top``
    fetch: Callable[[Path], Path]  # downloads the sdist into a folder, returns its path

    def folder(self) -> Path:
        target = CACHE / self.top
        if all((target / m).is_file() for m in self.members):
            return target
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            try:
                sdist = self.fetch(Path(tmp))
                with tarfile.open(sdist) as tar:
                    tar.extractall(Path(tmp) / "x", members=[tar.getmember(f"{self.top}/{m}") for m in self.members],
                                   filter="data")
            except (OSError, subprocess.SubprocessError, ValueError, KeyError, tarfile.TarError) as e:
                raise SourceUnavailableError(f"cannot fetch {self.top} from PyPI ({type(e).__name__}: {e}); the "
                                        "tests that run its code need it once") from e
            if target.exists():
                shutil.rmtree(target)
            os.replace(Path(tmp) / "x" / self.top, target)
        return target


PYNQ_DPU = Sdist("pynq_dpu-2.5.1", ("pynq_dpu/__init__.py", "pynq_dpu/dpu.py", "pynq_dpu/notebooks/dpu_yolov3.ipynb",
                                    "pynq_dpu/notebooks/img/voc_classes.txt"),
                 lambda folder: _pip_download("pynq-dpu==2.5.1", folder))
YOLOX = Sdist("yolox-0.3.0", ("yolox/data/data_augment.py", "yolox/utils/demo_utils.py"),
              lambda folder: _simple_index_download("yolox", "yolox-0.3.0.tar.gz", folder))


def functions(source: str, names: tuple[str, ...], namespace: dict) -> dict:
    """The named top-level functions of a Python source (a file, or a notebook's code cells joined), run in
    ``namespace`` (its imports); the rest of the source is not run."""
    tree = ast.parse(source)
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in wanted}
    if missing:
        raise SourceUnavailableError(f"functions {sorted(missing)} not found in the reference source")
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "<reference>", "exec"), namespace)
    return {name: namespace[name] for name in names}


def notebook_source(path: Path) -> str:
    """A notebook's code cells as one Python source, IPython magics left out."""
    cells = json.loads(path.read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
