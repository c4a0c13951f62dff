"""Train a YOLOv8 model with Ultralytics' own trainer, offline, on a GPU machine.

    python -m demo.train_yolov8 --cfg yolov8n_relu.yaml --data DATA.yaml --img 320 --epochs 50 --batch 64 \
        --project RUNS --name demo

Ultralytics' defaults (hyperparameters, augmentation, optimizer "auto") except four settings: ``seed=0``, no plots
(they download a font), AMP off (its check downloads a YOLO26 checkpoint; there is no network on the GPU machine)
and ``YOLO_OFFLINE`` set so that nothing tries to reach the hub.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="model yaml with the DPU's activation (model_prep.prepare)")
    parser.add_argument("--data", required=True, help="dataset yaml")
    parser.add_argument("--img", type=int, default=640)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="0")
    parser.add_argument("--project", required=True)
    parser.add_argument("--name", default="demo")
    args = parser.parse_args(argv)
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO

    start = time.monotonic()
    YOLO(args.cfg, task="detect").train(
        data=args.data, imgsz=args.img, epochs=args.epochs, batch=args.batch, workers=args.workers,
        device=args.device, cache="ram", seed=0, plots=False, amp=False, pretrained=False,
        project=args.project, name=args.name, exist_ok=True)
    print(f"training took {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
