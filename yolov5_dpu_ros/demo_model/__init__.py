"""The demo model shipped with the package: a ReLU YOLOv5n for synthetic shapes (demo/training/README.md)."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_META = DEMO_DIR / "shapes_yolov5n.yaml"
DEMO_ONNX = DEMO_DIR / "shapes_yolov5n.onnx"
