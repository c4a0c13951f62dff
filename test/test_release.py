"""One version: package.xml's, read by setup.py, installed as the package metadata, and CHANGELOG.rst's newest."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_package_xml_and_changelog_agree():
    xml = re.search(r"<version>([^<]+)</version>", (ROOT / "package.xml").read_text()).group(1)
    setup_version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True,
                                   text=True, check=True).stdout.strip().splitlines()[-1]
    changelog = re.search(r"^(\d+\.\d+\.\d+) \(\d{4}-\d\d-\d\d\)$", (ROOT / "CHANGELOG.rst").read_text(), re.M)
    assert setup_version == xml == changelog.group(1)
    assert importlib.metadata.version("yolov5_dpu_ros") == xml  # the installed package (re-install after a bump)
