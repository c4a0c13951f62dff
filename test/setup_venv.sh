# Sourced by test/run.sh and test/mutation.sh: a virtual environment (VENV, default .venv) with the package and the
# test dependencies, activated.
venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip
pip install -q -e ".[bag,fleet]" -r test/requirements.txt
# YOLOv5 is the reference the tests compare against; its own requirements pull CUDA torch and
# torchvision, which do not load with the CPU torch, so it comes without them.
pip install -q --no-deps yolov5==7.0.9
# Ultralytics is the YOLOv8 reference (AGPL: tests only); without its requirements, which pull opencv-python and
# a torchvision that does not load with the CPU torch (test/ultralytics_reference.py)
pip install -q --no-deps ultralytics==8.4.190
