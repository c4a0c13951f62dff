"""The package as colcon builds and installs it (colcon-core + colcon-ros, ament_python), and its console scripts
run under the python3 of the shell that starts them: on a KV260 that is the PYNQ venv's, the one with pynq_dpu,
vart and xir. colcon runs setup.py with its own interpreter (``/usr/bin/python3`` on Ubuntu) and setuptools
writes that interpreter into the scripts unless ``[build_scripts] executable`` says otherwise.

colcon gets a virtual environment of its own in the reference cache (``~/.cache/yolov5_dpu_ros``), playing the
system Python that colcon runs under on the board; the test skips with the reason where it cannot be set up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from reference_sources import CACHE

ROOT = Path(__file__).resolve().parents[1]
COLCON = ("colcon-core==0.21.3", "colcon-ros==0.5.0", "setuptools<81")


def _colcon_python() -> Path:
    """A venv with colcon-core and colcon-ros (built once into the cache), or skip saying why."""
    folder = CACHE / "colcon-venv"
    python = folder / "bin" / "python"
    if not (folder / "ready").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        venv.create(folder, with_pip=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *COLCON], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip(f"cannot install colcon here: {done.stderr[-500:]}")
        (folder / "ready").write_text("")
    return python


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace holding this checkout's files, built with ``colcon build`` as on the board."""
    ws = tmp_path_factory.mktemp("ws")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (ws / "src" / "yolov5_dpu_ros" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, ws / "src" / "yolov5_dpu_ros" / name)
    python = _colcon_python()
    done = subprocess.run([str(python), "-c", "import sys; from colcon_core.command import main; sys.exit(main())",
                           "build"], cwd=ws, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ws / "install" / "yolov5_dpu_ros"


def test_colcon_installs_the_scripts_with_the_shells_python3(workspace):
    scripts = sorted((workspace / "lib" / "yolov5_dpu_ros").iterdir())
    assert [s.name for s in scripts] == ["detect_node", "yolov5-dpu"]
    for script in scripts:
        assert script.read_text().splitlines()[0] == "#!/usr/bin/env python3", script
        assert os.access(script, os.X_OK)
    assert (workspace / "share" / "yolov5_dpu_ros" / "launch" / "detect.launch.py").is_file()
    assert (workspace / "share" / "ament_index" / "resource_index" / "packages" / "yolov5_dpu_ros").is_file()


def _stand_in_pynq_venv(folder: Path) -> Path:
    """TEST DOUBLE of Kria-PYNQ's venv (/usr/local/share/pynq-venv, made with --system-site-packages): its own
    interpreter, the packages it holds (pynq, pynq_dpu, vart, xir: empty stand-ins, only importable), and the
    runtime dependencies the board's system Python provides (here: this test run's site-packages)."""
    venv.create(folder, with_pip=False, system_site_packages=True)
    site = Path(subprocess.run([str(folder / "bin" / "python"), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "test_system_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name in ("pynq", "pynq_dpu", "vart", "xir"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text('"""TEST DOUBLE: importable only (yolov5_dpu_ros tests)."""\n')
    return folder


def _doctor(workspace: Path, shell: str) -> dict:
    """``yolov5-dpu doctor --json`` as installed, started from a bash shell that first runs ``shell``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (workspace / "lib").glob("python3*/"
                                                                                               "site-packages"))}
    script = workspace / "lib" / "yolov5_dpu_ros" / "yolov5-dpu"
    done = subprocess.run(["bash", "-c", f"{shell}; exec {script} doctor --json"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_the_installed_cli_runs_under_the_sourced_venvs_python(workspace, tmp_path):
    pynq_venv = _stand_in_pynq_venv(tmp_path / "pynq-venv")
    checks = _doctor(workspace, f"source {pynq_venv}/bin/activate")
    assert checks["PYNQ venv"]["status"] == "ok", checks["PYNQ venv"]
    assert checks["PYNQ venv"]["found"] == f"{pynq_venv}/bin/python3 imports pynq, pynq_dpu, vart, xir"
    outside = _doctor(workspace, f"export PATH={Path(sys.executable).parent}:$PATH")  # a Python without them
    assert outside["PYNQ venv"]["status"] == "fail"
    assert "cannot import pynq, pynq_dpu, vart, xir" in outside["PYNQ venv"]["found"]
