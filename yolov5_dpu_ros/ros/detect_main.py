"""``ros2 run yolov5_dpu_ros detect_node``: the middleware chosen before rclpy loads it, the node walked up its
lifecycle (autostart), spun, and shut down cleanly on Ctrl-C/SIGTERM with exit status 0."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.utilities import get_rmw_implementation_identifier

from yolov5_dpu_ros.core import run_record
from yolov5_dpu_ros.core.middleware import prepare_node_environment
from yolov5_dpu_ros.ros.node import DetectorNode


def _shut_down(node: DetectorNode) -> None:
    """Go through the lifecycle's shutdown and destroy the node; after Ctrl-C the context may be gone, then
    release directly. A failure here is reported in one line: the process is ending either way."""
    try:
        try:
            node.trigger_shutdown()
        except Exception:  # the context was shut down by the signal: transitions can no longer publish
            node.on_shutdown(None)
        node.destroy_node()
    except (Exception, KeyboardInterrupt) as e:
        print(f"detect_node: while shutting down: {type(e).__name__}: {e}", file=sys.stderr)


def _config_dir() -> Path:
    """The installed package's config folder (the middleware configs); the source tree's where the package is not
    in the ament index (run from a checkout)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("yolov5_dpu_ros")) / "config"
    except (ImportError, LookupError):
        return Path(__file__).resolve().parents[2] / "config"


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run yolov5_dpu_ros detect_node``: 0 after Ctrl-C/SIGTERM, 1 if it cannot start."""
    why_rmw = prepare_node_environment(os.environ, _config_dir(), os.geteuid() == 0)  # before the RMW loads
    rclpy.init(args=args)
    node = None
    record = None
    code = 0
    try:
        node = DetectorNode()
        record = run_record.record_path(node.get_fully_qualified_name())
        previous = run_record.previous_abnormal_exit(record)
        if previous:
            node.get_logger().warning(previous)
        run_record.start(record)
        node.get_logger().info(f"middleware: {get_rmw_implementation_identifier()}: {why_rmw}")
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        if code == 0:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM: rclpy's handler shut the context down; stop cleanly below
    finally:
        # `ros2 launch` without a terminal forwards SIGINT to the node itself as well: the second one must not
        # interrupt the shutdown (launch 1.0.7 execute_local.py, non-interactive mode)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            _shut_down(node)
        rclpy.try_shutdown()
        if record is not None:
            run_record.finish(record)
    return code


if __name__ == "__main__":
    sys.exit(main())
