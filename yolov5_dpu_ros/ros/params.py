"""Node parameters on rclpy: declared with descriptions and ranges from ``param_spec``; what they mean is
``node_config``'s."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from yolov5_dpu_ros.ros.node_config import FIXED
from yolov5_dpu_ros.ros.param_spec import PARAMETERS

DYNAMIC = ("dpu_fingerprint",)  # a hex string, or the integer rcl's YAML parser reads from an unquoted 0x... value


def _descriptor(name: str) -> ParameterDescriptor:
    spec = PARAMETERS[name]
    descriptor = ParameterDescriptor(description=spec.description + (f" (fixed: {FIXED[name]})" if name in FIXED
                                                                    else ""),
                                     read_only=name in FIXED, dynamic_typing=name in DYNAMIC)
    if spec.range is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                              to_value=float(spec.range[1]))]
    elif spec.range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]),
                                                 step=1)]
    return descriptor


def declare(node: Node) -> dict[str, str]:
    """Declare every parameter; an override of the wrong type or out of range (a params file, --ros-args) is
    not fatal here: the default is declared instead and the error returned by name, for configure to refuse
    with until that parameter is set again."""
    errors = {}
    for name, spec in PARAMETERS.items():
        try:
            node.declare_parameter(name, spec.default, _descriptor(name))
        except (InvalidParameterTypeException, InvalidParameterValueException) as e:
            errors[name] = (f"parameter {name}: {e} (expected {type(spec.default).__name__}"
                            f"{f' in {list(spec.range)}' if spec.range else ''})")
            node.declare_parameter(name, spec.default, _descriptor(name), ignore_override=True)
    return errors


def values(node: Node) -> dict[str, Any]:
    """Every declared parameter's current value by name."""
    return {name: node.get_parameter(name).value for name in PARAMETERS}
