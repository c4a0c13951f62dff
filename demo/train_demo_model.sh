#!/usr/bin/env bash
# Train the demo model: synthetic shapes → ReLU yolov5n (YOLOv5's own training code) → raw-head ONNX
# + metadata with calibrated fix points. Needs a GPU machine with torch, torchvision and the yolov5
# package (7.0.9). Usage: demo/train_demo_model.sh WORK_DIR EPOCHS [BATCH]
set -euo pipefail
work=${1:?work dir}; epochs=${2:?epochs}; batch=${3:-64}
jobs=$(nproc)
python3 -m demo.shapes "$work/data" --train 4000 --val 200 --test 0 --jobs "$jobs"
yolov5_models=$(python3 -c "import importlib.util as u; print(list(u.find_spec('yolov5').submodule_search_locations)[0])")/models
python3 -m model_prep.prepare --cfg "$yolov5_models/yolov5n.yaml" --nc 5 --data "$work/data/data.yaml" --img 320 \
    --out-cfg "$work/yolov5n_relu.yaml" --out-meta "$work/prepared.yaml"
start=$(date +%s)
python3 -m demo.train_yolov5 --img 320 --batch "$batch" --epochs "$epochs" --data "$work/data/data.yaml" \
    --cfg "$work/yolov5n_relu.yaml" --weights "" --noplots --device 0 --workers "$jobs" --cache ram \
    --project "$work/runs" --name demo --exist-ok
echo "training took $(( $(date +%s) - start )) s"
python3 -m model_prep.export_onnx --weights "$work/runs/demo/weights/best.pt" --img 320 \
    --calib "$work/data/images/val" --data "$work/data/data.yaml" --out "$work/shapes_yolov5n.onnx"
