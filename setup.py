"""ament_python package; also a plain pip package on a PC without ROS."""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "yolov5_dpu_ros"
# the one version source is package.xml (bloom and rosdep read it); pip and colcon take it from there
version = re.search(r"<version>([^<]+)</version>", (Path(__file__).parent / "package.xml").read_text()).group(1)

setup(
    name=package_name,
    version=version,
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={package_name: ["demo_model/*.onnx", "demo_model/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.names") + glob("config/*.xml")),
        (f"share/{package_name}/config/models", glob("config/models/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=["numpy>=1.21", "opencv-python-headless>=4.5", "PyYAML>=5.4", "onnxruntime>=1.14", "scipy>=1.8",
                      "setuptools"],
    extras_require={
        "bag": ["rosbags>=0.10.9"],
        "plot": ["matplotlib>=3.5"],
        "fleet": ["ray[client]>=2.10", "rosbags>=0.10.9"],  # yolov5-dpu replay; client: --address ray://
        "test": ["pytest", "ruff", "hypothesis"],
    },
    zip_safe=True,
    maintainer="yolov5_dpu_ros developers",
    maintainer_email="yolov5-dpu-ros@users.noreply.github.com",
    description="YOLOv5 object detection on the Kria KV260 DPU (PYNQ), as a ROS 2 node and a CLI",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "yolov5-dpu = yolov5_dpu_ros.cli.main:main",
            "detect_node = yolov5_dpu_ros.ros.detect_main:main",
        ],
    },
)
