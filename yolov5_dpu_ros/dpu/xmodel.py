"""Reading a compiled xmodel without xir: the facts the DPU checks need, straight from its protobuf.

An xmodel is one protobuf message of Xilinx's ``serial_v2`` schema (``xir_graph_proto_v2.proto``,
Apache-2.0). Only the fields read here are decoded, with a small wire-format reader, so this runs on
any PC and on the board before PYNQ, VART or xir are imported:

    Graph    {graph_name=1; repeated OPNode op_node=5; SubGraph subg_root=10; map graph_attr=11}
    OPNode   {op_name=1; op_type=2; map op_attr=3; repeated OpArg args=4; Tensor output_tensor=5}
    OpArg    {arg_name=1; repeated string arg_ops=2}
    Tensor   {tensor_name=1; repeated uint32 tensor_dim=2; map tensor_attr=10}
    SubGraph {subgraph_name=1; repeated string op_name=3; map subg_attr=5; repeated SubGraph subg_child=10}
    AttrValue oneof {bool 4, int32 5, uint32 6, int64 7, uint64 8, float 9, double 10, string 11,
                     bytes 12, string vec 20, map<string,string> 26, ...}
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MAX_XMODEL_BYTES = 1 << 31
# ops that hold no computation of their own: never the reason a graph was split
PLUMBING_OPS = frozenset({"data", "data-fix", "const", "const-fix", "upload", "download", "fix2float", "float2fix"})


class XmodelError(ValueError):
    """A file that is not a readable compiled xmodel; the message names the file and what to do."""


@dataclass(frozen=True)
class XmodelTensor:
    """One tensor as the xmodel stores it: NHWC shape and its ``fix_point`` attribute, None where the tensor has
    none (not a quantized tensor; the board checks refuse such a model)."""

    name: str
    shape: tuple[int, ...]
    fix_point: int | None


@dataclass(frozen=True)
class SubgraphInfo:
    """One child of the root subgraph: its device (DPU, CPU, USER), its op types, DPU attributes."""

    name: str
    device: str
    op_types: tuple[str, ...]
    dpu_name: str = ""
    fingerprint: int | None = None


@dataclass(frozen=True)
class XmodelInfo:
    """What a compiled xmodel says before anything is loaded on a DPU."""

    path: Path
    graph_name: str
    children: tuple[SubgraphInfo, ...]
    compilers: tuple[str, ...]  # versions of xcompiler from libs_info, e.g. ("2.5.0",)
    inputs: tuple[XmodelTensor, ...]  # of the first DPU subgraph, in VART's runner order (sorted by name)
    outputs: tuple[XmodelTensor, ...]

    @property
    def dpu(self) -> tuple[SubgraphInfo, ...]:
        return tuple(c for c in self.children if c.device == "DPU")

    @property
    def cpu_op_types(self) -> tuple[str, ...]:
        """Operator types outside the DPU that do real work (``fix2float`` and friends excluded)."""
        ops = {t for c in self.children if c.device == "CPU" for t in c.op_types}
        return tuple(sorted(ops - PLUMBING_OPS))


# --- protobuf wire format --------------------------------------------------------------------------

def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise IndexError("varint runs past the end")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: memoryview) -> Iterator[tuple[int, Any]]:
    """(field number, value) of one message: ints for varints, memoryviews otherwise."""
    if not isinstance(buf, memoryview):
        raise IndexError("a number where a message belongs")
    i, n = 0, len(buf)
    value: Any
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise IndexError("field number 0")
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i : i + size], i + size
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        else:
            raise IndexError(f"wire type {wire}")
        if i > n:
            raise IndexError("field runs past the end")
        yield number, value


def _message(buf: memoryview) -> dict[int, list]:
    out: dict[int, list] = {}
    for number, value in _fields(buf):
        out.setdefault(number, []).append(value)
    return out


def _text(value: memoryview) -> str:
    if not isinstance(value, memoryview):
        raise IndexError("a number where a string belongs")
    return bytes(value).decode("utf-8", errors="replace")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _attr_value(buf: memoryview) -> Any:
    """One AttrValue: scalars, strings, string vectors and string maps; other kinds as None."""
    for number, value in _fields(buf):
        if number == 4:
            return bool(value)
        if number in (5, 7):
            return _signed(value, 32 if number == 5 else 64)
        if number in (6, 8):
            return value
        if number == 9:
            return struct.unpack("<f", value)[0]
        if number == 10:
            return struct.unpack("<d", value)[0]
        if number == 11:
            return _text(value)
        if number == 20:
            return [_text(v) for v in _message(value).get(1, [])]
        if number == 26:
            return {_text(k): _text(v) for k, v in (_pair(e) for e in _message(value).get(1, []))}
    return None


def _pair(entry: memoryview) -> tuple[memoryview, memoryview]:
    m = _message(entry)
    return m.get(1, [memoryview(b"")])[0], m.get(2, [memoryview(b"")])[0]


def _attrs(entries: list) -> dict[str, Any]:
    return {_text(k): _attr_value(v) for k, v in (_pair(e) for e in entries)}


# --- graph -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Op:
    type: str
    inputs: tuple[str, ...]
    tensor: XmodelTensor | None


def _op(buf: memoryview) -> tuple[str, _Op]:
    m = _message(buf)
    inputs = tuple(_text(name) for arg in m.get(4, []) for name in _message(arg).get(2, []))
    tensor = None
    if 5 in m:
        t = _message(m[5][0])
        dims: list[int] = []
        for d in t.get(2, []):
            if isinstance(d, int):
                dims.append(d)
            else:  # packed
                i = 0
                while i < len(d):
                    v, i = _varint(d, i)
                    dims.append(v)
        attrs = _attrs(t.get(10, []))
        fix = attrs.get("fix_point")
        tensor = XmodelTensor(_text(t.get(1, [b""])[0]), tuple(dims), int(fix) if isinstance(fix, int) else None)
    return _text(m.get(1, [b""])[0]), _Op(_text(m.get(2, [b""])[0]), inputs, tensor)


def _leaf_ops(sub: dict[int, list]) -> list[str]:
    names = [_text(v) for v in sub.get(3, [])]
    for child in sub.get(10, []):
        names += _leaf_ops(_message(child))
    return names


def _compilers(libs_info: Any) -> tuple[str, ...]:
    """xcompiler versions named in the graph attribute libs_info (``xcompiler.2.5.0 : xir.2.5.0`` ...)."""
    if not isinstance(libs_info, dict):
        return ()
    found = {m.group(1) for key in libs_info for m in re.finditer(r"xcompiler\.(\d+(?:\.\d+)*)", key)}
    return tuple(sorted(found))


def read_xmodel(path: str | Path) -> XmodelInfo:
    """Read a compiled xmodel's graph; XmodelError for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise XmodelError(f"xmodel not found: {path} (compile one with model_prep, see doc/model_preparation.md)")
    size = path.stat().st_size
    if size == 0 or size > MAX_XMODEL_BYTES:
        raise XmodelError(f"{path}: {size} bytes is not an xmodel (an empty or oversized file): "
                          "give the .xmodel written by vai_c_xir")
    try:
        return _parse(path, memoryview(path.read_bytes()))
    except (IndexError, KeyError, TypeError, struct.error, RecursionError) as e:
        raise XmodelError(f"{path}: not an xmodel (a truncated or foreign file: {type(e).__name__} {e}); give the "
                          ".xmodel written by vai_c_xir (an ONNX or the quantizer's output will not do)") from e


