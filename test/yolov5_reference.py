"""Import the YOLOv5 reference implementation (the ``yolov5`` PyPI package, 7.0.9) for tests.

PyPI's torchvision does not load with the CPU torch of these machines, yet YOLOv5's modules import
it at module level. This helper registers a stand-in ``torchvision`` module for the tests only:
its one function used here, ``ops.nms``, is OpenCV's independent NMS (``cv2.dnn.NMSBoxes``: greedy,
stable score order, drops IoU > threshold); the other attributes exist only so the imports succeed.
It also skips ``yolov5/__init__.py``, which pulls in hub helpers that need the real torchvision.
Nothing here is shipped or used outside the tests.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import cv2
import numpy as np


def _opencv_nms(boxes, scores, iou_threshold):
    import torch

    b = boxes.detach().double().numpy()
    xywh = np.column_stack((b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.detach().double().numpy().tolist(), 0.0, float(iou_threshold))
    return torch.as_tensor(np.asarray(keep, dtype=np.int64).reshape(-1))


def _install_torchvision_standin() -> None:
    if "torchvision" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.nms = _opencv_nms
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    tv.datasets = types.ModuleType("torchvision.datasets")
    tv.datasets.ImageFolder = type("ImageFolder", (), {})
    sys.modules.update({"torchvision": tv, "torchvision.ops": tv.ops, "torchvision.transforms": tv.transforms,
                        "torchvision.transforms.functional": tv.transforms.functional,
                        "torchvision.datasets": tv.datasets})


def load() -> types.SimpleNamespace:
    """YOLOv5's Model, Detect, Conv, letterbox, non_max_suppression and scale_boxes."""
    spec = importlib.util.find_spec("yolov5")
    if spec is None:
        raise ImportError("the yolov5 reference package is not installed: pip install --no-deps yolov5==7.0.9")
    _install_torchvision_standin()
    if "yolov5" not in sys.modules:
        # the package without running its __init__ (which needs the real torchvision); a module made from the
        # spec keeps __spec__, so a second load in the same process (mutmut runs the suite twice) finds it
        sys.modules["yolov5"] = importlib.util.module_from_spec(spec)
    # yolov5.utils.general replaces cv2.imread/imwrite/imshow with its own two-argument versions on
    # import; put OpenCV's back so the code under test runs against the real library
    saved = cv2.imread, cv2.imwrite, cv2.imshow
    try:
        from yolov5.models.common import Conv
        from yolov5.models.yolo import Detect, Model
        from yolov5.utils.augmentations import letterbox
        from yolov5.utils.general import non_max_suppression, scale_boxes
    finally:
        cv2.imread, cv2.imwrite, cv2.imshow = saved

    return types.SimpleNamespace(Model=Model, Detect=Detect, Conv=Conv, letterbox=letterbox,
                                 non_max_suppression=non_max_suppression, scale_boxes=scale_boxes,
                                 models_dir=pkg_models_dir(spec))


def pkg_models_dir(spec) -> str:
    return f"{list(spec.submodule_search_locations)[0]}/models"
