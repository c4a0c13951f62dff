"""The ``yolov5-dpu`` command and its sub-commands (detect, bag, compare)."""
