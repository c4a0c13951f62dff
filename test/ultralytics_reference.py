"""Import Ultralytics (the ``ultralytics`` PyPI package, AGPL-3.0: a test reference only, nothing copied) for the
YOLOv8 tests.

Ultralytics reads torchvision's version from its package metadata when it is imported, and PyPI's torchvision does
not load with the CPU torch of these machines. Its detection head and ``non_max_suppression`` need no torchvision
(its NMS falls back to its own when torchvision is not imported), so this helper puts a metadata-only
``torchvision`` distribution (TEST STAND-IN: a METADATA file, no code) on the path before the import, and points
Ultralytics' settings at a temporary folder. Nothing here is shipped or used outside the tests.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path


def load() -> types.SimpleNamespace:
    """Ultralytics' DetectionModel, Detect and non_max_suppression; ImportError when it is not installed."""
    if importlib.util.find_spec("ultralytics") is None:
        raise ImportError("ultralytics is not installed: pip install --no-deps ultralytics")
    try:
        importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:  # (the YOLOv5 reference's stand-in module has no metadata)
        site = Path(tempfile.mkdtemp(prefix="torchvision-metadata-"))
        (site / "torchvision-0.28.0.dist-info").mkdir()
        (site / "torchvision-0.28.0.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: torchvision\nVersion: 0.28.0\n")
        sys.path.append(str(site))
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-settings-"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.nms import non_max_suppression

    return types.SimpleNamespace(DetectionModel=DetectionModel, Detect=Detect, nms=non_max_suppression)
