"""The run folder's record of what is complete: ``summary.jsonl``, one JSON line per bag, and the keys that say
whether an output was made from the same input, model and options (so a rerun skips it)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

SUMMARY = "summary.jsonl"
SAMPLE = 1 << 20  # bytes read from each end of each bag file for its fingerprint


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def input_fingerprint(path: Path) -> tuple[int, str]:
    """(size in bytes, fingerprint) of a bag: its files' names, sizes and first and last MiB, hashed. Cheap on a
    fleet's terabytes, and changed by any re-recording, truncation or rewrite of a bag."""
    digest = hashlib.sha256()
    size = 0
    for f in _files(path):
        n = f.stat().st_size
        size += n
        digest.update(f"{f.relative_to(path) if f != path else f.name}\0{n}\0".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(SAMPLE))
            if n > 2 * SAMPLE:
                fh.seek(-SAMPLE, os.SEEK_END)
                digest.update(fh.read(SAMPLE))
    return size, digest.hexdigest()[:16]


def file_digest(*paths: Path) -> str:
    """Content hash of whole files (a model and its metadata): the model's fingerprint."""
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def options_key(options: dict[str, Any]) -> str:
    """A stable hash of the options that change an output."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunKey:
    """What an output depends on besides its input: the model, the options and the package version."""

    model: str
    options: str
    version: str


def _same_run(record: dict | None, fingerprint: str, key: RunKey) -> bool:
    return (record is not None and record.get("fingerprint") == fingerprint and record.get("model") == key.model
            and record.get("options") == key.options and record.get("version") == key.version)


def is_complete(record: dict | None, fingerprint: str, key: RunKey, output: Path) -> bool:
    """A bag is done when its last line says ok for this very input, model, options and version, and its
    output is in place."""
    return _same_run(record, fingerprint, key) and record.get("status") == "ok" and output.is_dir()  # type: ignore


def failed_on_its_input(record: dict | None, fingerprint: str, key: RunKey) -> bool:
    """The bag itself failed (unreadable, no frame) for this very input and options: running it again gives the
    same line. A bag whose worker died is tried again."""
    return _same_run(record, fingerprint, key) and record.get("failure") == "input"  # type: ignore


class Ledger:
    """``summary.jsonl`` of a run folder: appended a line as each bag ends (so a crash keeps what is complete),
    rewritten with one line per bag, the latest, when the run ends."""

    def __init__(self, root: Path) -> None:
        self.path = root / SUMMARY

    def load(self) -> dict[str, dict]:
        """The latest line of each bag (by relative path); a line a crash cut short is ignored."""
        records: dict[str, dict] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "rel" in record:
                records[record["rel"]] = record
        return records

    def append(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def compact(self, order: Iterable[str]) -> None:
        """One line per bag, in ``order`` first (this run's bags), then any others the file held; written whole."""
        records = self.load()
        rels = list(dict.fromkeys([*(r for r in order if r in records), *records]))
        tmp = self.path.with_name(f".{SUMMARY}.{os.getpid()}")
        tmp.write_text("".join(json.dumps(records[r], sort_keys=True) + "\n" for r in rels))
        os.replace(tmp, self.path)
