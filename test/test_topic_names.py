"""Topic names are checked against rcl's rules before the node subscribes (``ros.topic_names``)."""

from __future__ import annotations

import pytest
from props import given, st

from yolov5_dpu_ros.ros.topic_names import topic_name_problem

TOKEN = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(st.lists(TOKEN, min_size=1, max_size=4), st.sampled_from(["", "/", "~/"]))
def test_names_made_of_valid_tokens_are_accepted(tokens, prefix):
    assert topic_name_problem(prefix + "/".join(tokens)) is None


@pytest.mark.parametrize("name,rule", [
    ("", "must not be empty"), ("cam 1/image_raw", "only letters"), ("0123", "must not start with a digit"),
    ("image_raw/", "must not end with '/'"), ("a//b", "'//'"), ("a/~b", "'~' may only start"),
    ("~b", "'~' may only start"), ("front/1cam", "between '/' must not start with a digit"),
    ("{ns/image", "pair up"), ("a/b-c", "only letters"),
])
def test_each_broken_rule_is_named(name, rule):
    assert rule in topic_name_problem(name)


@pytest.mark.parametrize("name", ["image_raw", "/camera/image_raw", "front/image_raw/compressed", "~/image",
                                  "{node}/image"])
def test_usual_names_pass(name):
    assert topic_name_problem(name) is None
