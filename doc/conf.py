"""Sphinx configuration (rosdoc2's layout: ``doc/conf.py`` beside ``package.xml``'s package; Markdown through
myst-parser, the Python API through autodoc). Every build regenerates the reference tables from the code and the
figures from the recorded benchmark results: ``sphinx-build -W doc doc/_build/html``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import figures  # noqa: E402  (doc/ and the package are importable only from here on)
import reference  # noqa: E402

project = "yolov5_dpu_ros"
release = version = re.search(r"<version>([^<]+)</version>", (ROOT / "package.xml").read_text()).group(1)
copyright = "the yolov5_dpu_ros developers, Apache-2.0"
extensions = ["myst_parser", "sphinx.ext.autodoc", "ros_roles"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "reference.py", "figures.py"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_title = f"yolov5_dpu_ros {version}"
nitpicky = False

reference.write_tables(HERE / "_generated")
figures.write_figures(HERE / "_generated")