def _parse(path: Path, data: memoryview) -> XmodelInfo:
    graph = _message(data)
    ops = dict(_op(v) for v in graph.get(5, []))
    name = _text(graph.get(1, [b""])[0])
    if not ops or not name or 10 not in graph:
        raise XmodelError(f"{path}: not an xmodel (no graph, operators or subgraphs in it); give the .xmodel "
                          "written by vai_c_xir")
    root = _message(graph[10][0])
    graph_attr = _attrs(graph.get(11, []))
    children = []
    dpu_ops: set[str] = set()
    for child in root.get(10, []):
        sub = _message(child)
        attrs = _attrs(sub.get(5, []))
        op_names = _leaf_ops(sub)
        device = str(attrs.get("device", "")).upper()
        fingerprint = attrs.get("dpu_fingerprint")
        children.append(SubgraphInfo(
            _text(sub.get(1, [b""])[0]), device, tuple(sorted({ops[n].type for n in op_names if n in ops})),
            str(attrs.get("dpu_name", "")), int(fingerprint) if isinstance(fingerprint, int) else None))
        if device == "DPU" and not dpu_ops:
            dpu_ops = set(op_names)
    return XmodelInfo(path, name, tuple(children), _compilers(graph_attr.get("libs_info")),
                      _dpu_inputs(ops, dpu_ops), _dpu_outputs(ops, dpu_ops))


def _dpu_inputs(ops: dict[str, _Op], inside: set[str]) -> tuple[XmodelTensor, ...]:
    """Tensors made outside the DPU subgraph and read inside it (VART's input tensors)."""
    names = sorted({src for n in inside if n in ops for src in ops[n].inputs if src not in inside and src in ops})
    return tuple(t for t in (ops[n].tensor for n in names) if t is not None)


def _dpu_outputs(ops: dict[str, _Op], inside: set[str]) -> tuple[XmodelTensor, ...]:
    """Tensors made inside the DPU subgraph and read outside it, in VART's order: sorted by tensor name
    (``get_sorted_output_tensors``, Vitis AI 2.5 ``dpu_session_base_imp.cpp``), not the graph's order."""
    found = {src for n in ops if n not in inside for src in ops[n].inputs if src in inside}
    tensors = [t for t in (ops[n].tensor for n in found) if t is not None]
    return tuple(sorted(tensors, key=lambda t: t.name))
