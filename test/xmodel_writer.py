"""TEST DATA: writes xmodel files shaped like vai_c_xir's output (serial_v2 protobuf), for the checks.

The layout copies what the real compiled fixtures in ../shared/fixtures/xmodels hold: a root whose
children are one USER subgraph (the data-fix input), the DPU subgraph(s) with ``device``,
``dpu_name`` and ``dpu_fingerprint``, and one CPU subgraph per output holding a single ``fix2float``;
``libs_info`` names the compiler. No weights or instructions: only the graph facts the package reads.
Never part of the shipped package.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _attr(value) -> bytes:
    if isinstance(value, bool):
        return _field(4, int(value))
    if isinstance(value, int):
        return _field(8, value) if value >= 1 << 31 else _field(5, value)
    if isinstance(value, float):
        return _varint(9 << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, str):
        return _field(11, value)
    if isinstance(value, dict):
        return _field(26, b"".join(_field(1, _field(1, k) + _field(2, v)) for k, v in value.items()))
    raise TypeError(value)


def _attrs(number: int, attrs: dict) -> bytes:
    return b"".join(_field(number, _field(1, k) + _field(2, _attr(v))) for k, v in attrs.items())


def _op(name: str, op_type: str, inputs: Sequence[str] = (), shape=None, fix_point: int | None = None) -> bytes:
    body = _field(1, name) + _field(2, op_type)
    if inputs:
        body += _field(4, _field(1, "input") + b"".join(_field(2, i) for i in inputs))
    if shape is not None:
        tensor = _field(1, name + "_t") + _field(2, b"".join(_varint(d) for d in shape)) + _field(5, 2) + _field(6, 8)
        if fix_point is not None:
            tensor += _attrs(10, {"fix_point": fix_point, "bit_width": 8, "if_signed": True})
        body += _field(5, tensor)
    return body


def _subgraph(name: str, ops: Sequence[str] = (), attrs: dict | None = None, children: Sequence[bytes] = ()) -> bytes:
    return (_field(1, name) + b"".join(_field(3, o) for o in ops) + _attrs(5, attrs or {})
            + b"".join(_field(10, c) for c in children))


def xmodel_bytes(input_shape: Sequence[int], input_fix_point: int, outputs: Sequence[tuple[str, Sequence[int], int]],
                 fingerprint: int = 0x101000016010407, dpu_name: str = "DPUCZDX8G_ISA1_B4096",
                 compiler: str | None = "2.5.0", dpu_subgraphs: int = 1, cpu_ops: Sequence[str] = ("sigmoid",),
                 graph_name: str = "DetectionModel") -> bytes:
    """A compiled-looking xmodel: ``outputs`` are (name, NHWC shape, fix point) in runner order.

    With ``dpu_subgraphs`` > 1 the graph is split by CPU subgraphs holding ``cpu_ops``; with 0 it is
    the quantizer's unpartitioned graph (no children under the root).
    """
    ops = [_op("input", "data-fix", (), input_shape, input_fix_point)]
    dpu_children, cpu_between = [], []
    previous = "input"
    for k in range(max(dpu_subgraphs, 1)):
        conv = f"conv_{k}"
        ops.append(_op(conv, "conv2d-fix", [previous], (1, 8, 8, 16), 4))
        dpu_children.append([conv])
        previous = conv
        if k < dpu_subgraphs - 1:
            names = [f"cpu_{k}_{t}" for t in cpu_ops]
            for name, op_type in zip(names, cpu_ops):
                ops.append(_op(name, op_type, [previous], (1, 8, 8, 16)))
                previous = name
            cpu_between.append(names)
    downloads = []
    for name, shape, fix in outputs:
        ops.append(_op(f"{name}_download", "download", [previous], shape, fix))
        ops.append(_op(f"{name}_fix_", "fix2float", [f"{name}_download"], shape))
        downloads.append(f"{name}_download")
    dpu_children[-1] += downloads
    children = [_subgraph("subgraph_input", ["input"], {"device": "USER"})] if dpu_subgraphs else []
    for k, names in enumerate(dpu_children if dpu_subgraphs else []):
        attrs = {"device": "DPU", "dpu_name": dpu_name, "dpu_fingerprint": fingerprint}
        children.append(_subgraph(f"subgraph_dpu_{k}", (), attrs, [_subgraph(f"leaf_{k}_{n}", [n]) for n in names]))
        if k < len(cpu_between):
            children.append(_subgraph(f"subgraph_cpu_{k}", cpu_between[k], {"device": "CPU"}))
    if dpu_subgraphs:
        children += [_subgraph(f"subgraph_{name}_fix_", [f"{name}_fix_"], {"device": "CPU"}) for name, _, _ in outputs]
    graph = _field(1, graph_name) + b"".join(_field(5, op) for op in ops)
    graph += _field(10, _subgraph("root", (), {"workload": 1}, children))
    if compiler:
        graph += _attrs(11, {"libs_info": {f"xcompiler.{compiler} : xir.{compiler}": "0" * 40,
                                           f"xcompiler.{compiler}": "0" * 40}})
    return graph


def write_xmodel(path: Path, *args, **kwargs) -> Path:
    """``xmodel_bytes`` written to ``path``."""
    path.write_bytes(xmodel_bytes(*args, **kwargs))
    return path
