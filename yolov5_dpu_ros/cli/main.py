"""The ``yolov5-dpu`` command: detection over files and bags without ROS."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from yolov5_dpu_ros.cli import bag, compare, detect, doctor, replay
from yolov5_dpu_ros.cli.common import CliError, package_version


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yolov5-dpu`` console script."""
    parser = argparse.ArgumentParser(prog="yolov5-dpu", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    detect.register(commands)
    bag.register(commands)
    replay.register(commands)
    compare.register(commands)
    doctor.register(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"yolov5-dpu {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
