"""Will this xmodel run with pynq-dpu 2.5.1? One verdict for ``model_prep.inspect`` and the dpu backend.

pynq-dpu 2.5.1 (VART 2.5) runs a model when it has exactly one DPU subgraph, was compiled by Vitis
AI 2.5, and was compiled for the overlay's DPU (equal fingerprints). A fingerprint mismatch is VART's
``CHECK fingerprint fail``, which kills the process; so is, by users' reports, a model of another
compiler, which is why that is refused unless explicitly allowed. CPU subgraphs holding only
``fix2float`` (one per output) are in every compiled model and are normal.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolov5_dpu_ros.dpu.xmodel import XmodelInfo

STOCK_FINGERPRINT = 0x101000016010407  # the KV260 overlay (dpu.bit) of pynq-dpu 2.5.1: DPUCZDX8G_ISA1_B4096
SUPPORTED_COMPILER = "2.5"
KNOWN_FINGERPRINTS = {
    0x101000016010407: "DPUCZDX8G_ISA1_B4096 of the DPU IP in pynq-dpu 2.5.1 (Vitis AI 2.5's KV260 arch.json)",
    0x101000056010407: "DPUCZDX8G_ISA1_B4096 of the newer DPU IP (Vitis AI 3.x's KV260 arch.json)",
    0x101000016010200: "DPUCZDX8G_ISA1_B512",
}
RECOMPILE = ("recompile the quantized model with Vitis AI 2.5's vai_c_xir for the KV260 arch.json "
             "(python -m model_prep.compile, see model_prep/README.md)")


def describe_fingerprint(fingerprint: int | None) -> str:
    """A fingerprint in hex with the DPU it names, where known."""
    if fingerprint is None:
        return "no fingerprint"
    known = KNOWN_FINGERPRINTS.get(fingerprint)
    return f"{fingerprint:#x}" + (f" ({known})" if known else "")


def parse_fingerprint(text: str | int | None) -> int:
    """An overlay fingerprint from a parameter or flag (hex or decimal); empty means the stock overlay's."""
    if text is None or text == "":
        return STOCK_FINGERPRINT
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        try:
            value = int(str(text).strip(), 0)
        except ValueError as e:
            raise ValueError(f"DPU fingerprint '{text}' is not a number: give it as hex, e.g. "
                             f"{STOCK_FINGERPRINT:#x} (xdputil query on the board prints it)") from e
    if not 0 < value < 1 << 64:
        raise ValueError(f"DPU fingerprint {value} is out of range: a 64-bit value such as {STOCK_FINGERPRINT:#x}")
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


def judge(info: XmodelInfo, overlay_fingerprint: int = STOCK_FINGERPRINT,
          allow_other_compiler: bool = False) -> Verdict:
    """The verdict on one xmodel for an overlay whose DPU has ``overlay_fingerprint``."""
    where = info.path
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
            f"{where}: {len(dpu)} DPU subgraphs, pynq-dpu 2.5.1 runs exactly one. Operators the DPU cannot run "
            f"split the graph: {ops}. Use ReLU or LeakyReLU(26/256) activations, keep decode out of the model "
            "(Detect returns raw heads) and re-quantize (model_prep/README.md).")
    model_fp = dpu[0].fingerprint
    if model_fp != overlay_fingerprint:
        problems.append(
            f"{where}: compiled for {dpu[0].dpu_name or 'an unnamed DPU'}, fingerprint "
            f"{describe_fingerprint(model_fp)}, but the overlay's DPU is {describe_fingerprint(overlay_fingerprint)}: "
            "VART stops with 'CHECK fingerprint fail' and the process dies. Compile for the overlay's DPU: "
            f"{RECOMPILE} (or give the fingerprint of the custom overlay this model was compiled for).")
    compiler = ", ".join(info.compilers) or "an unknown version (no libs_info in the graph)"
    if not info.compilers or any(not v.startswith(SUPPORTED_COMPILER + ".") for v in info.compilers):
        text = (f"{where}: compiled by Vitis AI {compiler}; pynq-dpu 2.5.1 runs models of Vitis AI 2.5. Such "
                "models with a matching fingerprint are reported both to load and to kill the process on VART 2.5")
        if allow_other_compiler:
            notes.append(f"{text}; allowed by allow_other_compiler. The safe fix: {RECOMPILE}.")
        else:
            problems.append(f"{text}. The safe fix: {RECOMPILE}; to try it anyway, set allow_other_compiler.")
    if len(dpu) == 1:
        tensors = info.inputs + info.outputs
        if len(info.inputs) != 1 or not info.outputs:
            problems.append(f"{where}: the DPU subgraph has {len(info.inputs)} inputs and {len(info.outputs)} "
                            "outputs; a detector has one input and one output per head.")
        elif any(t.fix_point is None for t in tensors):
            problems.append(f"{where}: DPU tensors without fix_point: "
                            f"{[t.name for t in tensors if t.fix_point is None]}; {RECOMPILE}.")
    return Verdict(not problems, tuple(problems), tuple(notes))
