"""The tracker (core.tracking): stamps not frame counts, two-stage association, IDs never reused, resets; with
tracking on the published detections are unchanged; accuracy on generated sequences (bench/mot_sequences.py)."""

from __future__ import annotations

import numpy as np
import pytest
from props import given, settings, st

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.tracking import Tracker, TrackerConfig, iou_matrix


def dets(*boxes, score=0.9, cls=0) -> Detections:
    """Detections of (x1, y1, x2, y2) boxes; ``score`` and ``cls`` per box or for all."""
    n = len(boxes)
    scores = np.broadcast_to(np.asarray(score, np.float32), (n,)).copy()
    classes = np.broadcast_to(np.asarray(cls, np.int32), (n,)).copy()
    return Detections(np.asarray(boxes, np.float32).reshape(n, 4), scores, classes)


def box_at(x: float, y: float = 100.0, size: float = 40.0) -> tuple:
    return (x, y, x + size, y + size)


def test_a_track_is_confirmed_on_its_second_match_and_keeps_its_id():
    tracker = Tracker()
    first = tracker.update(0.0, dets(box_at(100)))
    assert first.ids.tolist() == [-1]  # tentative: no ID published yet
    ids = [tracker.update(i / 30, dets(box_at(100 + 3 * i))).ids[0] for i in range(1, 30)]
    assert ids[0] > 0 and set(ids) == {ids[0]}


def test_prediction_uses_stamps_so_gaps_from_dropped_frames_keep_the_id():
    """An object moving 300 px/s, seen at irregular intervals (frames replaced or lost): the motion model steps by
    the stamp difference, so the predicted box still overlaps after a 0.3 s gap (90 px, more than its size)."""
    tracker = Tracker()
    stamps = [0.0, 1 / 30, 2 / 30, 3 / 30, 4 / 30, 0.433, 0.466, 0.8, 0.833]
    ids = [tracker.update(s, dets(box_at(50 + 300 * s))).ids[0] for s in stamps]
    assert ids[0] == -1 and len(set(ids[1:])) == 1 and ids[1] > 0


def test_the_same_stamps_give_the_same_ids_whatever_frames_arrive_between():
    """IDs depend on stamps, not on how many frames came: every frame, or every other, gives one track."""
    motion = [(i / 30, box_at(20 + 150 * i / 30)) for i in range(60)]
    for step in (1, 2, 3):
        tracker = Tracker()
        ids = [tracker.update(s, dets(b)).ids[0] for s, b in motion[::step]]
        assert len(set(ids[1:])) == 1


def test_low_score_detections_keep_a_track_through_a_dip_but_start_nothing():
    tracker = Tracker()
    for i in range(5):
        tracker.update(i / 30, dets(box_at(100 + 2 * i)))
    (track_id,) = tracker.update(5 / 30, dets(box_at(110))).ids
    for i in range(6, 40):  # 1.1 s of only low-score detections: longer than the lifetime
        tracker.update(i / 30, dets(), low=dets(box_at(100 + 2 * i), score=0.15))
    assert tracker.update(40 / 30, dets(box_at(180))).ids.tolist() == [track_id]
    lonely = Tracker()
    for i in range(10):
        lonely.update(i / 30, dets(), low=dets(box_at(300), score=0.15))
    assert lonely.update(10 / 30, dets(box_at(300))).ids.tolist() == [-1]  # a fresh tentative track


def test_without_low_detections_the_same_dip_loses_the_track():
    tracker = Tracker()
    for i in range(6):
        tracker.update(i / 30, dets(box_at(100 + 2 * i)))
    (track_id,) = tracker.update(6 / 30, dets(box_at(112))).ids
    for i in range(7, 40):
        tracker.update(i / 30, dets())
    assert tracker.update(40 / 30, dets(box_at(180))).ids.tolist() == [-1]  # gone: a new tentative track


