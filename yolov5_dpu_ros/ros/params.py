"""Node parameters: declared with descriptions and ranges (from ``param_spec``), read into one NodeConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from yolov5_dpu_ros.backends import BACKENDS, BackendSpec, DpuSpec, OnnxSpec
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.core.tracking import TrackerConfig
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.dpu.verdict import parse_fingerprint
from yolov5_dpu_ros.ros.param_spec import ALL_CLASSES, CLASS_ID_FORMATS, PARAMETERS, RELIABILITY, RUNTIME
from yolov5_dpu_ros.ros.rgbd_inputs import DepthSetup, depth_setups
from yolov5_dpu_ros.ros.topic_names import topic_name_problem

__all__ = ["DepthSetup", "NodeConfig", "RUNTIME", "declare", "read", "selection", "tracker_config"]


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs at configure time, validated."""

    backend_spec: BackendSpec
    model_meta: str
    workers: int
    class_id_format: str
    publish_debug_image: bool
    input_reliability: str
    input_topics: tuple[str, ...]
    compressed: bool
    selection: PostprocessConfig
    tracker: TrackerConfig | None
    depth: tuple[DepthSetup | None, ...]  # per camera, in input_topics order


def _descriptor(name: str) -> ParameterDescriptor:
    spec = PARAMETERS[name]
    descriptor = ParameterDescriptor(description=spec.description, read_only=not spec.runtime)
    if spec.range is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                              to_value=float(spec.range[1]))]
    elif spec.range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]),
                                                 step=1)]
    return descriptor


def declare(node: Node) -> list[str]:
    """Declare every parameter; an override of the wrong type or out of range (a params file, --ros-args) is
    not fatal here: the default is declared instead and the error returned, for configure to refuse with."""
    errors = []
    for name, spec in PARAMETERS.items():
        try:
            node.declare_parameter(name, spec.default, _descriptor(name))
        except (InvalidParameterTypeException, InvalidParameterValueException) as e:
            errors.append(f"parameter {name}: {e} (expected {type(spec.default).__name__}"
                          f"{f' in {list(spec.range)}' if spec.range else ''})")
            node.declare_parameter(name, spec.default, _descriptor(name), ignore_override=True)
    return errors


def selection(values: dict) -> PostprocessConfig:
    """PostprocessConfig from parameter values (with tracking's low threshold when tracking is on); ValueError
    names the bad parameter."""
    classes = tuple(values["classes"])
    if ALL_CLASSES in classes and len(classes) > 1:
        raise ValueError(f"classes: [-1] means all classes and cannot be mixed with indices, got {list(classes)}")
    if values["tracking"] and values["track_low_threshold"] >= values["conf_threshold"]:
        raise ValueError(f"parameter track_low_threshold ({values['track_low_threshold']}) must be below "
                         f"conf_threshold ({values['conf_threshold']})")
    try:
        return PostprocessConfig(
            conf_threshold=values["conf_threshold"], iou_threshold=values["iou_threshold"],
            max_detections=values["max_detections"],
            classes=None if classes == (ALL_CLASSES,) else classes, agnostic=values["agnostic_nms"],
            low_threshold=values["track_low_threshold"] if values["tracking"] else None)
    except ValueError as e:
        raise ValueError(f"parameter {e}") from e


def tracker_config(values: dict) -> TrackerConfig | None:
    """The tracker's settings, or None with tracking off; ValueError names the bad parameter."""
    if not values["tracking"]:
        return None
    try:
        return TrackerConfig(lifetime_s=values["track_lifetime"], match_iou=values["track_match_iou"])
    except ValueError as e:
        raise ValueError(f"parameter {e}") from e


def _one_of(v: dict, name: str, allowed: tuple[str, ...]) -> str:
    if v[name] not in allowed:
        raise ValueError(f"parameter {name}: '{v[name]}' is not one of {list(allowed)}")
    return v[name]


def read(node: Node) -> NodeConfig:
    """The declared parameters as a NodeConfig; one ValueError naming the parameter and the fix."""
    v = {name: node.get_parameter(name).value for name in PARAMETERS}
    backend = _one_of(v, "backend", BACKENDS)
    topics = tuple(v["input_topics"])
    parents = [t.rstrip("/").rpartition("/")[0] for t in topics]
    if not topics or not all(t.strip("/") for t in topics) or len(set(parents)) != len(parents):
        raise ValueError(f"parameter input_topics: {list(topics)} must be non-empty and each topic in its own "
                         "namespace (e.g. front/image_raw, rear/image_raw), since outputs go there")
    for topic in topics:
        problem = topic_name_problem(topic)
        if problem:
            raise ValueError(f"parameter input_topics: '{topic}' is not a valid topic name: {problem}")
    if backend == "dpu" and not (v["xmodel"] and v["model_meta"]):
        raise ValueError("parameters xmodel and model_meta: give both for backend dpu (the compiled model and the "
                         "metadata written by model_prep)")
    try:
        fingerprint = parse_fingerprint(v["dpu_fingerprint"])
    except ValueError as e:
        raise ValueError(f"parameter dpu_fingerprint: {e}") from e
    spec: BackendSpec = (DpuSpec(Path(v["xmodel"]), Path(v["bit"]) if v["bit"] else None, fingerprint,
                                 v["allow_other_compiler"]) if backend == "dpu" else
                         OnnxSpec(Path(v["onnx_model"] or DEMO_ONNX), v["threads"], v["onnx_spin"]))
    return NodeConfig(spec, v["model_meta"] or str(DEMO_META), v["workers"],
                      _one_of(v, "class_id_format", CLASS_ID_FORMATS), v["publish_debug_image"],
                      _one_of(v, "input_reliability", RELIABILITY), topics, v["compressed"], selection(v),
                      tracker_config(v), depth_setups(v, topics))
