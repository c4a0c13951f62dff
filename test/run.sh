#!/usr/bin/env bash
# Set up a virtual environment with the package and the test dependencies, then run the tests.
# Usage: bash test/run.sh [pytest args]   (VENV=path to choose the environment, default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
. test/setup_venv.sh
python -m pytest -q -p no:cacheprovider "$@"
