"""Names a user chooses from (backends, class id formats, input reliability): plain constants, importable
without numpy or OpenCV, so ``ros2 launch`` and the parameter spec stay light."""

BACKENDS = ("onnx", "dpu")
CLASS_ID_FORMATS = ("name", "index")
RELIABILITY = ("auto", "best_effort", "reliable")