def test_crossing_objects_of_two_classes_keep_their_ids():
    tracker = Tracker()
    history = []
    for i in range(60):
        t = i / 30
        a, b = box_at(40 + 120 * t, 100), box_at(280 - 120 * t, 110)
        ids = tracker.update(t, dets(a, b, cls=np.array([0, 1]))).ids
        history.append(ids.tolist())
    assert {h[0] for h in history[1:]} == {history[1][0]} and {h[1] for h in history[1:]} == {history[1][1]}


def test_a_stamp_going_back_or_a_long_gap_starts_afresh_and_ids_are_never_reused():
    tracker = Tracker(TrackerConfig(lifetime_s=1.0))
    for i in range(5):
        tracker.update(10 + i / 30, dets(box_at(100)))
    before = tracker.update(10.2, dets(box_at(100))).ids[0]
    back = tracker.update(3.0, dets(box_at(100)))  # ros2 bag play --loop
    assert back.reset and "back" in back.reset and back.ids.tolist() == [-1]
    after = tracker.update(3.033, dets(box_at(100))).ids[0]
    assert after > before
    gap = tracker.update(9.0, dets(box_at(100)))
    assert gap.reset and "no frame for" in gap.reset
    assert tracker.update(9.033, dets(box_at(100))).ids[0] > after


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.5, 1.5), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)),
                                                        max_size=6)), min_size=1, max_size=40))
def test_ids_are_unique_per_frame_handed_out_in_order_and_gone_after_a_reset(frames):
    """Any stamps (also backwards), any boxes: within a frame no ID twice; a new ID is larger than every ID before
    it (never reused); after the tracker starts afresh, no earlier ID comes back."""
    tracker = Tracker()
    stamp = 0.0
    seen: set[int] = set()
    before_reset: set[int] = set()
    for step, objects in frames:
        stamp += step
        boxes = [box_at(60 * cell, 50 * (cell % 2)) for cell, _ in objects]
        classes = np.array([c for _, c in objects], np.int32)
        update = tracker.update(stamp, dets(*boxes, cls=classes) if boxes else dets())
        if update.reset:
            before_reset |= seen
        confirmed = [int(i) for i in update.ids if i >= 0]
        assert len(confirmed) == len(set(confirmed))
        assert not set(confirmed) & before_reset
        for new in sorted(set(confirmed) - seen):
            assert new > max(seen, default=0)
            seen.add(new)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200)),
                min_size=1, max_size=6),
       st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200)),
                min_size=1, max_size=6))
