"""ROS message building: Detection2DArray and LabelInfo from plain values.

vision_msgs changed layout across releases; the installed one decides: 4.x (Humble, Jazzy) has
``hypothesis.class_id`` and ``bbox.center.position.x``; 3.x the same hypothesis with a
geometry_msgs/Pose2D centre; 2.x (Foxy) ``id`` and ``score`` directly on the hypothesis.
"""

from __future__ import annotations

from typing import Sequence

from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolov5_dpu_ros.core.conversions import DetectionFields

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


def label_info(header, names: Sequence[str], threshold: float):
    """vision_msgs/LabelInfo: the class map and the confidence threshold (vision_msgs >= 4 only)."""
    return LabelInfo(header=header, threshold=float(threshold),
                     class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate(names)])
