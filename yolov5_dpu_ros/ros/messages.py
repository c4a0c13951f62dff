"""ROS message building: Detection2DArray and LabelInfo from plain values.

vision_msgs changed layout across releases; the installed one decides: 4.x (Humble, Jazzy) has
``hypothesis.class_id`` and ``bbox.center.position.x``; 3.x the same hypothesis with a
geometry_msgs/Pose2D centre; 2.x (Foxy) ``id`` and ``score`` directly on the hypothesis.
"""

from __future__ import annotations

from typing import Any, Sequence

from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolov5_dpu_ros.core.conversions import DetectionFields
from yolov5_dpu_ros.core.depth import Detection3DFields

try:  # vision_msgs >= 4 (Humble)
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None


def _bbox(f: DetectionFields) -> BoundingBox2D:
    box = BoundingBox2D(size_x=f.size_x, size_y=f.size_y)
    if hasattr(box.center, "position"):  # vision_msgs >= 4: vision_msgs/Pose2D with a Point2D
        box.center.position.x, box.center.position.y = f.center_x, f.center_y
    else:  # geometry_msgs/Pose2D
        box.center.x, box.center.y = f.center_x, f.center_y
    return box


def _hypothesis(f: DetectionFields) -> ObjectHypothesisWithPose:
    hyp = ObjectHypothesisWithPose()
    if hasattr(hyp, "hypothesis"):  # vision_msgs >= 3
        hyp.hypothesis.class_id, hyp.hypothesis.score = f.class_id, f.score
    else:  # vision_msgs 2.x (Foxy)
        hyp.id, hyp.score = f.class_id, f.score
    return hyp


def detection_array(header, fields: Sequence[DetectionFields]) -> Detection2DArray:
    """Detection2DArray with the input image's header (stamp and frame_id) on the array and each detection."""
    detections = []
    for f in fields:
        d = Detection2D(header=header, bbox=_bbox(f))
        d.results.append(_hypothesis(f))
        if hasattr(d, "id"):  # vision_msgs >= 3: the tracking ID
            d.id = f.id
        detections.append(d)
    return Detection2DArray(header=header, detections=detections)


def detection3d_array(header, fields: Sequence[Detection3DFields]):
    """vision_msgs/Detection3DArray: one Detection3D per valid 3D box, with the same results and id as its
    Detection2D (vision_msgs >= 3 layout)."""
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray

    detections = []
    for f in fields:
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = f.class_id, f.score
        pose = Pose(position=Point(x=f.center[0], y=f.center[1], z=f.center[2]),
                    orientation=Quaternion(x=f.orientation[0], y=f.orientation[1], z=f.orientation[2],
                                           w=f.orientation[3]))
        box = BoundingBox3D(center=pose, size=Vector3(x=f.size[0], y=f.size[1], z=f.size[2]))
        detections.append(Detection3D(header=header, results=[hyp], bbox=box, id=f.id))
    return Detection3DArray(header=header, detections=detections)


def label_info(header, names: Sequence[str], threshold: float):
    """vision_msgs/LabelInfo: the class map and the confidence threshold (vision_msgs >= 4 only)."""
    return LabelInfo(header=header, threshold=float(threshold),
                     class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate(names)])


class CameraPublishers:
    """frame_cycle's Outputs on one camera's lifecycle publishers (by role: camera_io.OUTPUTS)."""

    def __init__(self, publishers: dict[str, Any]) -> None:
        self.by_role = publishers

    def detection_message(self, header: Any, fields: Sequence[DetectionFields]) -> Detection2DArray:
        return detection_array(header, fields)

    def publish_detections(self, message: Detection2DArray) -> None:
        self.by_role["detections"].publish(message)

    def detections_3d(self, header: Any, frame_id: str, fields: Sequence[Detection3DFields]) -> None:
        self.by_role["detections_3d"].publish(detection3d_array(Header(stamp=header.stamp, frame_id=frame_id), fields))

    def wants_image(self) -> bool:
        return self.by_role["image"].get_subscription_count() > 0

    def image(self, header: Any, pixels: Any, height: int, width: int) -> None:
        self.by_role["image"].publish(Image(header=header, height=height, width=width, encoding="bgr8",
                                            is_bigendian=0, step=width * 3, data=pixels))

    def labels(self, header: Any, names: Sequence[str], threshold: float) -> None:
        if "labels" in self.by_role:
            self.by_role["labels"].publish(label_info(header, names, threshold))
