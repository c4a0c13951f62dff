"""The DPU stacks a Kria board can carry, one table entry each, and which one this board has.

A stack is a pynq-dpu release with the Vitis AI runtime (VART) it runs on: it runs only models compiled by its
own Vitis AI compilers for its own overlay's DPU. Every rule that depends on the stack (compilers, the stock
overlay's fingerprint, the docker that compiles for it, the PYNQ it is made for) is read from this table, so a
third stack is one more entry. The board's stack is known before anything touches the DPU: from pynq-dpu's
installed version and VART's library version (``dpu.installed`` reads them), or from ``dpu_runtime``. Runs on
Python 3.7 too: model_prep's docker steps judge models with it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

AUTO = "auto"
PYNQ_DPU_LOADER = ("pynq_dpu/dpu.py: DpuOverlay finds the .bit as given or in the package folder and copies "
                   "<name>.rstrip('.bit').xclbin to /usr/lib; load_model reads /etc/vart.conf before writing "
                   "'firmware: /usr/lib/dpu.xclbin', loads only *.xmodel and asserts exactly one DPU subgraph")


@dataclass(frozen=True)
class DpuStack:
    """One pynq-dpu release with its VART: what it runs and where each value was read."""

    name: str  # the dpu_runtime value that selects it
    pynq_dpu: str  # pynq-dpu's version
    vart: str  # VART's major.minor
    compilers: tuple[str, ...]  # Vitis AI compiler major.minor versions whose models it runs
    fingerprint: int  # the stock KV260 overlay's DPU
    fingerprint_source: str
    vitis_ai: str  # the Vitis AI release whose docker quantizes and compiles for it
    docker: str  # that docker's image
    python: str  # that docker's vitis-ai-pytorch Python and torch
    pynq: str  # the PYNQ release it is made for
    setup: str  # how a board gets this stack
    loader: str  # what pynq-dpu's own code does on load, and where it was read

    @property
    def title(self) -> str:
        return f"pynq-dpu {self.pynq_dpu} with VART {self.vart}"

    def runs_compiler(self, version: str) -> bool:
        """Whether this stack runs models of the Vitis AI compiler ``version`` (e.g. '3.5.0')."""
        return any(version == c or version.startswith(c + ".") for c in self.compilers)

    def compilers_text(self) -> str:
        return " and ".join(f"{c}.x" for c in self.compilers)


STACKS: dict[str, DpuStack] = {s.name: s for s in (
    DpuStack(
        name="2.5", pynq_dpu="2.5.1", vart="2.5", compilers=("2.5",), fingerprint=0x101000016010407,
        fingerprint_source=("DPUCZDX8G_ISA1_B4096 of pynq-dpu 2.5.1's KV260 overlay (the DPU IP of Vitis AI 2.5): "
                            "what Vitis AI 2.5's KV260 arch.json compiles for (the real vai25 fixture) and what VART "
                            "2.5 names in 'CHECK fingerprint fail ... dpu 0x101000016010407'"),
        vitis_ai="2.5", docker="xilinx/vitis-ai-cpu:2.5",
        python="Python 3.7, torch 1.10.1",
        pynq="3.0",
        setup="Kria-PYNQ 3.0.1's install.sh (it installs pynq-dpu 2.5.1 with VART 2.5)",
        loader=f"pynq-dpu 2.5.1 sdist, {PYNQ_DPU_LOADER}"),
    DpuStack(
        name="3.5", pynq_dpu="3.5.0", vart="3.5", compilers=("3.0", "3.5"), fingerprint=0x101000056010407,
        fingerprint_source=("DPUCZDX8G_ISA1_B4096 of pynq-dpu 3.5.0's KV260 overlay "
                            "(pynqdpu.dpu.kv260_som.3.5.0.bit, built from the DPU IP DPUCZDX8G_VAI_v3.0 that Vitis AI "
                            "3.0 and 3.5 share: DPU-PYNQ design_contest_3.5, boards/Makefile); the value reported "
                            "for that IP's B4096 in amd/Kria-RoboticsAI issue 1"),
        vitis_ai="3.5", docker="xilinx/vitis-ai-pytorch-cpu:3.5.0",
        python="Python 3.8, torch 1.13.1",
        pynq="3.0",
        setup=("AMD's Kria robotics guide (amd/Kria-RoboticsAI, files/scripts/install_update_kr260_to_vitisai35.sh): "
               "Kria-PYNQ, the Vitis AI 3.5 runtime debs, then DPU-PYNQ's design_contest_3.5 branch"),
        loader=f"DPU-PYNQ design_contest_3.5, the same {PYNQ_DPU_LOADER} (the file is unchanged from 2.5.1)"),
)}
CHOICES = (AUTO, *STACKS)
NEEDS_PYNQ = (f"the dpu backend needs PYNQ 3.0 with pynq-dpu ({' or '.join(s.pynq_dpu for s in STACKS.values())}) on a "
              f"Kria board, and this Python ({sys.executable}) cannot import pynq_dpu: run as root with the PYNQ "
              "venv sourced (sudo -i; source /etc/profile.d/pynq_venv.sh) before starting the node; use backend onnx "
              "on a PC")


def stack_named(name: str) -> DpuStack:
    """The stack a ``dpu_runtime`` value names (not 'auto'); ValueError lists the choices."""
    if name not in STACKS:
        raise ValueError(f"DPU runtime '{name}' is not one of {list(CHOICES)}")
    return STACKS[name]


def stack_of_version(version: str | None) -> DpuStack | None:
    """The stack whose pynq-dpu (e.g. '3.5.0') or VART (e.g. '3.5.0', '2.5') version this is, if any."""
    if not version:
        return None
    for stack in STACKS.values():
        if version == stack.pynq_dpu or version == stack.vart or version.startswith(stack.vart + "."):
            return stack
    return None


def stacks_running(compilers: tuple[str, ...]) -> list[DpuStack]:
    """The stacks that run models of these compiler versions (every one of them)."""
    return [s for s in STACKS.values() if compilers and all(s.runs_compiler(c) for c in compilers)]


@dataclass(frozen=True)
class Detected:
    """The board's stack as decided (None: none could be), what decided it, and a problem that stops the dpu
    backend (pynq-dpu and VART of different stacks)."""

    stack: DpuStack | None
    how: str
    problem: str = ""


def detect(choice: str = AUTO, pynq_dpu: str | None = None, vart: str | None = None) -> Detected:
    """The stack for ``choice`` ('auto' or a table name) given the installed pynq-dpu and VART versions."""
    if choice != AUTO:
        return Detected(stack_named(choice), f"dpu_runtime {choice}")
    found = f"pynq-dpu {pynq_dpu or 'not installed'}, VART {vart or 'not found'}"
    if pynq_dpu is None:
        return Detected(None, found, NEEDS_PYNQ)
    stack = stack_of_version(pynq_dpu)
    if stack is None:
        known = ", ".join(f"{s.pynq_dpu} ({s.name})" for s in STACKS.values())
        return Detected(None, found, f"no known DPU stack ({found}; known pynq-dpu: {known}): install one "
                                     "(doc/board.md, 'Two DPU stacks') or name it with dpu_runtime / --dpu-runtime")
    runtime = stack_of_version(vart)
    if vart and runtime is not stack:
        return Detected(stack, found, f"pynq-dpu {pynq_dpu} runs on VART {stack.vart}, but VART {vart} is installed: "
                                      f"set the board up as {stack.setup}, or name the stack that matches VART with "
                                      "dpu_runtime / --dpu-runtime")
    return Detected(stack, found)
