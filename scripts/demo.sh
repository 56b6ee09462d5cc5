#!/usr/bin/env bash
# The demo (the README's main job): make the synthetic dataset, train Uni-AdaFocus on it, evaluate the learned
# policies against random patches + uniform frames and the glance network alone, run early exit. CPU, minutes.
# Options are passed to scripts/demo.py (--root_dataset, --root_log, --epochs, --seed; other flags, e.g.
# --shared_crop, go on to the training, evaluation and early-exit runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project's packages, installed (pip install -e .) or not
exec python3 scripts/demo.py "$@"
