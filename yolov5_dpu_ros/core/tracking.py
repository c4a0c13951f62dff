"""Objects over time: a ByteTrack-style multi-object tracker, one per camera, driven by the frames' stamps.

Algorithm (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box", ECCV 2022),
written for this package on numpy and ``scipy.optimize.linear_sum_assignment``:

1. every track's box (centre, size and their rates) is predicted to the frame's stamp by a constant-velocity
   Kalman filter whose step is the stamp difference in seconds, never a frame count: frames the node replaces
   or the middleware loses only lengthen the step;
2. detections at or above the confidence threshold are matched to the confirmed and the lost tracks by IoU,
   solved as a linear assignment;
3. the low-score detections (``track_low_threshold`` up to the confidence threshold, from the same
   post-processing pass) are matched to the confirmed tracks still unmatched: they keep tracks alive through
   occlusion and score dips, but never start a track and are never published;
   matching is class-aware: across classes a pair counts half its IoU, so where two objects cross class decides,
   while a class the detector flips for a frame does not break the track;
4. new (tentative) tracks are matched to what high detections remain; unmatched high detections start
   tentative tracks; a track is confirmed after ``min_hits`` matches and only then has an ID on the output;
5. a track unmatched for longer than ``lifetime_s`` is removed; a stamp that goes backwards (a looping bag, a
   restarted camera) or a gap longer than the lifetime starts afresh, without reusing an ID.

No appearance model: an object that leaves for longer than the lifetime comes back with a new ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolov5_dpu_ros.core import validate
from yolov5_dpu_ros.core.detections import Detections

REFERENCE_PERIOD_S = 1 / 30  # ByteTrack's noise weights are per frame of a 30 Hz video
POSITION_NOISE = 1 / 20  # ByteTrack's std weights, relative to the box size
VELOCITY_NOISE = 1 / 160
LOW_MATCH_IOU = 0.5  # ByteTrack's second association
OTHER_CLASS_WEIGHT = 0.5  # a detection of another class counts half its IoU: same-class pairs win when both fit


@dataclass(frozen=True)
class TrackerConfig:
    """The tracker's knobs; validated so that a bad value is refused before it reaches a frame."""

    lifetime_s: float = 1.0  # a track unmatched for longer is removed
    match_iou: float = 0.2  # least IoU for a high-score detection to continue a track
    min_hits: int = 2  # matches before a track is confirmed and its ID published

    def __post_init__(self) -> None:
        object.__setattr__(self, "lifetime_s", validate.real(self.lifetime_s, "track_lifetime", 0.0, 3600.0,
                                                               open_low=True))
        object.__setattr__(self, "match_iou", validate.real(self.match_iou, "track_match_iou", 0.0, 1.0,
                                                              open_low=True, open_high=True))
        object.__setattr__(self, "min_hits", validate.integer(self.min_hits, "track_min_hits", 1))


@dataclass(frozen=True)
class TrackUpdate:
    """The IDs of one frame's published detections (-1: not confirmed yet) and, when the tracker started
    afresh on this frame, why."""

    ids: np.ndarray
    reset: str | None = None


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = (a[:, i:i + 1] for i in range(4))
    bx1, by1, bx2, by2 = (b[:, i] for i in range(4))
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)


def _noise_scale(size: np.ndarray) -> np.ndarray:
    """Per state component, the box dimension its noise is relative to: w for x and width, h for y and height."""
    w, h = size[:, 0:1], size[:, 1:2]
    return np.concatenate([w, h, w, h], axis=1)


def _assign(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) of the IoU-maximising assignment with IoU at or above ``threshold``."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if iou[r, c] >= threshold]


