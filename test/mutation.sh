#!/usr/bin/env bash
# Mutation testing (slow: not in CI): mutmut plants one small defect at a time into the decision modules named in
# pyproject.toml's [tool.mutmut] and runs their focused tests against each; then one table per module.
# Usage: bash test/mutation.sh [mutant name patterns, e.g. "yolov5_dpu_ros.core.tracking*"]
# Results stay in mutants/ (mutmut results / mutmut show NAME / mutmut browse); doc/testing.md keeps the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/setup_venv.sh
pip install -q "mutmut==3.8.1"
mutmut run --max-children "$(nproc)" "$@" || true  # a mutant that survives is a result, not a failure
python test/mutation_report.py
