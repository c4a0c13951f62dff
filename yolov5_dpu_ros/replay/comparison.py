"""Two runs' detections compared: one bag against another frame by frame (frames paired by header stamp and
frame_id), and two fleet runs bag by bag (bags paired by their relative path), per class."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolov5_dpu_ros.core.detections import Detections
from yolov5_dpu_ros.core.metrics import greedy_match
from yolov5_dpu_ros.replay.bag_io import BagError, DetectionRun, read_detections
from yolov5_dpu_ros.replay.ledger import SUMMARY


@dataclass
class Agreement:
    """Detections of A (the reference) and B, and those of B that agree with one of A (same class, IoU at least the
    threshold), in total and per class label; frames on one side only; B's score minus A's for agreeing pairs."""

    tp: Counter[str] = field(default_factory=Counter)
    n_a: Counter[str] = field(default_factory=Counter)
    n_b: Counter[str] = field(default_factory=Counter)
    frames_a: int = 0
    frames_b: int = 0
    missing_in_b: int = 0
    missing_in_a: int = 0
    score_deltas: list[float] = field(default_factory=list)

    def add(self, other: Agreement) -> None:
        for mine, theirs in ((self.tp, other.tp), (self.n_a, other.n_a), (self.n_b, other.n_b)):
            mine.update(theirs)
        self.frames_a += other.frames_a
        self.frames_b += other.frames_b
        self.missing_in_b += other.missing_in_b
        self.missing_in_a += other.missing_in_a
        self.score_deltas += other.score_deltas

    def precision(self, label: str | None = None) -> float:
        """Share of B's detections that agree with A (1 when B has none)."""
        tp, n = (sum(self.tp.values()), sum(self.n_b.values())) if label is None else (self.tp[label],
                                                                                     self.n_b[label])
        return tp / n if n else 1.0

    def recall(self, label: str | None = None) -> float:
        """Share of A's detections that B found (1 when A has none)."""
        tp, n = (sum(self.tp.values()), sum(self.n_a.values())) if label is None else (self.tp[label],
                                                                                     self.n_a[label])
        return tp / n if n else 1.0

    def change(self) -> float:
        """How far B is from A: 1 − F1 of B's detections against A's, or the share of frames only one side holds
        where that is larger."""
        p, r = self.precision(), self.recall()
        unpaired = self.missing_in_a + self.missing_in_b
        paired = self.frames_a - self.missing_in_b
        return max(1.0 - (2 * p * r / (p + r) if p + r else 0.0), unpaired / max(paired + unpaired, 1))


def compare_runs_of_frames(a: DetectionRun, b: DetectionRun, iou: float) -> Agreement:
    """B against A, frame by frame."""
    common = sorted(set(a.frames) & set(b.frames))
    result = Agreement(frames_a=len(a.frames), frames_b=len(b.frames), missing_in_b=len(set(a.frames) - set(b.frames)),
                       missing_in_a=len(set(b.frames) - set(a.frames)))
    for key in common:
        (a_boxes, a_labels, a_scores), (b_boxes, b_labels, b_scores) = a.frames[key], b.frames[key]
        ids = {label: i for i, label in enumerate(sorted({*a_labels, *b_labels}))}
        ref = Detections(a_boxes, a_scores, np.array([ids[x] for x in a_labels], np.int32))
        run = Detections(b_boxes, b_scores, np.array([ids[x] for x in b_labels], np.int32))
        matched = greedy_match(run, ref.xyxy, ref.class_id, iou)
        result.n_a.update(a_labels)
        result.n_b.update(b_labels)
        result.tp.update(label for label, m in zip(b_labels, matched) if m >= 0)
        result.score_deltas += (run.score[matched >= 0] - ref.score[matched[matched >= 0]]).tolist()
    return result


@dataclass
class FleetComparison:
    """Two fleet runs: each bag both hold (by relative path), the total, and the bags one side lacks."""

    bags: dict[str, Agreement]
    total: Agreement
    only_a: list[str]
    only_b: list[str]

    def most_changed(self) -> list[tuple[str, Agreement]]:
        return sorted(self.bags.items(), key=lambda kv: (-kv[1].change(), kv[0]))


def is_fleet_run(path: Path) -> bool:
    """A fleet run is a folder with the replay's summary.jsonl."""
    return (path / SUMMARY).is_file()


def fleet_outputs(run: Path) -> dict[str, Path]:
    """The complete outputs of a fleet run by relative path (the latest ok line of each bag)."""
    outputs: dict[str, Path] = {}
    for line in (run / SUMMARY).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("status") == "ok":
            outputs[record["rel"]] = run / record["rel"]
        else:
            outputs.pop(record.get("rel"), None)
    return outputs


def compare_fleets(run_a: Path, run_b: Path, iou: float, topic: str | None = None) -> FleetComparison:
    """Every bag both runs completed, B against A; BagError names a bag that cannot be read."""
    outs_a, outs_b = fleet_outputs(run_a), fleet_outputs(run_b)
    if not outs_a or not outs_b:
        empty = run_a if not outs_a else run_b
        raise BagError(f"{empty}: its summary.jsonl names no complete bag")
    bags: dict[str, Agreement] = {}
    total = Agreement()
    for rel in sorted(set(outs_a) & set(outs_b)):
        bags[rel] = compare_runs_of_frames(read_detections(outs_a[rel], topic), read_detections(outs_b[rel], topic),
                                           iou)
        total.add(bags[rel])
    return FleetComparison(bags, total, sorted(set(outs_a) - set(outs_b)), sorted(set(outs_b) - set(outs_a)))
