#!/usr/bin/env bash
# Set up a virtual environment with the package and the test dependencies, then run the tests.
# Usage: bash test/run.sh [pytest args]   (VENV=path to choose the environment, default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip
pip install -q -e ".[bag]" -r test/requirements.txt
# YOLOv5 is the reference the tests compare against; its own requirements pull CUDA torch and
# torchvision, which do not load with the CPU torch, so it comes without them.
pip install -q --no-deps yolov5==7.0.9
python -m pytest -q -p no:cacheprovider "$@"
