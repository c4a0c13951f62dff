"""Launch the YOLOv5 detector: ros2 launch yolov5_dpu_ros detect.launch.py [name:=value ...].

Every parameter a user tunes is a launch argument (``--show-args`` lists them with their meaning).
An argument given on the command line wins over the params file; one not given leaves the params
file's value (or the node's default). The defaults run the demo model with the onnx backend on any
PC, reading ``image_raw`` relative to ``namespace``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from yolov5_dpu_ros.ros.param_spec import LAUNCH_ARGUMENTS, PARAMETERS, launch_value

EXTRA = {
    "input_topic": ("", "camera topic (sensor_msgs/Image, or CompressedImage if it ends in /compressed); relative "
                        "names resolve under namespace; empty = the params file's input_topics, else image_raw"),
    "namespace": ("", "namespace of the node, its input and its outputs"),
    "params_file": (PathJoinSubstitution([FindPackageShare("yolov5_dpu_ros"), "config", "detect.yaml"]),
                    "parameters file; arguments given here win over it"),
}


def _node(context, *args, **kwargs):
    """The node with the params file first and the arguments given on the command line over it."""
    given = {name: context.perform_substitution(LaunchConfiguration(name)) for name in LAUNCH_ARGUMENTS}
    overrides = {name: launch_value(name, text) for name, text in given.items() if text != ""}
    topic = context.perform_substitution(LaunchConfiguration("input_topic"))
    if topic:
        overrides["input_topics"] = [topic]
    return [LifecycleNode(
        package="yolov5_dpu_ros",
        executable="detect_node",
        name="yolov5_dpu",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        output="screen",
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value="",
                                  description=f"{PARAMETERS[name].description} (node default: "
                                              f"{PARAMETERS[name].default!r}; empty = the params file's value)")
            for name in LAUNCH_ARGUMENTS]
    args += [DeclareLaunchArgument(name, default_value=default, description=text)
             for name, (default, text) in EXTRA.items()]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
