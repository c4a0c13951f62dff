"""Bags for the tests: reading a bag's messages of one type, and writing a small RGB-D bag (rosbags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolov5_dpu_ros.replay.bag_io import typestore


def bag_messages(bag: Path, msgtype: str):
    from rosbags.highlevel import AnyReader

    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.msgtype == msgtype]
        if not conns:  # rosbags reads every connection for an empty list
            return []
        return [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conns)]


def write_rgbd_bag(path, frames: int = 4, d=(0.0, 0.0, 0.0, 0.0, 0.0)):
    """Colour (demo shapes), an aligned 16UC1 depth at half resolution (each object's box at 2 m + 0.25 m per
    object, a wall at 5 m) and CameraInfo, stamped alike; returns the samples and each object's true depth."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from demo.shapes import make_sample

    ts = get_typestore(Stores.ROS2_HUMBLE)
    t = ts.types
    samples, truths = [], []
    with Writer(path, version=8) as writer:
        colour = writer.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        depth_c = writer.add_connection("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image",
                                        typestore=ts)
        info_c = writer.add_connection("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i in range(frames):
            sample = make_sample(40 + i, "test", i, (640, 480))
            ns = 1_700_000_000 * 10**9 + i * 33_000_000
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=ns // 10**9,
                                                                                      nanosec=ns % 10**9),
                                              frame_id="camera_color_optical_frame")
            depth = np.full((240, 320), 5000, np.uint16)
            zs = []
            for k, (x1, y1, x2, y2) in enumerate(sample.xyxy):  # nearest last, as drawn
                z = 2.0 + 0.25 * k
                depth[int(y1 / 2):int(y2 / 2) + 1, int(x1 / 2):int(x2 / 2) + 1] = int(z * 1000)
                zs.append(z)
            img = t["sensor_msgs/msg/Image"](header=header, height=480, width=640, encoding="bgr8", is_bigendian=0,
                                             step=640 * 3, data=sample.image.reshape(-1))
            dep = t["sensor_msgs/msg/Image"](header=header, height=240, width=320, encoding="16UC1", is_bigendian=0,
                                             step=640, data=depth.view(np.uint8).reshape(-1))
            info = t["sensor_msgs/msg/CameraInfo"](
                header=header, height=480, width=640, distortion_model="plumb_bob", d=np.array(d, np.float64),
                k=np.array([500.0, 0, 320, 0, 500, 240, 0, 0, 1]), r=np.eye(3).reshape(-1),
                p=np.zeros(12), binning_x=0, binning_y=0,
                roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False))
            writer.write(colour, ns, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
            writer.write(depth_c, ns + 2_000_000, ts.serialize_cdr(dep, "sensor_msgs/msg/Image"))
            writer.write(info_c, ns + 1_000_000, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            samples.append(sample)
            truths.append(zs)
    return samples, truths


def write_ros1_bag(path: Path, frames: list[np.ndarray], first_sec: int = 50) -> None:
    """A ROS 1 bag of bgr8 Images on /cam/image (frame cam1), one a second from ``first_sec``."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    image_t, header_t, time_t = (store.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                           "builtin_interfaces/msg/Time"))
    with Writer(path) as writer:
        conn = writer.add_connection("/cam/image", image_t.__msgtype__, typestore=store)
        for i, f in enumerate(frames):
            h = header_t(seq=i, stamp=time_t(sec=first_sec + i, nanosec=0), frame_id="cam1")
            msg = image_t(header=h, height=f.shape[0], width=f.shape[1], encoding="bgr8", is_bigendian=0,
                          step=f.shape[1] * 3, data=f.reshape(-1))
            writer.write(conn, (first_sec + i) * 10**9, store.serialize_ros1(msg, image_t.__msgtype__))


def interrupt_at_frame(monkeypatch, frame: int) -> None:
    """Ctrl-C while a bag is replayed: KeyboardInterrupt when the ``frame``-th frame's detections are built."""
    from yolov5_dpu_ros.replay import one_bag

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == frame:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(one_bag, "detection_fields", interrupted)
