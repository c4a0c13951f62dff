"""compile: the quantizer's _int.xmodel → a DPU xmodel for the KV260, with vai_c_xir (Vitis AI 2.5).

    python -m model_prep.compile --xmodel quantize_result/DetectionModel_int.xmodel --name yolov5n_kv260 \\
        [--arch /opt/vitis_ai/compiler/arch/DPUCZDX8G/KV260/arch.json] [--out compiled]

Then check the result with ``python -m model_prep.inspect compiled/yolov5n_kv260.xmodel --meta M.yaml``.
Compile with the Vitis AI 2.5 docker: pynq-dpu 2.5.1 kills the process on newer compilers' models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from model_prep.environment import require_program

KV260_ARCH = Path("/opt/vitis_ai/compiler/arch/DPUCZDX8G/KV260/arch.json")


def check_arch(path: Path) -> None:
    """arch.json must exist and hold a target or a fingerprint (UG1414, VAI_C usage)."""
    if not path.is_file():
        raise SystemExit(f"arch file not found: {path} (the KV260's is {KV260_ARCH} in the Vitis AI 2.5 docker)")
    try:
        arch = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path} is not JSON: {e}") from e
    if not isinstance(arch, dict) or not ({"target", "fingerprint"} & set(arch)):
        raise SystemExit(f"{path} has neither 'target' nor 'fingerprint': not a DPU arch.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xmodel", type=Path, required=True, help="the quantizer's *_int.xmodel")
    parser.add_argument("--arch", type=Path, default=KV260_ARCH, help=f"DPU arch.json (default {KV260_ARCH})")
    parser.add_argument("--out", type=Path, default=Path("compiled"), help="output folder")
    parser.add_argument("--name", default="yolov5_kv260", help="network name: the output is OUT/NAME.xmodel")
    args = parser.parse_args(argv)
    compiler = require_program("vai_c_xir", "compile")
    if not args.xmodel.is_file():
        raise SystemExit(f"xmodel not found: {args.xmodel} (run model_prep.quantize first)")
    check_arch(args.arch)
    cmd = [compiler, "-x", str(args.xmodel), "-a", str(args.arch), "-o", str(args.out), "-n", args.name]
    print(" ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("vai_c_xir failed (its output above says why)")
    out = args.out / f"{args.name}.xmodel"
    print(f"compiled {out}: check it with python -m model_prep.inspect {out} --meta METADATA.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
