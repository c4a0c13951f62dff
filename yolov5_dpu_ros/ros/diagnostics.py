"""What the node's diagnostics say (ROS-free): the node's status and each camera's per window, with the level
(diagnostic_msgs/DiagnosticStatus OK or WARN) and the reason when a camera's frames are not getting through."""

from __future__ import annotations

from dataclasses import dataclass

from yolov5_dpu_ros.core.input_health import WARN_FRACTION, health
from yolov5_dpu_ros.core.latency import AGE, LATENCY, LATENCY_MAX
from yolov5_dpu_ros.ros.camera_state import DEPTH_COUNTS, STAGES, Window
from yolov5_dpu_ros.ros.frame_cycle import FrameCycle

OK, WARN = 0, 1  # DiagnosticStatus.OK, DiagnosticStatus.WARN
LEVELS = {OK: "OK: the node's state; a camera whose frames get through (or that has no input)",
          WARN: f"WARN: a camera whose frames were not processed, more than {WARN_FRACTION:.0%} of them in the "
                "window while active; the message says how many and why, largest cause first"}
NODE_KEYS = {
    "lifecycle state": "unconfigured, inactive, active or finalized",
    "backend": "onnx or dpu (once configured)",
    "model": "the model file",
    "workers": "worker threads, each with its own runner",
    "processed frames (all cameras)": "frames detected on since configure",
    "publish errors (all cameras)": "frames whose publishing raised (counted, the node goes on)",
}
CAMERA_KEYS = {
    "lifecycle state": "the node's state",
    "input fps": "frames received per second in the window",
    "output fps": "Detection2DArray messages published per second in the window",
    "input period ms": "median gap between the camera's header stamps",
    LATENCY: "median time from the image callback to the publish (the node's clock)",
    LATENCY_MAX: "the longest of those in the window",
    AGE: "median time from the image's header stamp to the publish (meaningful when the clocks agree)",
    "decode ms": "mean time per published frame turning the message into pixels (a JPEG's decode)",
    "preprocess ms": "mean letterbox and int8 conversion time",
    "inference ms": "mean backend run (the DPU call)",
    "postprocess ms": "mean decode of the heads and NMS time",
    "tracking ms": "mean tracker update time (0 without tracking)",
    "message ms": "mean time building the Detection2DArray (field values and the message)",
    "publish ms": "mean time in the detections publisher's publish call",
    "lost in transport": "frames the middleware reports lost (QoS event)",
    "never reached the node (from stamps)": "frames missing from the stamp sequence",
    "replaced in the queue": "frames replaced by a newer one before a worker took them (the detector is slower)",
    "bad frames": "malformed frames skipped (wrong encoding, size, step)",
    "failed frames": "frames the detector failed on",
    "finished after deactivate": "frames finishing after deactivate, not published",
    "input reliability": "the colour input's QoS reliability in use",
    "active tracks": "confirmed tracks (tracking on)",
    **dict(zip(DEPTH_COUNTS, (
        "RGB-D: frames whose 3D output was published",
        "RGB-D: detections whose box held no valid depth sample",
        "RGB-D: frames without depth stamped within depth_sync_slop in time (depth_wait)",
        "RGB-D: frames whose transform into target_frame was not there within tf_timeout",
        "RGB-D: depth images of an unsupported encoding or size",
        "RGB-D: CameraInfo messages that cannot be used (zero focal length, a distortion model it cannot undo)",
    ), strict=True)),
}


@dataclass(frozen=True)
class Status:
    """One DiagnosticStatus as plain data."""

    level: int
    message: str
    values: dict[str, str]


def node_status(state: str, configured: dict[str, str] | None) -> Status:
    """The node: its lifecycle state and, once configured, backend, model, workers and totals."""
    message = f"{state}: " + ("configured" if configured is not None else "no model loaded")
    return Status(OK, message, {"lifecycle state": state, **(configured or {})})


def camera_status(state: str, window: Window | None, reliability: str) -> Status:
    """One camera for one window: WARN when too many of its frames were not processed while active, saying why."""
    if window is None:
        return Status(OK, f"{state}: not configured", {"lifecycle state": state})
    counts, w, seconds = window.totals, window.window, window.seconds
    ok, message = health(w) if state == "active" else (True, "inputs stopped")
    values = {
        "lifecycle state": state,
        "input fps": f"{w.received / seconds:.1f}", "output fps": f"{w.published / seconds:.1f}",
        "input period ms": "-" if window.input_period is None else f"{window.input_period * 1e3:.1f}",
        **window.latency,
        **{f"{stage} ms": f"{ms:.2f}" for stage, ms in zip(STAGES, window.stage_ms)},
        "lost in transport": str(counts.lost), "never reached the node (from stamps)": str(counts.unseen),
        "replaced in the queue": str(counts.replaced), "bad frames": str(counts.bad),
        "failed frames": str(counts.failed), "finished after deactivate": str(counts.discarded),
        "input reliability": reliability,
        "active tracks": "-" if window.active_tracks is None else str(window.active_tracks),
        **{key: str(n) for key, n in window.depth.items()},
    }
    return Status(OK if ok else WARN, f"{state}: {message}", values)


def node_report(state: str, cycle: FrameCycle | None) -> Status:
    """The node's status from its frame cycle (None while unconfigured)."""
    if cycle is None or cycle.pipeline is None:
        return node_status(state, None)
    spec = cycle.config.backend_spec
    return node_status(state, {"backend": spec.name, "model": str(spec.model), "workers": str(cycle.config.workers),
                               "processed frames (all cameras)": str(cycle.pipeline.counts.processed),
                               "publish errors (all cameras)": str(cycle.pipeline.counts.callback_errors)})


def camera_report(state: str, cycle: FrameCycle | None, index: int, now_s: float, reliability: str) -> Status:
    """One camera's status for the window that ends now; its frames replaced in the queue are the pipeline's count."""
    if cycle is None or cycle.pipeline is None:
        return camera_status(state, None, reliability)
    window = cycle.cameras[index].state.window(now_s, cycle.pipeline.dropped_by_source.get(index, 0))
    return camera_status(state, window, reliability)
