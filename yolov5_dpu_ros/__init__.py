"""YOLOv5 object detection on the Kria KV260 DPU, with a ROS 2 node and host-side tools."""

__version__ = "0.1.0"
