"""Run YOLOv5 7.0 training (the ``yolov5`` package's train.py, unchanged) offline on current numpy/torch.

    python -m demo.train_yolov5 --img 320 --data DATA.yaml --cfg yolov5n_relu.yaml --weights '' ...

Three compatibility settings, nothing else: ``np.trapz`` (removed in numpy 2.4, used by YOLOv5's
metrics) points to ``np.trapezoid``; ``torch.load`` keeps its pre-2.6 default, which YOLOv5's
checkpoint handling relies on; and a local font stands in for the Arial.ttf YOLOv5 downloads.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np


def main() -> None:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    config = Path(os.environ.setdefault("YOLOV5_CONFIG_DIR", tempfile.mkdtemp(prefix="yolov5_config_")))
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (config / name).exists():
            shutil.copy(font, config / name)
    sys.argv = ["yolov5.train", *sys.argv[1:]]
    runpy.run_module("yolov5.train", run_name="__main__")


if __name__ == "__main__":
    main()
