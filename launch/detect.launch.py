"""Launch the YOLOv5 detector: ros2 launch yolov5_dpu_ros detect.launch.py [name:=value ...].

Every parameter a user tunes is a launch argument (``--show-args`` lists them with their meaning).
Camera-sized images need middleware settings that the defaults lack: the package's config for the active RMW
(``config/cyclonedds.xml`` or ``config/fastdds.xml``) is applied to every process this launch file starts, and
to processes started after it by a launch file that includes it, unless ``CYCLONEDDS_URI`` /
``FASTRTPS_DEFAULT_PROFILES_FILE`` is already set or ``middleware_config:=false``.
The node itself runs on CycloneDDS when it runs as root (the dpu backend needs root, and Fast DDS moves no data
between root and another user's camera driver), unless ``rmw:=`` names another; ``respawn`` restarts it after a
DPU fault (VART aborts the process), by default with ``backend:=dpu`` or as root.
An argument given on the command line wins over the params file; one not given leaves the params
file's value (or the node's default). The defaults run the demo model with the onnx backend on any
PC, reading ``image_raw`` relative to ``namespace``.
"""

import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from yolov5_dpu_ros.core.middleware import middleware_environment, node_middleware
from yolov5_dpu_ros.ros.param_spec import (
    LAUNCH_ARGUMENTS,
    LAUNCH_EXTRA,
    PARAMETERS,
    launch_flag,
    launch_value,
    respawn_wanted,
)

RESPAWN_DELAY_S = 3.0


def _node(context, *args, **kwargs):
    """The middleware config, then the node with the params file first and the arguments given on the command line
    over it."""
    enabled = launch_flag("middleware_config", context.perform_substitution(LaunchConfiguration("middleware_config")))
    config_dir = Path(context.perform_substitution(FindPackageShare("yolov5_dpu_ros"))) / "config"
    current = getattr(context, "environment", os.environ)  # what earlier launch actions set, too
    environment = [SetEnvironmentVariable(name, value)
                   for name, value in middleware_environment(current, config_dir, enabled).items()]
    given = {name: context.perform_substitution(LaunchConfiguration(name)) for name in LAUNCH_ARGUMENTS}
    overrides = {name: launch_value(name, text) for name, text in given.items() if text != ""}
    for argument, parameter in (("input_topic", "input_topics"), ("depth_topic", "depth_topics"),
                                ("camera_info_topic", "camera_info_topics")):
        topic = context.perform_substitution(LaunchConfiguration(argument))
        if topic:
            overrides[parameter] = [topic]
    root = os.geteuid() == 0
    node_env = node_middleware(current, config_dir, root, context.perform_substitution(LaunchConfiguration("rmw")),
                               enabled).environment
    respawn = respawn_wanted(context.perform_substitution(LaunchConfiguration("respawn")), given["backend"], root)
    return [*environment, LifecycleNode(
        package="yolov5_dpu_ros",
        executable="detect_node",
        name="yolov5_dpu",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        additional_env=node_env,
        respawn=respawn,
        respawn_delay=RESPAWN_DELAY_S if respawn else None,
        output="screen",
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value="",
                                  description=f"{PARAMETERS[name].description} (node default: "
                                              f"{PARAMETERS[name].default!r}; empty = the params file's value)")
            for name in LAUNCH_ARGUMENTS]
    package_params = PathJoinSubstitution([FindPackageShare("yolov5_dpu_ros"), "config", "detect.yaml"])
    args += [DeclareLaunchArgument(name, default_value=package_params if name == "params_file" else default,
                                   description=text)
             for name, (default, text) in LAUNCH_EXTRA.items()]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
