"""The documentation's reference tables, generated from the code they describe (parameters, launch arguments,
topics, diagnostics keys, encodings, model families), and the names a page may refer to with the ``param``,
``topic`` and ``diag`` roles. ``conf.py`` writes the tables into ``_generated/`` when Sphinx starts."""

from __future__ import annotations

from pathlib import Path

from yolov5_dpu_ros.core.conversions import ROS_ENCODINGS
from yolov5_dpu_ros.core.families import FAMILIES
from yolov5_dpu_ros.ros.camera_io import COMPRESSED, INPUT_DEPTH, OUTPUTS
from yolov5_dpu_ros.ros.diagnostics import CAMERA_KEYS, LEVELS, NODE_KEYS
from yolov5_dpu_ros.ros.param_spec import LAUNCH_EXTRA, PARAMETERS

INPUTS = {  # topic (relative to the camera's namespace) → (type, QoS depth key, what it is)
    "image_raw": ("sensor_msgs/msg/Image", "colour", "the colour image (input_topics; any name)"),
    "image_raw" + COMPRESSED: ("sensor_msgs/msg/CompressedImage", "colour",
                               "with compressed:=true, image_transport's compressed topic"),
    "(a depth_topics entry)": ("sensor_msgs/msg/Image", "depth", "RGB-D: the depth image aligned to the colour image"),
    "camera_info": ("sensor_msgs/msg/CameraInfo", "camera_info",
                    "RGB-D: the colour image's calibration (camera_info_topics; default beside the colour topic)"),
}


def _cell(value: object) -> str:
    text = repr(value) if isinstance(value, (list, str)) else str(value).lower() if isinstance(value, bool) else \
        str(value)
    return "`" + text.replace("|", "\\|") + "`" if text else ""


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parameters_table() -> str:
    """Every node parameter: type, default, range, whether it changes at runtime, whether it is a launch argument."""
    rows = [(f"`{name}`", type(p.default).__name__, _cell(p.default),
             "" if p.range is None else f"{p.range[0]} … {p.range[1]}", "yes" if p.runtime else "",
             "yes" if p.launch else "", p.description) for name, p in PARAMETERS.items()]
    return _table(("parameter", "type", "default", "range", "runtime", "launch argument", "meaning"), rows)


def launch_arguments_table() -> str:
    """The launch arguments that are not node parameters."""
    rows = [(f"`{name}`", _cell(default), text) for name, (default, text) in LAUNCH_EXTRA.items()]
    return _table(("launch argument", "default", "meaning"), rows)


def topics_table() -> str:
    """The node's inputs and outputs per camera, with their types and QoS."""
    rows = [(topic if topic.startswith("(") else f"`{topic}`", "in", f"`{kind}`",
             f"input_reliability, depth {INPUT_DEPTH[depth]}", text)
            for topic, (kind, depth, text) in INPUTS.items()]
    rows += [(f"`{endpoint.topic}`", "out", f"`{endpoint.type}`",
              f"{qos.reliability}, depth {qos.depth}" + (", transient local (latched)" if qos.latched else ""),
              name.replace("_", " ")) for name, (endpoint, qos) in OUTPUTS.items()]
    return _table(("topic", "", "type", "QoS", "what"), rows)


def diagnostics_table() -> str:
    """The keys of the node's and each camera's diagnostics, and the levels."""
    rows = [(f"`{key}`", "node", text) for key, text in NODE_KEYS.items()]
    rows += [(f"`{key}`", "camera", text) for key, text in CAMERA_KEYS.items()]
    levels = "\n".join(f"- {text}" for text in LEVELS.values())
    return _table(("key", "status", "meaning"), rows) + "\nLevels:\n\n" + levels + "\n"


def encodings_table() -> str:
    """The sensor_msgs/Image encodings the node reads, and how."""
    rows = [(f"`{name}`", e.dtype.__name__, str(e.channels),
             f"`{e.reads_as}`" + (" after scaling 16 to 8 bits (as cv_bridge)" if e.dtype.__name__ == "uint16" else ""))
            for name, e in ROS_ENCODINGS.items()]
    return _table(("encoding", "sample", "channels", "read as"), rows)


def families_table() -> str:
    """The model families: input contract and box decode."""
    rows = [(f"`{f.name}`", "RGB" if f.contract.rgb else "BGR", f"{f.contract.scale:.6g}", str(f.contract.pad),
             "centred" if f.contract.centred else "top-left", "yes" if f.anchor_free else "",
             (f.boxes.__doc__ or "").strip()) for f in FAMILIES.values()]
    return _table(("family", "channels", "pixel scale", "pad", "placement", "anchor-free", "box decode"), rows)


TABLES = {"parameters": parameters_table, "launch_arguments": launch_arguments_table, "topics": topics_table,
          "diagnostics": diagnostics_table, "encodings": encodings_table, "families": families_table}
NAMES = {"param": set(PARAMETERS) | set(LAUNCH_EXTRA),
         "topic": {t for t in INPUTS if not t.startswith("(")} | {e.topic for e, _ in OUTPUTS.values()},
         "diag": set(NODE_KEYS) | set(CAMERA_KEYS)}


def write_tables(folder: Path) -> list[Path]:
    """Every table as ``folder/<name>.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in TABLES.items():
        path = folder / f"{name}.md"
        path.write_text(make())
        written.append(path)
    return written
