"""Run by test_replay.py in a process of its own (Ray reads its authentication mode when imported): which workers
run the bags with and without the 'dpu' resource on the cluster at ADDRESS. Prints one JSON object.

    python test/fleet_placement.py ADDRESS BAG... --out FOLDER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ray

from yolov5_dpu_ros.backends import OnnxSpec
from yolov5_dpu_ros.core.postprocess import PostprocessConfig
from yolov5_dpu_ros.demo_model import DEMO_META, DEMO_ONNX
from yolov5_dpu_ros.replay.bag_set import BagInput
from yolov5_dpu_ros.replay.fleet import RaySettings, pool_size, run_on_ray
from yolov5_dpu_ros.replay.job import BagJob, ModelSpec
from yolov5_dpu_ros.replay.ledger import RunKey
from yolov5_dpu_ros.replay.one_bag import BagOptions


def main() -> None:
    address, *bags = sys.argv[1:-2]
    out = Path(sys.argv[-1])
    ray.init(address=address, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        report: dict = {"pool_dpu": pool_size(RaySettings(workers=4, dpu=True), resources),
                        "pool_cpu": pool_size(RaySettings(cpus_per_worker=1.0), resources)}
        model = ModelSpec(OnnxSpec(DEMO_ONNX, 1, False), DEMO_META, PostprocessConfig())
        for dpu in (True, False):  # the resource, not the backend, decides the placement
            jobs = [BagJob(BagInput(Path(b), Path(Path(b).name)), out / str(dpu) / Path(b).name, 0, "") for b in bags]
            records: list[dict] = []
            run_on_ray(jobs, model, BagOptions(), RunKey("m", "o", "v"), records.append, lambda n: None,
                       RaySettings(address, workers=2, dpu=dpu))
            report[f"workers_dpu_{dpu}"] = sorted({r["worker"] for r in records if r["status"] == "ok"})
            report[f"bags_dpu_{dpu}"] = len(records)
    finally:
        ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
