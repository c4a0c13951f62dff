"""compile: the quantizer's _int.xmodel → a DPU xmodel for the KV260 stack you name, with that docker's vai_c_xir.

    python -m model_prep.compile --dpu-runtime 2.5|3.5 --xmodel quantize_result/DetectionModel_int.xmodel \\
        --name yolov5n_kv260 [--arch /opt/vitis_ai/compiler/arch/DPUCZDX8G/KV260/arch.json] [--out compiled]

Each board stack runs only its own compilers' models: --dpu-runtime 2.5 (pynq-dpu 2.5.1) compiles in the Vitis AI
2.5 docker, 3.5 (pynq-dpu 3.5.0) in the Vitis AI 3.5 docker; the KV260 arch.json sits at the same path in both
but names each stack's own DPU. The arch.json's fingerprint is checked against the stack's overlay before
compiling, and the compiled model gets the stack's verdict after (a model of the wrong docker is removed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from model_prep.environment import require_program
from yolov5_dpu_ros.dpu.stacks import STACKS, DpuStack
from yolov5_dpu_ros.dpu.verdict import judge, parse_fingerprint
from yolov5_dpu_ros.dpu.xmodel import XmodelError, read_xmodel

KV260_ARCH = Path("/opt/vitis_ai/compiler/arch/DPUCZDX8G/KV260/arch.json")


def check_arch(path: Path, stack: DpuStack, fingerprint: int) -> None:
    """arch.json must exist and hold a target or a fingerprint (UG1414, VAI_C usage); a fingerprint must be the
    overlay's."""
    if not path.is_file():
        raise SystemExit(f"arch file not found: {path} (the KV260's is {KV260_ARCH} in the Vitis AI "
                         f"{stack.vitis_ai} docker)")
    try:
        arch = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path} is not JSON: {e}") from e
    if not isinstance(arch, dict) or not ({"target", "fingerprint"} & set(arch)):
        raise SystemExit(f"{path} has neither 'target' nor 'fingerprint': not a DPU arch.json")
    if "fingerprint" in arch:
        try:
            value = int(str(arch["fingerprint"]), 0)
        except ValueError as e:
            raise SystemExit(f"{path}: fingerprint '{arch['fingerprint']}' is not a number") from e
        if value != fingerprint:
            raise SystemExit(f"{path} compiles for the DPU {value:#x}, but {stack.title}'s overlay has "
                             f"{fingerprint:#x}: use the KV260 arch.json of the Vitis AI {stack.vitis_ai} docker "
                             f"({stack.docker}), or --fingerprint for a custom overlay")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpu-runtime", choices=list(STACKS), required=True,
                        help="the board's DPU stack: 2.5 (pynq-dpu 2.5.1, compile in the Vitis AI 2.5 docker) or 3.5 "
                             "(pynq-dpu 3.5.0, compile in the Vitis AI 3.5 docker)")
    parser.add_argument("--xmodel", type=Path, required=True, help="the quantizer's *_int.xmodel")
    parser.add_argument("--fingerprint", default="", help="a custom overlay DPU's fingerprint (default: the stack's "
                                                          "stock KV260 overlay's)")
    parser.add_argument("--arch", type=Path, default=KV260_ARCH, help=f"DPU arch.json (default {KV260_ARCH})")
    parser.add_argument("--out", type=Path, default=Path("compiled"), help="output folder")
    parser.add_argument("--name", default="yolov5_kv260", help="network name: the output is OUT/NAME.xmodel")
    args = parser.parse_args(argv)
    compiler = require_program("vai_c_xir", "compile")
    if not args.xmodel.is_file():
        raise SystemExit(f"xmodel not found: {args.xmodel} (run model_prep.quantize first)")
    stack = STACKS[args.dpu_runtime]
    try:
        custom = parse_fingerprint(args.fingerprint)
    except ValueError as e:
        raise SystemExit(f"--fingerprint: {e}") from e
    check_arch(args.arch, stack, stack.fingerprint if custom is None else custom)
    cmd = [compiler, "-x", str(args.xmodel), "-a", str(args.arch), "-o", str(args.out), "-n", args.name]
    print(" ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("vai_c_xir failed (its output above says why)")
    out = args.out / f"{args.name}.xmodel"
    try:
        verdict = judge(read_xmodel(out), stack, custom)
    except XmodelError as e:
        raise SystemExit(f"vai_c_xir wrote no readable model: {e}") from e
    if not verdict.runs:
        out.unlink()
        raise SystemExit("the compiled model would not run on the board (removed):\n" +
                         "\n".join(f"- {p}" for p in verdict.problems))
    print(f"compiled {out} for {stack.title}: check it against the metadata with python -m model_prep.inspect "
          f"{out} --dpu-runtime {stack.name} --meta METADATA.yaml --write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
