"""model_prep's docker steps run in both Vitis AI dockers: 2.5's conda env (Python 3.7, torch 1.10.1) and 3.5's
(Python 3.8, torch 1.13.1); 3.7 is the stricter of the two, so that is what is checked.

No Python 3.7 can be had from the registries this project reaches, so every module those steps import
(``quantize``, ``compile``, ``inspect`` and what they import from this repository) is checked at the source
level: it parses with Python 3.7's grammar and uses nothing the 3.7 standard library or runtime lacks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from model_prep.yolov5_model import checkpoint_load_options

ROOT = Path(__file__).resolve().parents[1]
DOCKER_STEPS = ("model_prep.quantize", "model_prep.compile", "model_prep.inspect")
NEWER_MODULES = {"importlib.metadata", "importlib.resources.abc", "zoneinfo", "graphlib", "tomllib"}
NEWER_NAMES = {  # module: names added after 3.7
    "typing": {"Protocol", "Literal", "Final", "TypedDict", "runtime_checkable", "Annotated", "TypeAlias",
               "ParamSpec", "Self", "get_origin", "get_args"},
    "functools": {"cached_property", "cache"},
    "math": {"prod", "isqrt", "dist", "comb", "perm", "lcm"},
    "shlex": {"join"},
}
NEWER_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "bit_count"}
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def docker_closure() -> dict[str, Path]:
    """The repository's modules the docker steps import, with their parent packages."""
    seen: dict[str, Path] = {}
    todo = list(DOCKER_STEPS)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                    "model_prep", "yolov5_dpu_ros"):
                todo += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return seen


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (with ``from __future__ import annotations`` never evaluated)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            annotations += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                   args.vararg, args.kwarg) if a is not None]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                inside |= {id(n) for n in ast.walk(annotation)}
    return inside


def problems_for_37(source: str) -> list[str]:
    """What in this source would not run on Python 3.7."""
    try:
        tree = ast.parse(source, feature_version=(3, 7))
    except SyntaxError as e:
        return [f"line {e.lineno}: not Python 3.7 syntax ({e.msg})"]
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    annotations = _annotation_nodes(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            found += [f"line {line}: import {a.name}" for a in node.names if a.name in NEWER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                found.append(f"line {line}: from {node.module}")
            found += [f"line {line}: {node.module}.{a.name}" for a in node.names
                      if a.name in NEWER_NAMES.get(node.module, ())]
        elif isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in NEWER_NAMES.get(base, ()) or node.attr in NEWER_METHODS or (
                    base == "importlib" and node.attr == "metadata"):
                found.append(f"line {line}: .{node.attr}")
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "zip" and any(k.arg == "strict"
                                                                                for k in node.keywords):
                found.append(f"line {line}: zip(strict=)")
            if any(k.arg in ("slots", "kw_only") for k in node.keywords):
                found.append(f"line {line}: dataclass(slots=/kw_only=)")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.BitOr):
            operands = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
            if any(isinstance(o, ast.Dict) for o in operands):
                found.append(f"line {line}: dict | dict")
            if id(node) not in annotations and any(isinstance(o, ast.Constant) and o.value is None
                                                   for o in operands):
                found.append(f"line {line}: X | None outside an annotation")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id in BUILTIN_GENERICS and (id(node) not in annotations or not future):
                found.append(f"line {line}: {node.value.id}[...] evaluated at run time")
    return found


def test_the_docker_steps_import_only_repository_modules_that_run_on_python_37():
    closure = docker_closure()
    assert {"model_prep.quantize", "model_prep.inspect", "yolov5_dpu_ros.dpu.xmodel",
            "yolov5_dpu_ros.core.preprocess"} <= set(closure)
    report = {name: problems_for_37(path.read_text()) for name, path in sorted(closure.items())}
    assert {name: found for name, found in report.items() if found} == {}


@pytest.mark.parametrize("source,expected", [
    ("x = (y := 3)\n", "not Python 3.7 syntax"),
    ("from typing import Protocol\n", "typing.Protocol"),
    ("import importlib.metadata\n", "import importlib.metadata"),
    ("d = {}\nd |= {'a': 1}\n", "dict | dict"),
    ("for a, b in zip([], [], strict=True): pass\n", "zip(strict=)"),
    ("Alias = int | None\n", "outside an annotation"),
    ("from __future__ import annotations\nx: list[int] = []\ny = list[int]\n", "list[...] evaluated"),
    ("'ab'.removeprefix('a')\n", ".removeprefix"),
])
def test_the_check_finds_what_37_lacks(source, expected):
    assert any(expected in p for p in problems_for_37(source))


def test_the_check_accepts_37_code():
    assert problems_for_37("from __future__ import annotations\ndef f(x: list[int] | None) -> dict[str, int]:\n"
                           "    return {}\n") == []


@pytest.mark.parametrize("version,options", [("1.10.1", {}), ("1.10.1+cu102", {}), ("1.12.1", {}),
                                             ("1.13.0", {"weights_only": False}),
                                             ("1.13.1", {"weights_only": False}),  # the Vitis AI 3.5 docker
                                             ("2.13.0+cpu", {"weights_only": False})])
def test_checkpoint_loading_passes_weights_only_only_where_torch_knows_it(version, options):
    assert checkpoint_load_options(version) == options
