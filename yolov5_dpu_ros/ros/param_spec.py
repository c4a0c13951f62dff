"""The node's parameters as plain data (no ROS imports): name, default, range, runtime, launch argument.

``params`` declares them on the node; ``launch/detect.launch.py`` turns every one a user tunes into a
launch argument with the same description, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yolov5_dpu_ros.core.choices import BACKENDS, CLASS_ID_FORMATS, RELIABILITY
from yolov5_dpu_ros.dpu.stacks import CHOICES as DPU_RUNTIMES

ALL_CLASSES = -1  # the `classes` default: [-1] keeps every class (ROS 2 cannot declare an empty int list)


@dataclass(frozen=True)
class Param:
    """One node parameter."""

    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive bounds (float or int range by the default's type)
    runtime: bool = False  # may change while the node runs
    launch: bool = True  # also a launch argument


PARAMETERS: dict[str, Param] = {
    "backend": Param("onnx", f"inference backend: {' | '.join(BACKENDS)}"),
    "xmodel": Param("", "dpu: compiled xmodel (KV260; Vitis AI 2.5 for the 2.5 stack, 3.0 or 3.5 for the 3.5 stack)"),
    "bit": Param("", "dpu: overlay .bit with .hwh and .xclbin beside it; empty = the one inside pynq_dpu"),
    "dpu_runtime": Param("auto", f"dpu: the board's DPU stack: {' | '.join(DPU_RUNTIMES)}; auto reads the installed "
                                 "pynq-dpu and VART (2.5 = pynq-dpu 2.5.1 on VART 2.5, 3.5 = pynq-dpu 3.5.0 on VART "
                                 "3.5)"),
    "dpu_fingerprint": Param("", "dpu: the overlay DPU's fingerprint, hex; empty = the stack's stock KV260 overlay "
                                 "(2.5: 0x101000016010407, 3.5: 0x101000056010407)"),
    "allow_other_compiler": Param(False, "dpu: run a model of another stack's Vitis AI whose fingerprint matches the "
                                         "overlay (reported both to work and to kill the process)"),
    "model_meta": Param("", "metadata YAML of the model (sizes, strides, anchors, names); empty = the demo model's"),
    "onnx_model": Param("", "onnx: raw-head YOLOv5 ONNX; empty = the demo model"),
    "conf_threshold": Param(0.25, "keep detections scoring above this", (0.001, 0.999), True),
    "iou_threshold": Param(0.45, "NMS IoU above which the weaker box is dropped", (0.01, 1.0), True),
    "max_detections": Param(300, "most detections per frame", (1, 10000), True),
    "classes": Param([ALL_CLASSES], "class indices to keep; [-1] keeps all", None, True, launch=False),
    "agnostic_nms": Param(False, "NMS across classes", None, True),
    "workers": Param(2, "worker threads, each with its own runner, overlapping CPU and DPU work", (1, 8)),
    "threads": Param(0, "onnx: ONNX Runtime threads per worker; 0 = the CPU cores divided among the workers",
                     (0, 64)),
    "onnx_spin": Param(False, "onnx: let ONNX Runtime threads spin-wait between runs (lower latency on cores "
                              "nothing else needs; off leaves CPU to the middleware)"),
    "class_id_format": Param("name", f"hypothesis class_id as: {' | '.join(CLASS_ID_FORMATS)}"),
    "publish_debug_image": Param(True, "publish annotated images on detections/image while someone subscribes"),
    "input_reliability": Param("auto", f"input QoS reliability of colour, depth and camera_info: "
                                       f"{' | '.join(RELIABILITY)}; auto matches each topic's publishers (reliable "
                                       "only when all are)"),
    "input_topics": Param(["image_raw"], "image topics (relative ones under the node's namespace); with several, "
                                         "each one's outputs go under its namespace", launch=False),
    "compressed": Param(False, "subscribe to sensor_msgs/CompressedImage on <topic>/compressed, image_transport's "
                               "name (a topic already ending in /compressed is taken as it is)"),
    "autostart": Param(True, "configure and activate at start (false: wait for lifecycle transitions)"),
    "depth_topics": Param([""], "RGB-D: per camera (input_topics order), the depth image aligned to its colour "
                                "image (16UC1 mm or 32FC1 m); '' = no 3D output for that camera, [''] = none",
                          launch=False),
    "camera_info_topics": Param([""], "RGB-D: per camera, the CameraInfo of its colour image; '' = camera_info "
                                      "beside the colour topic", launch=False),
    "depth_sync_slop": Param(0.05, "RGB-D: most seconds between a colour and a depth stamp to pair them",
                             (0.001, 1.0)),
    "depth_wait": Param(0.1, "RGB-D: most seconds a colour frame's 3D output waits for depth and camera info stamped "
                             "within depth_sync_slop of it (its 2D output does not wait)", (0.0, 2.0)),
    "depth_scale": Param(0.0, "RGB-D: metres per depth unit; 0 = by encoding (16UC1 millimetres, 32FC1 metres)",
                         (0.0, 1.0)),
    "target_frame": Param("", "RGB-D: frame of the 3D boxes (tf2 at the image stamp); empty = the camera's "
                              "optical frame"),
    "tf_timeout": Param(0.01, "RGB-D: most seconds to wait for the transform into target_frame at a frame's stamp "
                              "before counting it a frame without transform", (0.0, 1.0)),
    "tracking": Param(True, "track objects per camera: Detection2D.id holds the track ID (empty until confirmed)",
                      None, True),
    "track_lifetime": Param(1.0, "tracking: seconds a track lives on without a match (then removed; a longer gap "
                                 "in the stamps starts afresh)", (0.05, 60.0), True),
    "track_match_iou": Param(0.2, "tracking: least IoU between a track's predicted box and a detection to match",
                             (0.01, 0.99), True),
    "track_low_threshold": Param(0.1, "tracking: detections from this score up to conf_threshold keep tracks "
                                      "alive (never published, never start a track)", (0.001, 0.999), True),
}
# launch arguments that are not node parameters: name → (default, description)
LAUNCH_EXTRA = {
    "input_topic": ("", "camera topic (sensor_msgs/Image, or CompressedImage if it ends in /compressed); relative "
                        "names resolve under namespace; empty = the params file's input_topics, else image_raw"),
    "namespace": ("", "namespace of the node, its input and its outputs"),
    "params_file": ("config/detect.yaml", "parameters file (default: the package's share/yolov5_dpu_ros/config/"
                                          "detect.yaml); arguments given here win over it"),
    "middleware_config": ("true", "apply the package's CycloneDDS / Fast DDS config for camera-sized images "
                                  "(unless CYCLONEDDS_URI / FASTRTPS_DEFAULT_PROFILES_FILE is set); false: leave "
                                  "the middleware as it is"),
    "rmw": ("auto", "the node's RMW: auto = rmw_cyclonedds_cpp when the node runs as root (so camera drivers of "
                    "other users reach it), else the shell's; or an RMW name for this node"),
    "respawn": ("auto", "restart the node after it ends (a DPU fault aborts the process): auto = on with "
                        "backend:=dpu or as root; true or false"),
    "depth_topic": ("", "RGB-D, one camera: its aligned depth image (depth_topics for several, in the params file)"),
    "camera_info_topic": ("", "RGB-D, one camera: its CameraInfo; empty = camera_info beside the colour topic"),
}
RUNTIME = tuple(name for name, p in PARAMETERS.items() if p.runtime)
LAUNCH_ARGUMENTS = tuple(name for name, p in PARAMETERS.items() if p.launch)


def launch_flag(name: str, text: str) -> bool:
    """A true/false launch argument."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={text}: give true or false")
    return lowered == "true"


def launch_value(name: str, text: str) -> Any:
    """A launch argument's text as the parameter's type (so ``conf_threshold:=1`` is the double 1.0)."""
    default = PARAMETERS[name].default
    if isinstance(default, bool):
        return launch_flag(name, text)
    try:
        return type(default)(float(text)) if isinstance(default, float) else type(default)(text)
    except ValueError as e:
        raise ValueError(f"launch argument {name}:={text}: not a {type(default).__name__}") from e


def respawn_wanted(text: str, backend: str, root: bool) -> bool:
    """The launch argument ``respawn``: auto restarts the node when it runs the DPU (``backend:=dpu``, or as root,
    which the dpu backend needs), whose faults abort the process; true or false as given."""
    if text.strip().lower() == "auto":
        return backend == "dpu" or root
    return launch_flag("respawn", text)
