"""The ROS-free core: detections, metadata and model families, pre/post-processing, the detector, the pipeline."""
