"""YOLO object detection on the Kria KV260 DPU, with a ROS 2 node and host-side tools.

Subpackages: ``core`` (ROS-free detection), ``backends`` (onnx, dpu), ``dpu`` (xmodels and the board's rules,
without the hardware), ``ros`` (the node), ``cli`` (``yolov5-dpu``). The version is package.xml's.
"""
