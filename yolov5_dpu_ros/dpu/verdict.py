"""Will this xmodel run on a DPU stack? One verdict for ``model_prep.inspect``, ``doctor`` and the dpu backend.

A stack (``dpu.stacks``: pynq-dpu with its VART) runs a model when it has exactly one DPU subgraph, was compiled
by one of the stack's Vitis AI compilers, and was compiled for the overlay's DPU (equal fingerprints). A
fingerprint mismatch is VART's ``CHECK fingerprint fail``, which kills the process; so is, by users' reports, a
model of another stack's compiler, which is why that is refused unless explicitly allowed. CPU subgraphs holding
only ``fix2float`` (one per output) are in every compiled model and are normal.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolov5_dpu_ros.dpu.stacks import STACKS, DpuStack, stacks_running
from yolov5_dpu_ros.dpu.xmodel import XmodelInfo

OTHER_FINGERPRINTS = {0x101000016010200: "DPUCZDX8G_ISA1_B512"}


def recompile(stack: DpuStack) -> str:
    """How to make a model this stack runs."""
    return (f"recompile the quantized model in the Vitis AI {stack.vitis_ai} docker ({stack.docker}) with its "
            f"vai_c_xir and KV260 arch.json (python -m model_prep.compile --dpu-runtime {stack.name}, see "
            "doc/model_preparation.md)")


def describe_fingerprint(fingerprint: int | None) -> str:
    """A fingerprint in hex with the DPU it names, where known."""
    if fingerprint is None:
        return "no fingerprint"
    stock = [f"the DPU of pynq-dpu {s.pynq_dpu}'s KV260 overlay" for s in STACKS.values()
             if s.fingerprint == fingerprint]
    known = ", ".join(stock) or OTHER_FINGERPRINTS.get(fingerprint)
    return f"{fingerprint:#x}" + (f" ({known})" if known else "")


def parse_fingerprint(text: str | int | None) -> int | None:
    """An overlay fingerprint from a parameter or flag (hex or decimal); empty (None) means the stack's stock
    overlay's."""
    if text is None or text == "":
        return None
    example = f"{STACKS['2.5'].fingerprint:#x}"
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        try:
            value = int(str(text).strip(), 0)
        except ValueError as e:
            raise ValueError(f"DPU fingerprint '{text}' is not a number: give it as hex, e.g. {example} (xdputil "
                             "query on the board prints it)") from e
    if not 0 < value < 1 << 64:
        raise ValueError(f"DPU fingerprint {value} is out of range: a 64-bit value such as {example}")
    return value


@dataclass(frozen=True)
class Verdict:
    """``runs`` is True when nothing stands in the way; ``problems`` say why not and the fix."""

    runs: bool
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    def check(self) -> None:
        """Raise a ValueError with every problem when the model does not run."""
        if not self.runs:
            raise ValueError(" ".join(self.problems))


def judge(info: XmodelInfo, stack: DpuStack, overlay_fingerprint: int | None = None,
          allow_other_compiler: bool = False) -> Verdict:
    """The verdict on one xmodel for ``stack`` with an overlay whose DPU has ``overlay_fingerprint`` (None: the
    stack's stock overlay)."""
    where = info.path
    fingerprint = stack.fingerprint if overlay_fingerprint is None else overlay_fingerprint
    problems: list[str] = []
    notes: list[str] = []
    dpu = info.dpu
    if not dpu:
        hint = ("this is the quantizer's _int.xmodel: compile it with vai_c_xir first"
                if info.path.name.endswith("_int.xmodel") else
                "it was not compiled for a DPU: compile the quantizer's _int.xmodel with vai_c_xir")
        return Verdict(False, (f"{where}: no DPU subgraph; {hint} (python -m model_prep.compile).",), ())
    if len(dpu) > 1:
        ops = ", ".join(info.cpu_op_types) or "unknown"
        problems.append(
            f"{where}: {len(dpu)} DPU subgraphs, pynq-dpu runs exactly one. Operators the DPU cannot run "
            f"split the graph: {ops}. Use ReLU or LeakyReLU(26/256) activations, keep decode out of the model "
            "(Detect returns raw heads) and re-quantize (doc/model_preparation.md).")
    model_fp = dpu[0].fingerprint
    if model_fp != fingerprint:
        other = next((s for s in STACKS.values() if s.fingerprint == model_fp), None)
        board = (f", or set the board up with {other.title}: {other.setup}"
                 if other and other is not stack and overlay_fingerprint is None else
                 " (or give the fingerprint of the custom overlay this model was compiled for)")
        problems.append(
            f"{where}: compiled for {dpu[0].dpu_name or 'an unnamed DPU'}, fingerprint "
            f"{describe_fingerprint(model_fp)}, but the overlay's DPU on {stack.title} is "
            f"{describe_fingerprint(fingerprint)}: VART stops with 'CHECK fingerprint fail' and the process dies. "
            f"The fix: {recompile(stack)}{board}.")
    compilers = info.compilers
    if not compilers or not all(stack.runs_compiler(v) for v in compilers):
        compiler = ", ".join(compilers) or "an unknown version (no libs_info in the graph)"
        other = next((s for s in stacks_running(compilers) if s is not stack), None)
        built = f" (a model for {other.title})" if other else ""
        text = (f"{where}: compiled by Vitis AI {compiler}{built}; {stack.title} runs models of Vitis AI "
                f"{stack.compilers_text()}, and a model of another compiler is reported to kill the process on load")
        fix = recompile(stack) + (f", or set the board up with {other.title}: {other.setup}" if other else "")
        if allow_other_compiler:
            notes.append(f"{text}; allowed by allow_other_compiler. The safe fix: {fix}.")
        else:
            problems.append(f"{text}. The fix: {fix}.")
    if len(dpu) == 1:
        tensors = info.inputs + info.outputs
        if len(info.inputs) != 1 or not info.outputs:
            problems.append(f"{where}: the DPU subgraph has {len(info.inputs)} inputs and {len(info.outputs)} "
                            "outputs; a detector has one input and one output per head.")
        elif any(t.fix_point is None for t in tensors):
            problems.append(f"{where}: DPU tensors without fix_point: "
                            f"{[t.name for t in tensors if t.fix_point is None]}; {recompile(stack)}.")
    return Verdict(not problems, tuple(problems), tuple(notes))
