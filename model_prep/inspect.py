"""inspect: what a compiled xmodel holds, checked against what pynq-dpu 2.5.1 and the metadata need.

    python -m model_prep.inspect compiled/yolov5n_kv260.xmodel [--meta M.yaml [--write]]

Counts the DPU subgraphs (must be 1; otherwise lists the operators that ran on the CPU and split it),
lists input and output tensors in runner order with shapes, dtypes and fix points, flags a
fingerprint that is not a Vitis AI 2.5 DPUCZDX8G B4096 build, matches the outputs to the metadata's
strides by shape and, with --write, puts the model's fix points into the metadata. Needs xir (the
Vitis AI 2.5 docker, or the board's PYNQ venv).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_prep.environment import require_module
from yolov5_dpu_ros.backends.dpu import B4096_VAI25, inspect_xmodel, preflight
from yolov5_dpu_ros.model_meta import load_meta, match_heads, save_meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("xmodel", type=Path, help="compiled xmodel")
    parser.add_argument("--meta", type=Path, help="metadata YAML to check against")
    parser.add_argument("--write", action="store_true", help="with --meta: write the model's fix points into it")
    args = parser.parse_args(argv)
    if args.xmodel.name.endswith("_int.xmodel"):
        raise SystemExit(f"{args.xmodel} is the quantizer's output, not a DPU model: compile it with vai_c_xir "
                         "first (python -m model_prep.compile)")
    if not args.xmodel.is_file():
        raise SystemExit(f"xmodel not found: {args.xmodel}")
    xir = require_module("xir", "inspect", "run it inside the Vitis AI 2.5 docker, or on the KV260 in the PYNQ venv")
    info = inspect_xmodel(xir, args.xmodel)
    print(f"DPU subgraphs: {info.dpu_subgraphs} (pynq-dpu runs exactly 1)")
    if info.cpu_ops:
        print(f"operators outside the DPU: {', '.join(info.cpu_ops)}")
    if info.fingerprint is not None:
        verdict = ("Vitis AI 2.5 DPUCZDX8G B4096: runs with pynq-dpu 2.5.1"
                   if info.fingerprint & 0xFFFFFFFF == B4096_VAI25 else
                   "NOT a Vitis AI 2.5 DPUCZDX8G B4096 build: recompile with the Vitis AI 2.5 docker for the KV260")
        print(f"fingerprint: {info.fingerprint:#x} ({verdict})")
    for kind, specs in (("input", info.inputs), ("output", info.outputs)):
        for i, t in enumerate(specs):
            print(f"{kind} {i}: {t.name} {list(t.shape)} {t.dtype} fix_point {t.fix_point}")
    if args.meta is None:
        return 0 if info.dpu_subgraphs == 1 else 1
    meta = load_meta(args.meta)
    try:
        preflight(args.xmodel, meta, info)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    levels = match_heads([t.shape for t in info.outputs], meta)
    by_level = {lv: t.fix_point for lv, t in zip(levels, info.outputs)}
    fixed = meta.with_fix_points(info.inputs[0].fix_point, [by_level[lv] for lv in range(len(meta.strides))])
    print(f"outputs → strides {[meta.strides[lv] for lv in levels]}; fix points: input {fixed.input_fix_point}, "
          f"outputs by stride {list(fixed.output_fix_points)}")
    if args.write:
        save_meta(fixed, args.meta)
        print(f"wrote the fix points into {args.meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
