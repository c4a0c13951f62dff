"""The node's configuration from parameter values (ROS-free): one validated NodeConfig, runtime updates, and which
parameter may change in which lifecycle state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolov5_dpu_ros.backends import BACKENDS, BackendSpec, DpuSpec, OnnxSpec
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.core.tracking import TrackerConfig
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.dpu.doctor import diagnose
from yolov5_dpu_ros.dpu.stacks import CHOICES as DPU_RUNTIMES
from yolov5_dpu_ros.dpu.verdict import parse_fingerprint
from yolov5_dpu_ros.ros.param_spec import ALL_CLASSES, CLASS_ID_FORMATS, PARAMETERS, RELIABILITY
from yolov5_dpu_ros.ros.rgbd_inputs import DepthSetup, depth_setups
from yolov5_dpu_ros.ros.topic_names import topic_name_problem

# the only parameters that stay fixed for the process, each with the reason
FIXED = {"autostart": "it is read once, when the process starts (autostart configures and activates the node then)"}


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
    depth_wait: float  # seconds a colour frame's 3D output waits for its depth
    tf_timeout: float  # seconds a 3D output waits for the transform at its stamp


@dataclass(frozen=True)
class RuntimeUpdate:
    """What a change of runtime parameters sets: the detectors' selection and the trackers' settings."""

    selection: PostprocessConfig
    tracker: TrackerConfig | None
    thresholds_changed: bool


def change_refusal(name: str, configured: bool) -> str | None:
    """Why ``name`` cannot be set now, or None. Parameters are read at configure: while unconfigured every one but
    the FIXED may change (a failed configure is retried after a corrected ``ros2 param set``); once configured,
    only the runtime ones, since the others would silently differ from what the node runs."""
    if name in FIXED:
        return f"parameter {name} cannot change in a running process: {FIXED[name]}"
    spec = PARAMETERS.get(name)
    if configured and spec is not None and not spec.runtime:
        return (f"parameter {name} takes effect at configure: deactivate and clean up the node "
                "(ros2 lifecycle set <node> cleanup), set it, then configure again")
    return None


def runtime_update(current: dict[str, Any], changed: dict[str, Any]) -> RuntimeUpdate | None:
    """The update a set of changed parameters makes (None when no runtime parameter changed); ValueError names
    the bad parameter."""
    runtime = {name: value for name, value in changed.items() if name in PARAMETERS and PARAMETERS[name].runtime}
    if not runtime:
        return None
    values = current | runtime
    return RuntimeUpdate(selection(values), tracker_config(values), "conf_threshold" in runtime)


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


def _fingerprint(value: Any) -> int | None:
    """``dpu_fingerprint`` as a string ("0x101000016010407") or as the integer rcl's YAML parser makes of an unquoted
    hex value in a params file or ``-p``."""
    try:
        return parse_fingerprint(value)
    except ValueError as e:
        raise ValueError(f"parameter dpu_fingerprint: {e}") from e


def read(v: dict[str, Any]) -> NodeConfig:
    """Parameter values (name → value) as a NodeConfig; one ValueError naming the parameter and the fix."""
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
    fingerprint = _fingerprint(v["dpu_fingerprint"])
    dpu_runtime = _one_of(v, "dpu_runtime", DPU_RUNTIMES)
    spec: BackendSpec = (DpuSpec(Path(v["xmodel"]), Path(v["bit"]) if v["bit"] else None, fingerprint,
                                 v["allow_other_compiler"], dpu_runtime) if backend == "dpu" else
                         OnnxSpec(Path(v["onnx_model"] or DEMO_ONNX), v["threads"], v["onnx_spin"]))
    return NodeConfig(spec, v["model_meta"] or str(DEMO_META), v["workers"],
                      _one_of(v, "class_id_format", CLASS_ID_FORMATS), v["publish_debug_image"],
                      _one_of(v, "input_reliability", RELIABILITY), topics, v["compressed"], selection(v),
                      tracker_config(v), depth_setups(v, topics), v["depth_wait"], v["tf_timeout"])


def doctor_report(v: dict[str, Any]) -> str:
    """``yolov5-dpu doctor`` for the node's dpu parameters, so a failed configure's log shows the whole board."""
    try:
        fingerprint = parse_fingerprint(v["dpu_fingerprint"])
    except ValueError:
        fingerprint = None
    runtime = v["dpu_runtime"] if v["dpu_runtime"] in DPU_RUNTIMES else DPU_RUNTIMES[0]
    return diagnose(xmodel=v["xmodel"] or None, meta=v["model_meta"] or None, bit=v["bit"] or None,
                    fingerprint=fingerprint, allow_other_compiler=v["allow_other_compiler"],
                    dpu_runtime=runtime).text()