class Tracker:
    """Tracks of one camera. ``update`` takes each frame once, in stamp order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._next_id = 1
        self._last_stamp: float | None = None
        self._clear()

    def _clear(self) -> None:
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._cls = np.zeros(0, np.int64)
        self._id = np.zeros(0, np.int64)  # assigned at confirmation; -1 before
        self._hits = np.zeros(0, np.int64)
        self._seen = np.zeros(0)  # stamp of the last match
        self._confirmed = np.zeros(0, bool)

    @property
    def active(self) -> int:
        """Confirmed tracks matched within the lifetime (the diagnostics' 'active tracks')."""
        return int(self._confirmed.sum())

    def reset(self) -> None:
        """Forget every track (IDs keep counting up: none is ever reused)."""
        self._clear()
        self._last_stamp = None

    def update(self, stamp_s: float, detections: Detections, low: Detections | None = None) -> TrackUpdate:
        """Advance to ``stamp_s`` (seconds, the frame's header stamp) with the frame's published ``detections``
        and its ``low``-score ones; returns the IDs of ``detections``, in their order."""
        reset = None
        if self._last_stamp is not None and (stamp_s < self._last_stamp
                                             or stamp_s - self._last_stamp > self.config.lifetime_s):
            reset = (f"stamp went back {self._last_stamp - stamp_s:.3f} s" if stamp_s < self._last_stamp else
                     f"no frame for {stamp_s - self._last_stamp:.3f} s (more than the track lifetime)")
            self._clear()
        dt = 0.0 if self._last_stamp is None or reset else stamp_s - self._last_stamp
        self._last_stamp = stamp_s
        self._predict(dt)
        high_box, high_cls = np.asarray(detections.xyxy, np.float64), np.asarray(detections.class_id, np.int64)
        out = np.full(len(high_box), -1, np.int64)
        det_of_track = np.full(len(self._id), -1, np.int64)  # which high detection each track took

        # 1. high detections with confirmed and lost tracks
        established = np.flatnonzero(self._confirmed)
        pairs = _assign(self._class_iou(established, high_box, high_cls), self.config.match_iou)
        matched_det = {d for _, d in pairs}
        for t, d in pairs:
            det_of_track[established[t]] = d
        corrected: list[int] = []
        boxes: list[np.ndarray] = []
        classes: list[int] = []
        # 2. low detections with the established tracks still unmatched
        if low is not None and len(low):
            waiting = established[det_of_track[established] < 0]
            low_box, low_cls = np.asarray(low.xyxy, np.float64), np.asarray(low.class_id, np.int64)
            for t, d in _assign(self._class_iou(waiting, low_box, low_cls), LOW_MATCH_IOU):
                corrected.append(int(waiting[t]))
                boxes.append(low_box[d])
                classes.append(int(low_cls[d]))
        # 3. tentative tracks with the high detections left
        tentative = np.flatnonzero(~self._confirmed)
        taken = np.zeros(len(high_box), bool)
        taken[list(matched_det)] = True
        left = np.flatnonzero(~taken)
        for t, d in _assign(self._class_iou(tentative, high_box[left], high_cls[left]), self.config.match_iou):
            det_of_track[tentative[t]] = left[d]
            matched_det.add(int(left[d]))
        with_high = np.flatnonzero(det_of_track >= 0)
        corrected += with_high.tolist()
        boxes += list(high_box[det_of_track[with_high]])
        classes += high_cls[det_of_track[with_high]].tolist()
        if corrected:
            self._correct(np.array(corrected), np.array(boxes), np.array(classes), stamp_s)
        self._promote(with_high)
        out[det_of_track[with_high]] = self._id[with_high]
        # 4. tentative tracks that missed their second frame go; so do tracks past their lifetime
        missed = ~self._confirmed & (self._seen < stamp_s)
        expired = stamp_s - self._seen > self.config.lifetime_s
        self._keep(~(missed | expired))
        # 5. unmatched high detections start tentative tracks
        new = [d for d in range(len(high_box)) if d not in matched_det]
        if new:
            self._start(high_box[new], high_cls[new], stamp_s)
            started = np.arange(len(self._id) - len(new), len(self._id))
            self._promote(started)
            out[new] = self._id[started]
        return TrackUpdate(out, reset)

    # --- the filter --------------------------------------------------------------------------------
    def _predict(self, dt: float) -> None:
        if not len(self._mean) or dt <= 0:
            return
        self._mean[:, :4] += dt * self._mean[:, 4:]
        self._mean[:, 2:4] = np.maximum(self._mean[:, 2:4], 1e-3)
        cov = self._cov  # F P F^T for F = [[I, dt I], [0, I]], by blocks
        cross = cov[:, :4, 4:] + dt * cov[:, 4:, 4:]
        cov[:, :4, :4] += dt * (cov[:, 4:, :4] + cross)
        cov[:, :4, 4:] = cross
        cov[:, 4:, :4] = cross.transpose(0, 2, 1)
        scale = _noise_scale(self._mean[:, 2:4])
        steps = dt / REFERENCE_PERIOD_S  # ByteTrack's per-frame noise, for as many 30 Hz frames as passed
        q = np.concatenate([(POSITION_NOISE * scale) ** 2, (VELOCITY_NOISE * scale / REFERENCE_PERIOD_S) ** 2],
                           axis=1) * steps
        cov[:, np.arange(8), np.arange(8)] += q

    def _correct(self, tracks: np.ndarray, boxes: np.ndarray, classes: np.ndarray, stamp_s: float) -> None:
        """The Kalman update of ``tracks`` with their matched xyxy ``boxes``; each track takes the class of its
        latest match. The innovation covariance S = H P H^T + R is diagonal: P starts diagonal, the noise is
        diagonal and F couples each coordinate only with its own rate, so no two measured coordinates ever
        correlate; S^-1 is a division (a batched solve of 4x4 systems cost 2.8 M aarch64 instructions for 200
        tracks)."""
        measured = _xywh(boxes)
        r = (POSITION_NOISE * _noise_scale(measured[:, 2:4])) ** 2
        cov = self._cov[tracks]
        projected = cov[:, :4, :]  # H P: the measured rows
        s = projected[:, np.arange(4), np.arange(4)] + r  # S's diagonal, all there is of it
        gain = projected.transpose(0, 2, 1) / s[:, None, :]  # (P H^T) S^-1
        innovation = measured - self._mean[tracks, :4]
        self._mean[tracks] += np.einsum("nij,nj->ni", gain, innovation)
        self._cov[tracks] = cov - gain @ projected
        self._cls[tracks] = classes
        self._hits[tracks] += 1
        self._seen[tracks] = stamp_s

    def _start(self, boxes: np.ndarray, classes: np.ndarray, stamp_s: float) -> None:
        xywh = _xywh(boxes)
        scale = _noise_scale(xywh[:, 2:4])
        std = np.concatenate([2 * POSITION_NOISE * scale, 10 * VELOCITY_NOISE * scale / REFERENCE_PERIOD_S], axis=1)
        cov = np.zeros((len(boxes), 8, 8))
        cov[:, np.arange(8), np.arange(8)] = std ** 2
        self._mean = np.vstack([self._mean, np.hstack([xywh, np.zeros_like(xywh)])])
        self._cov = np.concatenate([self._cov, cov])
        self._cls = np.concatenate([self._cls, classes])
        self._id = np.concatenate([self._id, np.full(len(boxes), -1, np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(len(boxes), np.int64)])
        self._seen = np.concatenate([self._seen, np.full(len(boxes), stamp_s)])
        self._confirmed = np.concatenate([self._confirmed, np.zeros(len(boxes), bool)])

    def _promote(self, tracks: np.ndarray) -> None:
        """Confirm those of ``tracks`` with enough matches; each gets the next ID."""
        ready = tracks[~self._confirmed[tracks] & (self._hits[tracks] >= self.config.min_hits)]
        self._confirmed[ready] = True
        self._id[ready] = np.arange(self._next_id, self._next_id + len(ready))
        self._next_id += len(ready)

    def _keep(self, keep: np.ndarray) -> None:
        self._mean, self._cov, self._cls = self._mean[keep], self._cov[keep], self._cls[keep]
        self._id, self._hits, self._seen = self._id[keep], self._hits[keep], self._seen[keep]
        self._confirmed = self._confirmed[keep]

    def _class_iou(self, tracks: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """IoU of the predicted boxes of ``tracks`` with ``boxes``, halved across classes: a detector that flips an
        object's class for a frame does not break its track, but where two objects cross, class decides."""
        if not len(tracks) or not len(boxes):
            return np.zeros((len(tracks), len(boxes)))
        iou = iou_matrix(_xyxy(self._mean[tracks, :4]), boxes)
        iou[self._cls[tracks][:, None] != classes[None, :]] *= OTHER_CLASS_WEIGHT
        return iou
