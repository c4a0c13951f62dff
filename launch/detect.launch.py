"""Launch the YOLOv5 detector: ros2 launch yolov5_dpu_ros detect.launch.py [name:=value ...].

Every argument becomes a node parameter; a params file given with params_file wins for the
parameters it sets (it is applied after the arguments). The defaults run the demo model with the
onnx backend on any PC, reading /image_raw.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "backend": ("onnx", "inference backend: dpu (KV260) or onnx (any PC)"),
    "xmodel": ("", "dpu: the compiled xmodel"),
    "bit": ("", "dpu: overlay .bit (.hwh and .xclbin beside it); empty = the one inside pynq_dpu"),
    "model_meta": ("", "metadata YAML of the model; empty = the demo model's"),
    "onnx_model": ("", "onnx: raw-head ONNX; empty = the demo model"),
    "input_topic": ("/image_raw", "camera topic (sensor_msgs/Image, or CompressedImage if it ends in /compressed)"),
    "namespace": ("", "namespace of the node and its outputs"),
    "params_file": (PathJoinSubstitution([FindPackageShare("yolov5_dpu_ros"), "config", "detect.yaml"]),
                    "parameters file"),
}


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()]
    overrides = {name: LaunchConfiguration(name) for name in ("backend", "xmodel", "bit", "model_meta", "onnx_model")}
    overrides["input_topics"] = [[LaunchConfiguration("input_topic")]]  # a list of one string, not one string
    node = LifecycleNode(
        package="yolov5_dpu_ros",
        executable="detect_node",
        name="yolov5_dpu",
        namespace=LaunchConfiguration("namespace"),
        parameters=[overrides, LaunchConfiguration("params_file")],
        output="screen",
    )
    return LaunchDescription([*args, node])
