"""Many bags on many workers: in this process (one bag, no Ray needed), or on a Ray cluster where each actor
loads the model once and takes bag after bag, each bag whole and in order.

An actor whose process dies (killed, out of memory) is restarted by Ray and its bag is redone from the start
(``max_restarts``, ``max_task_retries``); the bag's partial output is removed before the retry writes it again.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from yolov5_dpu_ros.replay.job import WORKER, BagJob, ModelSpec, failed_record, remove, run_job
from yolov5_dpu_ros.replay.ledger import RunKey
from yolov5_dpu_ros.replay.one_bag import BagOptions

TASK_RETRIES = 3  # a bag whose worker died this many times more is recorded as failed
POLL_S = 0.25
INSTALL_HINT = "pip install 'yolov5_dpu_ros[fleet]' (or pip install ray)"

OnRecord = Callable[[dict], None]
OnFrames = Callable[[int], None]


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide: ``address`` None starts a local cluster in this process; ``workers`` None sizes the pool
    to the cluster (its CPUs / ``cpus_per_worker``, or its ``dpu`` resources for DPU workers)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    dpu: bool = False


def import_ray():
    """Ray, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"many bags run on Ray, which is not installed: {INSTALL_HINT}") from e
    return ray


def run_here(jobs: Sequence[BagJob], model: ModelSpec, options: BagOptions, key: RunKey, on_record: OnRecord,
             on_frames: OnFrames) -> None:
    """Every job in this process, one after another, on one model load."""
    detector = model.build()
    try:
        for job in jobs:
            on_record(run_job(job, detector, options, key, on_frames))
    finally:
        detector.close()


class BagWorker:
    """A Ray actor's body: the model loaded once, then whole bags. Progress goes to the run's board."""

    def __init__(self, model: ModelSpec, options: BagOptions, key: RunKey, board: str) -> None:
        import ray

        self._detector = model.build()
        self._options, self._key, self._board = options, key, ray.get_actor(board)

    def run(self, job: BagJob) -> dict:
        return run_job(job, self._detector, self._options, self._key, self._board.add.remote)


class ProgressBoard:
    """Frames done by every worker since the driver last looked (a Ray actor)."""

    def __init__(self) -> None:
        self._frames = 0

    def add(self, frames: int) -> None:
        self._frames += frames

    def take(self) -> int:
        frames, self._frames = self._frames, 0
        return frames


def _cause(error: Exception) -> str:
    """The last line of a Ray error's text: the exception the remote code raised."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def pool_size(settings: RaySettings, resources: dict) -> int:
    """Workers to start: as asked, else what the cluster holds; DPU workers never more than its ``dpu`` units."""
    if settings.dpu:
        boards = int(resources.get("dpu", 0))
        if boards < 1:
            raise ValueError("no node of the Ray cluster offers the 'dpu' resource: start Ray on each board with "
                             "ray start ... --resources '{\"dpu\": 1}' (one DPU process per board)")
        return min(settings.workers or boards, boards)
    cpus = float(resources.get("CPU", 1))
    return max(1, settings.workers or int(cpus // max(settings.cpus_per_worker, 1e-9)))


def run_on_ray(jobs: Sequence[BagJob], model: ModelSpec, options: BagOptions, key: RunKey, on_record: OnRecord,
               on_frames: OnFrames, settings: RaySettings) -> None:
    """Every job on a pool of Ray actors; ``on_record`` gets each bag's line as it ends, in completion order.
    On an interruption the actors are stopped and the partial outputs of the bags in flight removed."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # "local": a new cluster in this process even where `ray start` runs one on this machine
        ray.init(address=settings.address or "local", log_to_driver=False, logging_level=logging.ERROR,
                 include_dashboard=False if settings.address is None else None)
    actors: list = []
    running: dict = {}
    try:
        size = min(len(jobs), pool_size(settings, ray.cluster_resources()))
        board_name = f"yolov5_dpu_ros-replay-{uuid.uuid4().hex}"  # looked up by name: no handle in the arguments
        board = ray.remote(num_cpus=0)(ProgressBoard).options(name=board_name).remote()
        resources = {"dpu": 1} if settings.dpu else None
        worker = ray.remote(num_cpus=settings.cpus_per_worker, resources=resources, max_restarts=-1,
                            max_task_retries=TASK_RETRIES)(BagWorker)
        actors = [worker.remote(model, options, key, board_name) for _ in range(size)]
        queue = deque(jobs)

        def submit(actor) -> None:
            job = queue.popleft()
            running[actor.run.remote(job)] = (actor, job)

        for actor in actors[: len(queue)]:
            submit(actor)
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            on_frames(ray.get(board.take.remote()))
            for ref in done:
                actor, job = running.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    if e.actor_init_failed:  # the model does not load there: every bag would fail alike
                        raise ValueError(f"a worker could not load the model: {_cause(e)}") from e
                    remove(job.partial)  # the worker died more often than the retries allow
                    record = failed_record(job, key, f"its worker died {TASK_RETRIES + 1} times: "
                                                     f"{type(e).__name__}: {str(e).splitlines()[0]}",
                                           failure=WORKER)
                on_record(record)
                if queue:
                    submit(actor)
        on_frames(ray.get(board.take.remote()))  # what the last bags reported after the last look
    except BaseException:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if running:  # let the killed workers stop writing; a bag that ended meanwhile still gets its line
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=10)
            for ref in done:
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError:
                    continue
                del running[ref]
                on_record(record)
        for _, job in running.values():  # no line, so neither its partial nor a renamed output may stay
            remove(job.partial)
            remove(job.output)
        raise
    finally:
        if started:
            ray.shutdown()
