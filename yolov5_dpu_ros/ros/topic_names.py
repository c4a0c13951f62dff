"""ROS 2 topic name rules (rcl's ``rcl_validate_topic_name``), checked without rclpy so a bad name is refused at
configure with the rule it breaks, instead of failing activation without a word."""

from __future__ import annotations

import re

ALLOWED = re.compile(r"[A-Za-z0-9_/~{}]*")


def topic_name_problem(name: str) -> str | None:
    """The rule ``name`` breaks, or None when it is a valid (relative, absolute or ~) topic name."""
    if not name:
        return "a topic name must not be empty"
    if not ALLOWED.fullmatch(name):
        bad = sorted({c for c in name if not ALLOWED.fullmatch(c)})
        return f"a topic name may hold only letters, digits, '_', '/', '~' and '{{}}', not {bad}"
    if name[0].isdigit():
        return "a topic name must not start with a digit"
    if name.endswith("/"):
        return "a topic name must not end with '/'"
    if "//" in name:
        return "a topic name must not contain '//'"
    if "~" in name[1:] or (name.startswith("~") and len(name) > 1 and name[1] != "/"):
        return "'~' may only start a topic name, followed by '/'"
    if any(token[:1].isdigit() for token in name.split("/")):
        return "each part of a topic name between '/' must not start with a digit"
    depth = 0
    for c in name:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth not in (0, 1):
            return "'{' and '}' must pair up, one substitution at a time"
    if depth:
        return "'{' and '}' must pair up, one substitution at a time"
    return None
