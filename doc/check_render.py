"""The built quick-start page as a reader sees it: rendered by headless Chromium (Debian's ``chromium``), its DOM
holding the code blocks and figures, every figure file there, and a screenshot that shows text and the figure.

    python doc/check_render.py SITE OUT.png      # SITE: sphinx-build's html folder; exit 1 naming what is wrong
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600"]


def chromium() -> str:
    """Debian's chromium (or Chrome) on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("no chromium on PATH: apt-get install chromium")


def problems(site: Path, screenshot: Path) -> list[str]:
    """What a reader would miss on the quick-start page (empty: it renders)."""
    page = (site / "quickstart.html").resolve()
    browser = chromium()
    dom = subprocess.run([browser, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = []
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", dom, re.S)
    if len([b for b in blocks if "yolov5-dpu" in b or "bash" in b]) < 2:
        found.append(f"{len(blocks)} code blocks rendered, the two commands not among them")
    images = re.findall(r"<img[^>]*src=\"([^\"]+)\"", dom)
    if not images:
        found.append("no figure in the rendered page")
    found += [f"figure {src} missing" for src in images if not (page.parent / src).is_file()]
    subprocess.run([browser, *FLAGS, f"--screenshot={screenshot.resolve()}", page.as_uri()], capture_output=True,
                   timeout=120)
    shot = cv2.imread(str(screenshot))
    if shot is None:
        return found + ["no screenshot written"]
    dark = np.count_nonzero(shot.max(axis=2) < 80)  # text
    blue = np.count_nonzero((shot[..., 0].astype(int) - shot[..., 2] > 40) & (shot[..., 0] > 150))  # the figure
    if dark < 2000:
        found.append(f"the screenshot shows almost no text ({dark} dark pixels)")
    if blue < 200:
        found.append(f"the screenshot shows no figure ({blue} figure-blue pixels)")
    return found


if __name__ == "__main__":
    wrong = problems(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(wrong) or f"quickstart.html renders: code blocks, figures and text visible ({sys.argv[2]})")
    sys.exit(1 if wrong else 0)
