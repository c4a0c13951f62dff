#!/usr/bin/env bash
# Train a demo model: synthetic shapes → ReLU yolov5n (YOLOv5's own training code) or yolov8n (Ultralytics' own
# trainer) → raw-head ONNX + metadata with calibrated fix points. Needs a GPU machine with torch, torchvision and
# the yolov5 package (7.0.9) or ultralytics (8.4). Usage: demo/train_demo_model.sh WORK_DIR EPOCHS [BATCH] [FAMILY]
set -euo pipefail
work=${1:?work dir}; epochs=${2:?epochs}; batch=${3:-64}; family=${4:-yolov5}
jobs=$(nproc)
[ -f "$work/data/data.yaml" ] || python3 -m demo.shapes "$work/data" --train 4000 --val 200 --test 0 --jobs "$jobs"
case "$family" in
yolov5)
    cfg=$(python3 -c "import importlib.util as u; print(list(u.find_spec('yolov5').submodule_search_locations)[0])")/models/yolov5n.yaml
    train=(python3 -m demo.train_yolov5 --cfg "$work/yolov5n_relu.yaml" --weights "" --noplots --device 0
           --workers "$jobs" --cache ram --exist-ok) ;;
yolov8)
    cfg=yolov8n.yaml
    train=(python3 -m demo.train_yolov8 --cfg "$work/yolov8n_relu.yaml" --workers "$jobs") ;;
*) echo "family: yolov5 or yolov8, not $family" >&2; exit 2 ;;
esac
python3 -m model_prep.prepare --family "$family" --cfg "$cfg" --nc 5 --data "$work/data/data.yaml" --img 320 \
    --out-cfg "$work/${family}n_relu.yaml" --out-meta "$work/prepared.yaml"
start=$(date +%s)
"${train[@]}" --img 320 --batch "$batch" --epochs "$epochs" --data "$work/data/data.yaml" \
    --project "$work/runs" --name "demo_$family"
echo "training took $(( $(date +%s) - start )) s"
python3 -m model_prep.export_onnx --family "$family" --weights "$work/runs/demo_$family/weights/best.pt" --img 320 \
    --calib "$work/data/images/val" --data "$work/data/data.yaml" --out "$work/shapes_${family}n.onnx"
