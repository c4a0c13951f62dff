"""Metadata files: round trip, and every inconsistency named in the error."""

from __future__ import annotations

import pytest
from props import given, settings, st

from yolov5_dpu_ros.core.model_meta import load_meta, match_heads, meta_from_dict, save_meta

GOOD = {"input_size": [640, 640], "strides": [8, 16, 32],
        "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
        "names": ["a", "b"], "input_fix_point": 6, "output_fix_points": [3, 3, 4]}


def test_round_trip(tmp_path):
    meta = meta_from_dict(GOOD)
    save_meta(meta, tmp_path / "m.yaml")
    assert load_meta(tmp_path / "m.yaml") == meta
    assert meta.head_shapes == ((1, 80, 80, 21), (1, 40, 40, 21), (1, 20, 20, 21))
    assert meta.anchors_px[2][2] == (373.0, 326.0)


def test_names_as_mapping_and_nested_anchors():
    meta = meta_from_dict({**GOOD, "names": {0: "x", 1: "y"}, "anchors": [[[10, 13], [16, 30]]] * 3})
    assert meta.names == ("x", "y") and meta.num_anchors == 2


@pytest.mark.parametrize("change,message", [
    ({"anchors": GOOD["anchors"][:2]}, "2 anchor rows for 3 strides"),
    ({"nc": 3}, "'nc' is 3 but 'names' lists 2"),
    ({"input_size": [640, 630]}, "divisible"),
    ({"input_size": [640]}, "input_size"),
    ({"strides": [8, 8, 32]}, "distinct"),
    ({"output_fix_points": [3, 3]}, "2 output_fix_points for 3 output heads: give one per head .one per stride."),
    ({"input_fix_point": 40}, "input_fix_point"),
    ({"names": []}, "names"),
    ({"anchors": [[10, 13, 16], [1, 2], [3, 4]]}, "anchors row 0"),
    ({"anchors": [[10, 13, 16, 30], [1, 2], [3, 4]]}, "same number of anchors"),
])
def test_inconsistencies_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        meta_from_dict({**GOOD, **change})


def test_several_problems_in_one_error():
    with pytest.raises(ValueError) as e:
        meta_from_dict({**GOOD, "nc": 5, "output_fix_points": [1]})
    assert "'nc' is 5" in str(e.value) and "1 output_fix_points" in str(e.value)


def test_missing_keys_and_files(tmp_path):
    with pytest.raises(ValueError, match="missing keys"):
        meta_from_dict({"strides": [8]})
    with pytest.raises(ValueError, match="not found"):
        load_meta(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(ValueError, match=r"not a metadata YAML file \(ParserError"):
        load_meta(tmp_path / "bad.yaml")


def test_heads_matched_by_shape_in_any_order():
    meta = meta_from_dict(GOOD)
    assert match_heads([(1, 20, 20, 21), (1, 80, 80, 21), (1, 40, 40, 21)], meta) == (2, 0, 1)
    with pytest.raises(ValueError, match="2 outputs"):
        match_heads([(1, 20, 20, 21), (1, 80, 80, 21)], meta)
    with pytest.raises(ValueError, match=r"3 anchors x \(4 box \+ 1 objectness \+ 2 classes\)"):
        match_heads([(1, 20, 20, 255), (1, 80, 80, 21), (1, 40, 40, 21)], meta)


@pytest.mark.parametrize("change,message", [
    ({"anchors": [[10, float("inf"), 16, 30, 33, 23]] + GOOD["anchors"][1:]}, "anchors row 0 .*finite"),
    ({"anchors": [[10, True, 16, 30, 33, 23]] + GOOD["anchors"][1:]}, "anchors row 0"),
    ({"names": {0: "a", "1": "b"}}, "integer keys"),
    ({"names": {0: "a", 2: "b"}}, "without gaps"),
    ({"names": ["a", None]}, "class names"),
    ({"names": "abc"}, "names"),
    ({"input_size": [10**9, 640]}, "each 1..8192"),
    ({"input_size": [640.0, 640]}, "input_size"),
    ({"strides": [8, 16, 32.5]}, "strides"),
    ({"input_fix_point": 6.5}, "input_fix_point"),
    ({"output_fix_points": [3, float("nan"), 4]}, "output_fix_points"),
    ({"activation": "silu"}, "activation"),
])
def test_malformed_values_are_named(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        meta_from_dict({**GOOD, **change})


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary\x80", bytes(range(256)) * 4, b"input_size: [640, 640\n",
                                     b"- just\n- a list\n", b"", b"\xef\xbb\xbfnames: \xe9t\xe9\n"])
def test_files_that_are_not_metadata(tmp_path, content):
    path = tmp_path / "meta.yaml"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="meta.yaml: ") as e:
        load_meta(path)
    assert type(e.value) is ValueError


def test_save_is_whole_or_nothing(tmp_path):
    path = tmp_path / "m.yaml"
    save_meta(meta_from_dict(GOOD), path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.yaml"]


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.integers(-2, 5) | st.text(max_size=3),
                                                                      children, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD) + ["nc", "activation"]), _VALUES, max_size=4))
def test_any_values_give_metadata_or_one_named_error(changes):
    """Property: whatever a YAML file holds in any field, the loader returns metadata or raises one
    ValueError naming the source; never a TypeError or any other exception."""
    try:
        meta = meta_from_dict({**GOOD, **changes}, "m.yaml")
    except ValueError as e:
        assert str(e).startswith("m.yaml: ")
        return
    assert meta.channels_per_head == meta.num_anchors * (5 + meta.num_classes)
    assert meta_from_dict(meta.to_dict()) == meta


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_any_file_bytes_give_metadata_or_one_named_error(tmp_path_factory, data):
    """Property: any file content loads or raises one ValueError naming the file."""
    path = tmp_path_factory.mktemp("m") / "any.yaml"
    path.write_bytes(data)
    try:
        load_meta(path)
    except ValueError as e:
        assert "any.yaml" in str(e)
