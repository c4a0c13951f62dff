"""``yolov5-dpu doctor``: before the first launch on the board, whether the dpu backend will run and what to fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolov5_dpu_ros.cli.common import CliError
from yolov5_dpu_ros.dpu.doctor import diagnose
from yolov5_dpu_ros.dpu.stacks import AUTO
from yolov5_dpu_ros.dpu.stacks import CHOICES as DPU_RUNTIMES
from yolov5_dpu_ros.dpu.verdict import parse_fingerprint


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("doctor", help="check the board, PYNQ, pynq-dpu, XRT, root, the overlay and a model",
                            description="One line per check (✔ ok, ⚠ warning, ✗ problem with its fix); nothing "
                                        "from PYNQ, VART or XRT is imported and the DPU is not touched. Exit 0 when "
                                        "the dpu backend would start with these inputs, 1 otherwise.")
    p.add_argument("--xmodel", type=Path, help="the compiled model to check (the backend's verdict)")
    p.add_argument("--model-meta", type=Path, help="its metadata: do the heads match")
    p.add_argument("--bit", help="a custom overlay .bit (default: pynq-dpu's own dpu.bit)")
    p.add_argument("--dpu-runtime", choices=DPU_RUNTIMES, default=AUTO,
                   help="judge against this DPU stack (2.5: pynq-dpu 2.5.1, 3.5: pynq-dpu 3.5.0) instead of the one "
                        "installed here")
    p.add_argument("--dpu-fingerprint", default="",
                   help="the overlay DPU's fingerprint (default: the stack's stock KV260 overlay's)")
    p.add_argument("--allow-other-compiler", action="store_true", help="as the node parameter of that name")
    p.add_argument("--json", action="store_true", help="the same checks as one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        fingerprint = parse_fingerprint(args.dpu_fingerprint)
    except ValueError as e:
        raise CliError(f"--dpu-fingerprint: {e}") from e
    report = diagnose(xmodel=str(args.xmodel) if args.xmodel else None,
                      meta=str(args.model_meta) if args.model_meta else None, bit=args.bit,
                      fingerprint=fingerprint, allow_other_compiler=args.allow_other_compiler,
                      dpu_runtime=args.dpu_runtime)
    print(report.json() if args.json else report.text())
    return 0 if report.dpu_ready else 1
