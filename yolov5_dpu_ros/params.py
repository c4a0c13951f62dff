"""Node parameters: declared with descriptions and ranges, read into one frozen NodeConfig."""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from .backends import BACKENDS
from .conversions import CLASS_ID_FORMATS
from .demo_model import DEMO_META, DEMO_ONNX
from .dpu_verdict import parse_fingerprint
from .postprocess import PostprocessConfig

RELIABILITY = ("best_effort", "reliable")
ALL_CLASSES = -1  # the `classes` default: [-1] keeps every class (ROS 2 cannot declare an empty int list)

# name: (default, description, range or None, changes at runtime)
PARAMETERS = {
    "backend": ("onnx", f"inference backend: {' | '.join(BACKENDS)}", None, False),
    "xmodel": ("", "dpu: compiled xmodel (Vitis AI 2.5, KV260)", None, False),
    "bit": ("", "dpu: overlay .bit with .hwh and .xclbin beside it; empty = the one inside pynq_dpu", None, False),
    "dpu_fingerprint": ("", "dpu: the overlay DPU's fingerprint, hex; empty = pynq-dpu 2.5.1's KV260 overlay "
                        "(0x101000016010407)", None, False),
    "allow_other_compiler": (False, "dpu: run a model of another Vitis AI whose fingerprint matches the overlay "
                             "(reported both to work and to kill the process on VART 2.5)", None, False),
    "model_meta": ("", "metadata YAML of the model (sizes, strides, anchors, names); empty = the demo model's",
                   None, False),
    "onnx_model": ("", "onnx: raw-head YOLOv5 ONNX; empty = the demo model", None, False),
    "conf_threshold": (0.25, "keep detections scoring above this", FloatingPointRange(from_value=0.001,
                                                                                       to_value=0.999), True),
    "iou_threshold": (0.45, "NMS IoU above which the weaker box is dropped",
                      FloatingPointRange(from_value=0.01, to_value=1.0), True),
    "max_detections": (300, "most detections per frame", IntegerRange(from_value=1, to_value=10000), True),
    "classes": ([ALL_CLASSES], "class indices to keep; [-1] keeps all", None, True),
    "agnostic_nms": (False, "NMS across classes", None, True),
    "workers": (2, "worker threads, each with its own runner, overlapping CPU and DPU work",
                IntegerRange(from_value=1, to_value=8), False),
    "class_id_format": ("name", f"hypothesis class_id as: {' | '.join(CLASS_ID_FORMATS)}", None, False),
    "publish_debug_image": (True, "publish annotated images on detections/image while someone subscribes",
                            None, False),
    "input_reliability": ("best_effort", f"input QoS reliability: {' | '.join(RELIABILITY)} (depth is 1)",
                          None, False),
    "input_topics": (["/image_raw"], "image topics; with several, each one's outputs go under its namespace",
                     None, False),
    "compressed": (False, "subscribe to sensor_msgs/CompressedImage (also when a topic ends in /compressed)",
                   None, False),
    "autostart": (True, "configure and activate at start (false: wait for lifecycle transitions)", None, False),
}
RUNTIME = tuple(name for name, (_, _, _, runtime) in PARAMETERS.items() if runtime)


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs at configure time, validated."""

    backend: str
    model: str
    bit: str
    dpu_fingerprint: int
    allow_other_compiler: bool
    model_meta: str
    workers: int
    class_id_format: str
    publish_debug_image: bool
    input_reliability: str
    input_topics: tuple[str, ...]
    compressed: bool
    selection: PostprocessConfig


def declare(node: Node) -> None:
    """Declare every parameter with its description, range and whether it may change at runtime."""
    for name, (default, text, value_range, runtime) in PARAMETERS.items():
        descriptor = ParameterDescriptor(description=text, read_only=not runtime)
        if isinstance(value_range, FloatingPointRange):
            descriptor.floating_point_range = [value_range]
        elif isinstance(value_range, IntegerRange):
            descriptor.integer_range = [value_range]
        node.declare_parameter(name, default, descriptor)


def selection(values: dict) -> PostprocessConfig:
    """PostprocessConfig from parameter values; ValueError names the bad parameter."""
    classes = tuple(int(c) for c in values["classes"])
    if ALL_CLASSES in classes and len(classes) > 1:
        raise ValueError(f"classes: [-1] means all classes and cannot be mixed with indices, got {list(classes)}")
    try:
        return PostprocessConfig(
            conf_threshold=float(values["conf_threshold"]), iou_threshold=float(values["iou_threshold"]),
            max_detections=int(values["max_detections"]),
            classes=None if classes == (ALL_CLASSES,) else classes, agnostic=bool(values["agnostic_nms"]))
    except ValueError as e:
        raise ValueError(f"parameter {e}") from e


def read(node: Node) -> NodeConfig:
    """The declared parameters as a NodeConfig; one ValueError naming the parameter and the fix."""
    v = {name: node.get_parameter(name).value for name in PARAMETERS}
    if v["backend"] not in BACKENDS:
        raise ValueError(f"parameter backend: '{v['backend']}' is not one of {list(BACKENDS)}")
    if v["input_reliability"] not in RELIABILITY:
        raise ValueError(f"parameter input_reliability: '{v['input_reliability']}' is not one of {list(RELIABILITY)}")
    if v["class_id_format"] not in CLASS_ID_FORMATS:
        raise ValueError(f"parameter class_id_format: '{v['class_id_format']}' is not one of {list(CLASS_ID_FORMATS)}")
    topics = tuple(v["input_topics"])
    parents = [t.rstrip("/").rpartition("/")[0] for t in topics]
    if not topics or len(set(parents)) != len(parents):
        raise ValueError(f"parameter input_topics: {list(topics)} must be non-empty and each topic in its own "
                         "namespace (e.g. /front/image_raw, /rear/image_raw), since outputs go there")
    if v["backend"] == "dpu" and not (v["xmodel"] and v["model_meta"]):
        raise ValueError("parameters xmodel and model_meta: give both for backend dpu (the compiled model and the "
                         "metadata written by model_prep)")
    model = v["xmodel"] if v["backend"] == "dpu" else v["onnx_model"] or str(DEMO_ONNX)
    try:
        fingerprint = parse_fingerprint(v["dpu_fingerprint"])
    except ValueError as e:
        raise ValueError(f"parameter dpu_fingerprint: {e}") from e
    return NodeConfig(v["backend"], model, v["bit"], fingerprint, bool(v["allow_other_compiler"]),
                      v["model_meta"] or str(DEMO_META), int(v["workers"]),
                      v["class_id_format"],
                      bool(v["publish_debug_image"]), v["input_reliability"], topics, bool(v["compressed"]),
                      selection(v))
