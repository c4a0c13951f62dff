"""inspect: on which DPU stack will this compiled xmodel run, and what does it hold? Runs on any PC.

    python -m model_prep.inspect compiled/yolov5n_kv260.xmodel [--dpu-runtime 2.5|3.5] [--meta M.yaml [--write]]
        [--fingerprint 0x101000016010407] [--allow-other-compiler]

Reads the xmodel itself (no xir, no Vitis AI docker, no board) and prints the verdict the node's dpu
backend applies before it touches the DPU: exactly one DPU subgraph, compiled by one of the stack's Vitis AI
compilers (2.5 for pynq-dpu 2.5.1; 3.0 or 3.5 for pynq-dpu 3.5.0), compiled for the overlay's DPU (the stack's
stock KV260 overlay unless --fingerprint names a custom one). With --dpu-runtime, the verdict for that stack
(exit 0 only when the model runs there); without, one verdict line per stack (exit 0 when it runs on one).
Then the compiler, DPU name and fingerprint, and the input and output tensors in runner order with shapes and
fix points. With --meta the outputs are matched to the metadata's strides by shape, and --write puts the
model's fix points into the metadata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolov5_dpu_ros.core.model_meta import load_meta, match_heads, save_meta
from yolov5_dpu_ros.dpu.board import check_tensors
from yolov5_dpu_ros.dpu.stacks import STACKS
from yolov5_dpu_ros.dpu.verdict import Verdict, describe_fingerprint, judge, parse_fingerprint
from yolov5_dpu_ros.dpu.xmodel import XmodelInfo, read_xmodel


def report(info: XmodelInfo) -> list[str]:
    """What the model holds, one line a fact."""
    lines = [f"compiler: Vitis AI {', '.join(info.compilers) or 'unknown (no libs_info)'}",
             f"subgraphs: {', '.join(c.device or '?' for c in info.children)} "
             f"({len(info.dpu)} DPU; pynq-dpu runs exactly 1)"]
    lines += [f"DPU: {c.dpu_name or '?'}, fingerprint {describe_fingerprint(c.fingerprint)}" for c in info.dpu]
    if info.cpu_op_types:
        lines.append(f"operators on the CPU (besides fix2float): {', '.join(info.cpu_op_types)}")
    lines.append("tensors in VART's runner order (sorted by tensor name; heads are matched to strides by shape):")
    for kind, specs in (("input", info.inputs), ("output", info.outputs)):
        lines += [f"{kind} {i}: {list(t.shape)} fix_point {t.fix_point}  ({t.name})" for i, t in enumerate(specs)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_prep.inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("xmodel", type=Path, help="compiled xmodel")
    parser.add_argument("--dpu-runtime", choices=list(STACKS),
                        help="judge for this DPU stack only: 2.5 (pynq-dpu 2.5.1, VART 2.5) or 3.5 (pynq-dpu 3.5.0, "
                             "VART 3.5); default: every stack, one line each")
    parser.add_argument("--meta", type=Path, help="metadata YAML to check against")
    parser.add_argument("--write", action="store_true", help="with --meta: write the model's fix points into it")
    parser.add_argument("--fingerprint", default="",
                        help="the overlay DPU's fingerprint (default: the stack's stock KV260 overlay's)")
    parser.add_argument("--allow-other-compiler", action="store_true",
                        help="accept a model of another stack's Vitis AI whose fingerprint matches (risky: see "
                             "doc/troubleshooting.md)")
    args = parser.parse_args(argv)
    if args.write and args.meta is None:
        parser.error("--write needs --meta")
    try:
        fingerprint = parse_fingerprint(args.fingerprint)
        info = read_xmodel(args.xmodel)
        meta = load_meta(args.meta) if args.meta else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stacks = [STACKS[args.dpu_runtime]] if args.dpu_runtime else list(STACKS.values())
    verdicts: dict[str, Verdict] = {s.name: judge(info, s, fingerprint, args.allow_other_compiler) for s in stacks}
    print("\n".join(report(info)))
    problems: list[str] = []
    if meta is not None and any(v.runs for v in verdicts.values()):
        try:
            check_tensors(info, meta)
        except ValueError as e:
            problems.append(str(e))
        else:
            heads = match_heads([t.shape for t in info.outputs], meta, [t.name for t in info.outputs])
            by_head = {head: t.fix_point for head, t in zip(heads, info.outputs)}
            fixed = meta.with_fix_points(info.inputs[0].fix_point, [by_head[h] for h in range(len(heads))])
            order = "head (box, classes of each stride)" if meta.split_heads else "stride"
            print(f"outputs → strides {[meta.strides[meta.head_level(h)] for h in heads]}; fix points: input "
                  f"{fixed.input_fix_point}, outputs by {order} {list(fixed.output_fix_points)}")
            if args.write:
                save_meta(fixed, args.meta)
                print(f"wrote the fix points into {args.meta}")
    for stack in stacks:
        verdict = verdicts[stack.name]
        for note in verdict.notes:
            print(f"warning: {note}")
        dpu = fingerprint if fingerprint is not None else stack.fingerprint
        if verdict.runs and not problems:
            print(f"verdict ({stack.name} stack): runs with {stack.title} on the overlay {describe_fingerprint(dpu)}")
        else:
            print(f"verdict ({stack.name} stack): REFUSED on {stack.title}\n" +
                  "\n".join(f"- {p}" for p in (*verdict.problems, *problems)))
    return 0 if not problems and any(v.runs for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
