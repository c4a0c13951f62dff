"""Metadata files: round trip, and every inconsistency named in the error."""

from __future__ import annotations

import pytest

from yolov5_dpu_ros.model_meta import load_meta, match_heads, meta_from_dict, save_meta

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
    ({"output_fix_points": [3, 3]}, "2 output_fix_points for 3 strides"),
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
    with pytest.raises(ValueError, match="not valid YAML"):
        load_meta(tmp_path / "bad.yaml")


def test_heads_matched_by_shape_in_any_order():
    meta = meta_from_dict(GOOD)
    assert match_heads([(1, 20, 20, 21), (1, 80, 80, 21), (1, 40, 40, 21)], meta) == (2, 0, 1)
    with pytest.raises(ValueError, match="2 outputs"):
        match_heads([(1, 20, 20, 21), (1, 80, 80, 21)], meta)
    with pytest.raises(ValueError, match=r"5 \+ 2 classes"):
        match_heads([(1, 20, 20, 255), (1, 80, 80, 21), (1, 40, 40, 21)], meta)
