"""What the node's diagnostics say (ROS-free): the node's status and each camera's per window, with the level
(diagnostic_msgs/DiagnosticStatus OK or WARN) and the reason when a camera's frames are not getting through."""

from __future__ import annotations

from dataclasses import dataclass

from yolov5_dpu_ros.core.input_health import health
from yolov5_dpu_ros.ros.camera_state import Window
from yolov5_dpu_ros.ros.frame_cycle import FrameCycle

OK, WARN = 0, 1  # DiagnosticStatus.OK, DiagnosticStatus.WARN


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
        "preprocess ms": f"{window.stage_ms[0]:.2f}", "inference ms": f"{window.stage_ms[1]:.2f}",
        "postprocess ms": f"{window.stage_ms[2]:.2f}",
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