def test_iou_matrix_matches_the_pairwise_definition(a, b):
    boxes_a = np.array([(x, y, x + w, y + h) for x, y, w, h in a])
    boxes_b = np.array([(x, y, x + w, y + h) for x, y, w, h in b])
    got = iou_matrix(boxes_a, boxes_b)
    for i, p in enumerate(boxes_a):
        for j, q in enumerate(boxes_b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - iw * ih
            assert got[i, j] == pytest.approx(iw * ih / union, abs=1e-9)


# --- with the real detector --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sequence():
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed here")
    from bench.mot_sequences import detect_all, render

    frames = render(seconds=10.0)
    return frames, detect_all(frames)


@pytest.mark.integration
@pytest.mark.needs("onnxruntime")
def test_tracking_leaves_the_published_detections_alone(sequence):
    from yolov5_dpu_ros.backends import OnnxSpec
    from yolov5_dpu_ros.core.postprocess import PostprocessConfig
    from yolov5_dpu_ros.core.workers import build_detectors
    from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

    frames, found = sequence
    (plain,) = build_detectors(OnnxSpec(DEMO_ONNX), DEMO_META, config=PostprocessConfig())
    for frame, (published, low) in list(zip(frames, found))[::10]:
        alone, _ = plain.detect(frame.image)
        np.testing.assert_array_equal(published.xyxy, alone.xyxy)
        np.testing.assert_array_equal(published.score, alone.score)
        np.testing.assert_array_equal(published.class_id, alone.class_id)
        assert (low.score <= 0.25).all() and (low.score > 0.1).all()


@pytest.mark.integration
@pytest.mark.needs("onnxruntime", "motmetrics")
@pytest.mark.parametrize("drop,least_idf1", [(0.0, 0.90), (0.3, 0.85), (0.6, 0.85)])
def test_accuracy_on_the_generated_sequence(sequence, drop, least_idf1):
    """The targets: IDF1 >= 0.90 without drops, >= 0.85 with 30 % dropped (bench/RESULTS_TRACKING.md: 0.91, 0.92,
    0.92 with 60 %)."""
    from bench.mot_sequences import kept_frames, mot_scores, track

    frames, found = sequence
    scores = [mot_scores(*track(frames, found, kept_frames(len(frames), drop, seed), Tracker())) for seed in range(3)]
    assert np.mean([s["idf1"] for s in scores]) >= least_idf1
    assert np.mean([s["mota"] for s in scores]) >= 0.90


@pytest.mark.integration
@pytest.mark.needs("onnxruntime")
def test_the_node_path_with_two_workers_gives_the_ids_of_one(sequence):
    """Frames through the pipeline (2 workers, results in order per camera) and the tracker in on_result, as the
    node does, against one worker."""
    from yolov5_dpu_ros.backends import OnnxSpec
    from yolov5_dpu_ros.core.pipeline import DetectionPipeline
    from yolov5_dpu_ros.core.postprocess import PostprocessConfig
    from yolov5_dpu_ros.core.workers import build_detectors
    from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX

    frames, _ = sequence

    def run(workers: int) -> list[list[int]]:
        detectors = build_detectors(OnnxSpec(DEMO_ONNX), DEMO_META, workers,
                                    PostprocessConfig(low_threshold=0.1))
        tracker, ids = Tracker(), []

        def on_result(result):
            ids.append(tracker.update(result.tag, result.outcome.detections, result.outcome.low).ids.tolist())

        pipeline = DetectionPipeline(detectors, on_result)
        for frame in frames[:120]:
            pipeline.submit(frame.image, tag=frame.stamp, block=True)
        pipeline.wait_idle(60)
        pipeline.close()
        return ids

    assert run(2) == run(1)


def _bounce(tracker: Tracker, classes) -> list[list[int]]:
    """Two boxes of one size on one line meet at equal speed and bounce back: motion predicts that they pass
    through each other, so only the class tells which detection continues which track."""
    history = []
    for i in range(40):
        t = i / 30
        offset = 150 * (t if i <= 20 else 40 / 30 - t)  # they meet at frame 20, 40 px apart, then turn
        a, b = box_at(60 + offset, 100), box_at(260 - offset, 100)
        history.append(tracker.update(t, dets(a, b, cls=np.array(classes))).ids.tolist())
    return history


def test_where_motion_cannot_tell_two_objects_apart_the_class_decides():
    history = _bounce(Tracker(), [0, 1])
    assert {h[0] for h in history[1:]} == {history[1][0]} and {h[1] for h in history[1:]} == {history[1][1]}
    same_class = _bounce(Tracker(), [0, 0])  # the same scene with one class: motion alone swaps the IDs
    assert {h[0] for h in same_class[1:]} != {same_class[1][0]}


def test_a_class_flipped_for_one_frame_keeps_its_id():
    tracker = Tracker()
    ids = [tracker.update(i / 30, dets(box_at(100 + 2 * i), cls=1 if i == 10 else 0)).ids[0] for i in range(20)]
    assert ids[0] == -1 and set(ids[1:]) == {ids[1]} and ids[1] > 0


def test_a_low_score_box_overlapping_the_track_by_iou_0_7_keeps_it_through_a_dip():
    """ByteTrack's second association takes low-score boxes at IoU 0.5: one shifted so that its IoU with the
    track's prediction is about 0.7 (between 0.5 and 0.9) still carries the track."""
    tracker = Tracker()
    for i in range(10):
        tracker.update(i / 30, dets(box_at(100)))
    (track_id,) = tracker.update(10 / 30, dets(box_at(100))).ids
    shifted = box_at(107)  # IoU with box_at(100): 33 * 40 / (2 * 1600 - 33 * 40) = 0.702
    assert 0.69 < iou_matrix(np.array([box_at(100)]), np.array([shifted]))[0, 0] < 0.71
    for i in range(11, 50):  # 1.3 s of only the low-score box: longer than the lifetime
        tracker.update(i / 30, dets(), low=dets(shifted, score=0.15))
    assert tracker.update(50 / 30, dets(shifted)).ids.tolist() == [track_id]


def _textbook_kalman(measurements, stamps):
    """ByteTrack's constant-velocity Kalman filter in textbook matrix form (dense F, Q, H, R), with the noise
    scaled to the seconds between stamps: the state after each frame (None where the frame has no detection)."""
    from yolov5_dpu_ros.core.tracking import POSITION_NOISE, REFERENCE_PERIOD_S, VELOCITY_NOISE

    def scale(w, h):
        return np.array([w, h, w, h], np.float64)

    first = measurements[0]
    x = np.concatenate([first, np.zeros(4)])
    s = scale(first[2], first[3])
    p = np.diag(np.concatenate([2 * POSITION_NOISE * s, 10 * VELOCITY_NOISE * s / REFERENCE_PERIOD_S]) ** 2)
    states = [(x.copy(), p.copy())]
    h_matrix = np.hstack([np.eye(4), np.zeros((4, 4))])
    for z, dt in zip(measurements[1:], np.diff(stamps)):
        f = np.eye(8)
        f[:4, 4:] = dt * np.eye(4)
        x = f @ x
        x[2:4] = np.maximum(x[2:4], 1e-3)
        s = scale(x[2], x[3])
        q = np.diag(np.concatenate([(POSITION_NOISE * s) ** 2, (VELOCITY_NOISE * s / REFERENCE_PERIOD_S) ** 2]))
        p = f @ p @ f.T + q * dt / REFERENCE_PERIOD_S
        if z is not None:
            r = np.diag((POSITION_NOISE * scale(z[2], z[3])) ** 2)
            gain = p @ h_matrix.T @ np.linalg.inv(h_matrix @ p @ h_matrix.T + r)
            x = x + gain @ (z - h_matrix @ x)
            p = p - gain @ h_matrix @ p
        states.append((x.copy(), p.copy()))
    return states


@pytest.mark.parametrize("growth,missed", [((30, 10), [5]), ((-200, -500), [5, 6, 7])])
def test_the_track_filter_is_the_textbook_kalman_filter_with_bytetracks_noise_per_second(growth, missed):
    """One object, not square, moving and growing (or shrinking so fast that its predicted size would go below
    zero while unseen), seen at irregular stamps with frames missed: after every frame the track's state and
    covariance equal the textbook filter's."""
    stamps = np.array([0.0, 0.033, 0.066, 0.1, 0.133, 0.166, 0.2, 0.3])
    rng = np.random.default_rng(4)
    truth = [np.array([100 + 300 * t, 80 - 50 * t, max(40 + growth[0] * t, 2.0), max(90 + growth[1] * t, 2.0)])
             for t in stamps]
    measurements = [b + rng.normal(0, 0.5, 4) for b in truth]
    for i in missed:
        measurements[i] = None
    tracker = Tracker(TrackerConfig(lifetime_s=1.0, match_iou=0.01))
    reference = _textbook_kalman(measurements, stamps)
    for stamp, z, (x, p) in zip(stamps, measurements, reference):
        boxes = np.zeros((0, 4)) if z is None else np.array([[z[0] - z[2] / 2, z[1] - z[3] / 2,
                                                               z[0] + z[2] / 2, z[1] + z[3] / 2]])
        tracker.update(float(stamp), Detections(boxes.astype(np.float32), np.full(len(boxes), 0.9, np.float32),
                                                np.zeros(len(boxes), np.int32)))
        np.testing.assert_allclose(tracker._mean[0], x, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(tracker._cov[0], p, rtol=1e-5, atol=1e-6)


def test_no_two_coordinates_of_a_track_ever_correlate():
    """What the filter's update relies on to divide by S instead of solving with it: after frames of many tracks
    (moving, growing, missed, low-score), every covariance entry that couples two different coordinates (x with y,
    a size with a position, one coordinate with another's rate) is exactly 0."""
    rng = np.random.default_rng(7)
    centres, sizes = rng.uniform(50, 600, (30, 2)), rng.uniform(20, 80, (30, 2))
    tracker = Tracker()
    for frame in range(40):
        centres += rng.normal(3, 2, centres.shape)
        sizes *= rng.uniform(0.97, 1.04, sizes.shape)
        boxes = np.hstack([centres - sizes / 2, centres + sizes / 2])[rng.random(30) > 0.2].astype(np.float32)
        high = rng.random(len(boxes)) > 0.3
        tracker.update(frame / 30, dets(*boxes[high]), dets(*boxes[~high], score=0.2))
    coordinate = np.arange(8) % 4
    crossing = coordinate[:, None] != coordinate[None, :]
    assert len(tracker._cov) >= 30 and (tracker._cov[:, crossing] == 0).all()


def test_centre_size_and_corner_boxes_convert_both_ways_for_boxes_that_are_not_square():
    from yolov5_dpu_ros.core.tracking import _xywh, _xyxy

    xyxy = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 3.0, 1.0]])
    np.testing.assert_allclose(_xywh(xyxy), [[30.0, 60.0, 40.0, 80.0], [1.5, 0.5, 3.0, 1.0]])
    np.testing.assert_allclose(_xyxy(_xywh(xyxy)), xyxy)


