"""``yolov5-dpu replay``: many camera bags → one detections bag each, on a Ray cluster, resumable."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from yolov5_dpu_ros.backends import OnnxSpec
from yolov5_dpu_ros.cli.common import (
    CliError,
    add_bag_arguments,
    add_model_arguments,
    add_tracking_arguments,
    backend_spec,
    bag_options,
    check_output_folder,
    package_version,
    postprocess_config,
)
from yolov5_dpu_ros.cli.progress import Progress
from yolov5_dpu_ros.core.model_meta import load_meta
from yolov5_dpu_ros.replay.bag_io import BagError, BagReader
from yolov5_dpu_ros.replay.bag_set import find_bags
from yolov5_dpu_ros.replay.fleet import RaySettings, import_ray, run_here, run_on_ray
from yolov5_dpu_ros.replay.job import BagJob, ModelSpec
from yolov5_dpu_ros.replay.ledger import (
    Ledger,
    RunKey,
    failed_on_its_input,
    file_digest,
    input_fingerprint,
    is_complete,
    options_key,
)

TABLE_ROWS = 40  # bags listed in the closing table; every bag is in summary.jsonl


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "replay", help="run the detector over many bags on a Ray cluster: one output bag each, resumable",
        description="Replay bags (rosbag2 folders, ROS 1 .bag files), folders holding bags, patterns and list files "
                    "through the detector: one detections bag per input under --out at the input's relative path "
                    "(each the same as `yolov5-dpu bag` writes for it) and summary.jsonl, one line per bag. More than "
                    "one bag runs on Ray (pip install 'yolov5_dpu_ros[fleet]'): a local cluster in this process, or "
                    "--address for an existing one whose nodes all see the bag and output paths. A rerun skips bags "
                    "whose output is complete for the same input, model and options.")
    p.add_argument("bags", nargs="*", help="bags, folders holding bags, or quoted patterns ('site/**/*.bag')")
    p.add_argument("--list", type=Path, help="file naming bags, folders or patterns, one a line (relative to the "
                                             "file's folder; # comments)")
    p.add_argument("--out", type=Path, required=True, help="run folder: the output bags and summary.jsonl")
    p.add_argument("--force", action="store_true", help="redo bags whose output is already complete")
    p.add_argument("--no-progress", action="store_true")
    r = p.add_argument_group("Ray")
    r.add_argument("--address", help="existing Ray cluster: auto (this node's), or ray://HOST:10001 (default: a "
                                     "local cluster started in this process)")
    r.add_argument("--workers", type=int, help="actors, each loading the model once (default: the cluster's CPUs / "
                                               "--cpus-per-worker; for --backend dpu one per 'dpu' resource)")
    r.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs Ray reserves per actor (default 1)")
    add_bag_arguments(p)
    add_model_arguments(p)
    add_tracking_arguments(p)
    p.set_defaults(run=run_replay)


def _model(args: argparse.Namespace) -> ModelSpec:
    """The model each worker loads, checked here first (files, metadata, thresholds)."""
    for flag, path in (("--model", args.model), ("--model-meta", args.model_meta)):
        if not path.is_file():
            raise CliError(f"{flag} {path}: no such file")
    try:
        load_meta(args.model_meta)
        spec = backend_spec(args)
        config = postprocess_config(args)
    except ValueError as e:
        raise CliError(str(e)) from e
    return ModelSpec(spec, args.model_meta, config)


def _worker_share(model: ModelSpec, cpus_per_worker: float) -> ModelSpec:
    """On Ray, ONNX Runtime's threads default to the worker's CPUs, not every core of its node."""
    spec = model.backend
    if isinstance(spec, OnnxSpec) and not spec.threads:
        return replace(model, backend=replace(spec, threads=max(1, int(cpus_per_worker))))
    return model


@dataclass
class _Plan:
    """The named bags: to run, already complete, failed before on their own unchanged input; frames to run."""

    todo: list[BagJob] = field(default_factory=list)
    complete: list[BagJob] = field(default_factory=list)
    failed_before: list[dict] = field(default_factory=list)
    frames: int = 0
    order: list[str] = field(default_factory=list)  # every named bag's relative path, as named


def _plan(args: argparse.Namespace, key: RunKey, ledger: Ledger) -> _Plan:
    try:
        bags = find_bags(args.bags, args.list)
    except BagError as e:
        raise CliError(str(e)) from e
    done = ledger.load()
    plan = _Plan()
    for bag in bags:
        size, fingerprint = input_fingerprint(bag.path)
        job = BagJob(bag, args.out / bag.rel, size, fingerprint)
        record = done.get(str(bag.rel))
        plan.order.append(str(bag.rel))
        if not args.force and is_complete(record, fingerprint, key, job.output):
            plan.complete.append(job)
        elif not args.force and failed_on_its_input(record, fingerprint, key):
            plan.failed_before.append(record)  # type: ignore[arg-type]
        else:
            plan.todo.append(job)
            plan.frames += _frame_count(job, args.topics)
    return plan


def _frame_count(job: BagJob, topics) -> int:
    """Colour frames the bag holds on the topics read (0 for a bag that cannot be read: it gets its own line)."""
    try:
        reader = BagReader(job.input.path, topics)
    except BagError:
        return 0
    try:
        return reader.count()
    finally:
        reader.close()


def run_replay(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers {args.workers}: give at least 1 (or leave it out to size the pool to the cluster)")
    if not args.cpus_per_worker > 0:
        raise CliError(f"--cpus-per-worker {args.cpus_per_worker}: give a positive number (fractions share a CPU)")
    check_output_folder(args.out, "--out")
    model = _model(args)
    options = bag_options(args)
    key = RunKey(file_digest(args.model, args.model_meta),
                 options_key({**asdict(options), "backend": args.backend, "selection": asdict(model.config)}),
                 package_version())
    args.out.mkdir(exist_ok=True)
    ledger = Ledger(args.out)
    plan = _plan(args, key, ledger)
    todo, frames_total = plan.todo, plan.frames
    on_ray = len(todo) > 1 or args.address is not None
    if on_ray:
        try:
            import_ray()
        except ImportError as e:
            raise CliError(str(e)) from e
    if plan.complete:
        print(f"{len(plan.complete)} bag(s) already complete for this model and options (--force redoes them)",
              file=sys.stderr)
    if plan.failed_before:
        print(f"{len(plan.failed_before)} bag(s) failed on their own unchanged input before, not tried again "
              "(--force tries them)", file=sys.stderr)
    records: list[dict] = []
    progress = Progress(len(todo), "bags", enabled=not args.no_progress)
    frames_done, failed_now, start = 0, 0, time.perf_counter()

    def on_frames(n: int) -> None:
        nonlocal frames_done
        frames_done += n
        fps = frames_done / max(time.perf_counter() - start, 1e-9)
        progress.detail = f"frames {frames_done}/{frames_total} {fps:.1f}/s, {failed_now} failed"
        progress.refresh()

    def on_record(record: dict) -> None:
        nonlocal failed_now
        ledger.append(record)
        records.append(record)
        failed_now += record["status"] != "ok"
        progress.update()
        on_frames(0)

    try:
        if on_ray:
            settings = RaySettings(args.address, args.workers, args.cpus_per_worker, args.backend == "dpu")
            run_on_ray(todo, _worker_share(model, args.cpus_per_worker), options, key, on_record, on_frames, settings)
        elif todo:
            run_here(todo, model, options, key, on_record, on_frames)
    except ValueError as e:
        raise CliError(str(e)) from e
    finally:
        progress.close()
        ledger.compact(plan.order)
    print(closing_table(records, len(plan.complete), time.perf_counter() - start))
    failed = [r for r in [*plan.failed_before, *records] if r["status"] != "ok"]
    if failed:
        print(f"{len(failed)} bag(s) failed: " + "; ".join(f"{r['rel']}: {r['reason']}" for r in failed),
              file=sys.stderr)
    return 1 if failed else 0


def closing_table(records: list[dict], skipped: int, seconds: float) -> str:
    """Bags of this run (the first TABLE_ROWS, failures first) and the totals."""
    rows = sorted(records, key=lambda r: (r["status"] == "ok", r["rel"]))
    lines = [f"{'bag':<40} {'status':<7} {'frames':>7} {'unread':>6} {'dets':>7} {'fps':>7}"]
    for r in rows[:TABLE_ROWS]:
        lines.append(f"{r['rel'][-40:]:<40} {r['status']:<7} {sum(r['frames'].values()):>7} {r['unreadable']:>6} "
                     f"{sum(r['detections'].values()):>7} {r['fps']:>7.1f}")
    if len(rows) > TABLE_ROWS:
        lines.append(f"... {len(rows) - TABLE_ROWS} more in summary.jsonl")
    frames = sum(sum(r["frames"].values()) for r in records)
    ok = sum(r["status"] == "ok" for r in records)
    lines.append(f"bags: {ok} ok, {len(records) - ok} failed, {skipped} already complete; frames: {frames} in "
                 f"{seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} fps)")
    return "\n".join(lines)
