"""Which depth and camera-info topics each camera pairs with (ROS-free, so CI tests it without rclpy).

``depth_topics`` and ``camera_info_topics`` run parallel to ``input_topics``: one entry per camera, "" for a
camera without depth (or with its camera_info beside the colour topic). ``[""]`` means none for every camera.
Every camera of one node shares the one DPU: several RGB-D cameras need no second DPU process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from yolov5_dpu_ros.core.depth import DepthConfig, camera_info_beside
from yolov5_dpu_ros.ros.topic_names import topic_name_problem


@dataclass(frozen=True)
class DepthSetup:
    """One camera's RGB-D input: depth and camera-info topics, pairing slop, units, output frame."""

    depth_topic: str
    info_topic: str
    slop: float
    estimate: DepthConfig
    target_frame: str


def _per_camera(name: str, values: Sequence[str], cameras: int) -> list[str]:
    """A list parameter parallel to input_topics: [""] for none, else one entry per camera."""
    values = list(values)
    if values in ([], [""]):
        return [""] * cameras
    if len(values) != cameras:
        raise ValueError(f"parameter {name}: {values} has {len(values)} entries for {cameras} input_topics: give "
                         "one per camera, in the same order ('' for a camera without), or [''] for none")
    return values


def depth_setups(v: dict, topics: Sequence[str]) -> tuple[DepthSetup | None, ...]:
    """Each camera's RGB-D setup (None without depth) from parameter values; ValueError names the parameter."""
    depths = _per_camera("depth_topics", v["depth_topics"], len(topics))
    infos = _per_camera("camera_info_topics", v["camera_info_topics"], len(topics))
    setups: list[DepthSetup | None] = []
    for colour, depth, info in zip(topics, depths, infos):
        if not depth:
            if info:
                raise ValueError(f"parameter camera_info_topics: '{info}' is given for {colour}, which has no depth "
                                 "topic in depth_topics")
            setups.append(None)
            continue
        info = info or camera_info_beside(colour)
        for name, topic in (("depth_topics", depth), ("camera_info_topics", info)):
            problem = topic_name_problem(topic)
            if problem:
                raise ValueError(f"parameter {name}: '{topic}' is not a valid topic name: {problem}")
        setups.append(DepthSetup(depth, info, v["depth_sync_slop"], DepthConfig(scale=v["depth_scale"] or None),
                                 v["target_frame"]))
    used = [s.depth_topic for s in setups if s is not None]
    if len(set(used)) != len(used):
        raise ValueError(f"parameter depth_topics: {used} names one depth topic for two cameras")
    return tuple(setups)