def test_iou_matrix_of_empty_sets_and_zero_area_boxes():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    assert iou_matrix(np.zeros((0, 4)), boxes).shape == (0, 2) and iou_matrix(boxes, np.zeros((0, 4))).shape == (2, 0)
    point = np.array([[5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(iou_matrix(point, point), [[0.0]])  # no area, no union: 0, never NaN
    np.testing.assert_array_equal(iou_matrix(boxes, point), [[0.0], [0.0]])


def test_an_iou_exactly_at_the_threshold_is_a_match():
    from yolov5_dpu_ros.core.tracking import _assign

    assert _assign(np.array([[0.5, 0.1], [0.2, 0.49]]), 0.5) == [(0, 0)]


def test_ids_start_at_1_and_an_update_without_a_reset_says_none():
    tracker = Tracker()
    first = tracker.update(0.0, dets(box_at(100)))
    second = tracker.update(0.5, dets(box_at(100)))
    assert first.reset is None and second.reset is None and second.ids.tolist() == [1]
    assert second.ids.dtype == np.int64


def test_the_same_stamp_again_or_a_gap_of_exactly_the_lifetime_keeps_the_tracks():
    tracker = Tracker(TrackerConfig(lifetime_s=0.5))
    tracker.update(1.0, dets(box_at(100)))
    assert tracker.update(1.0, dets(box_at(100))).ids.tolist() == [1]  # two frames with one stamp
    same = tracker.update(1.5, dets(box_at(100)))  # exactly the lifetime later
    assert same.reset is None and same.ids.tolist() == [1]
    assert tracker.update(1.75, dets()).reset is None and tracker.active == 1
    assert tracker.update(2.0, dets()).reset is None and tracker.active == 1  # unmatched for exactly 0.5 s: kept
    assert tracker.update(2.25, dets()).reset is None and tracker.active == 0  # longer: removed


def test_a_reset_says_by_how_much_the_stamp_moved():
    tracker = Tracker(TrackerConfig(lifetime_s=1.0))
    tracker.update(10.0, dets(box_at(100)))
    assert tracker.update(9.5, dets(box_at(100))).reset == "stamp went back 0.500 s"
    assert tracker.update(12.0, dets(box_at(100))).reset == "no frame for 2.500 s (more than the track lifetime)"


def test_a_track_needing_three_matches_is_confirmed_on_the_third():
    tracker = Tracker(TrackerConfig(min_hits=3))
    ids = [tracker.update(i / 30, dets(box_at(100 + i))).ids.tolist() for i in range(4)]
    assert ids == [[-1], [-1], [1], [1]]


def test_a_detection_continuing_a_confirmed_track_is_not_also_taken_by_a_new_one():
    """A second detection beside a confirmed object starts a tentative track; when only the object is seen next,
    it continues its own track, and the tentative one (which overlaps it) takes nothing."""
    tracker = Tracker()
    tracker.update(0.0, dets(box_at(100)))
    tracker.update(1 / 30, dets(box_at(100)))
    tracker.update(2 / 30, dets(box_at(100), box_at(105)))  # a near duplicate starts a tentative track
    assert tracker.update(3 / 30, dets(box_at(101))).ids.tolist() == [1]


def test_a_low_score_box_never_corrects_a_track_that_a_high_one_continued():
    """The low-score association is for tracks the high detections left unmatched: a low box beside a track that
    matched a high one changes nothing (the track's state equals the one without the low box)."""
    with_low, without = Tracker(), Tracker()
    for i in range(3):
        boxes = dets(box_at(100 + 2 * i))
        without.update(i / 30, boxes)
        with_low.update(i / 30, boxes, dets(box_at(110 + 2 * i), score=0.2))
    np.testing.assert_array_equal(with_low._mean, without._mean)
    np.testing.assert_array_equal(with_low._cov, without._cov)


def test_a_barely_overlapping_box_of_another_class_starts_its_own_track():
    """Across classes a pair counts half its IoU, not a fixed share: a box of another class overlapping a track
    by IoU 0.1 (0.05 counted) is not its continuation."""
    tracker = Tracker(TrackerConfig(match_iou=0.2))
    tracker.update(0.0, dets(box_at(100), cls=0))
    tracker.update(1 / 30, dets(box_at(100), cls=0))
    far = (100 + 40 - 7.27, 100, 100 + 80 - 7.27, 140)  # IoU with the track about 0.1
    out = tracker.update(2 / 30, dets(far, cls=1))
    assert out.ids.tolist() == [-1]


@pytest.mark.parametrize("kwargs,message", [
    ({"lifetime_s": 0.0}, "track_lifetime"), ({"lifetime_s": 3601.0}, "track_lifetime"),
    ({"lifetime_s": "1"}, "track_lifetime"), ({"match_iou": 0.0}, "track_match_iou"),
    ({"match_iou": 1.0}, "track_match_iou"), ({"match_iou": None}, "track_match_iou"),
    ({"min_hits": 0}, "track_min_hits"), ({"min_hits": 1.5}, "track_min_hits"),
])
def test_tracker_settings_are_checked_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)


def test_tracker_settings_at_their_bounds_are_accepted_as_numbers_of_their_type():
    config = TrackerConfig(lifetime_s=3600, match_iou=np.float32(0.5), min_hits=np.int64(1))
    assert (config.lifetime_s, config.match_iou, config.min_hits) == (3600.0, 0.5, 1)
    assert [type(config.lifetime_s), type(config.match_iou), type(config.min_hits)] == [float, float, int]
    assert TrackerConfig(match_iou=0.01).match_iou == 0.01 and TrackerConfig(lifetime_s=1e-3).lifetime_s == 1e-3


def test_a_low_score_box_goes_to_the_track_left_unmatched_not_to_one_a_high_box_continued():
    """Two overlapping confirmed tracks; next frame a high box continues the first and a low box sits between them,
    nearer the first: the low box keeps the second alive (the first already has its match)."""
    tracker = Tracker()
    for i in range(2):
        tracker.update(i / 30, dets(box_at(100), box_at(110)))
    tracker.update(2 / 30, dets(box_at(100)), dets(box_at(103), score=0.2))
    second = int(np.flatnonzero(tracker._id == 2)[0])
    assert tracker._seen[second] == pytest.approx(2 / 30)
