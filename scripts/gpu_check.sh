#!/usr/bin/env bash
# The first run on a GPU, in one command (at most 8 minutes): AMP training steps of every preset through the
# engine's loop, one-process nccl DDP, inference throughput of Uni-AdaFocus-TSM 8+12@96 and TSM-R50 at batch 128
# against the paper's RTX 3090 figures, early-exit throughput, GPU-vs-CPU numerics, peak memory per section and a
# tiny end-to-end run of main.py / main_nViewEval.py / test_early_exit.py. Prints one JSON line (last line of
# stdout); exits 1 if a section failed. Without CUDA (or with --tiny) it runs the same sections on tiny networks on
# the CPU (what CI runs). Options: python3 -m ops.tools.gpu_check --help
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --signal=INT 480 python3 -m ops.tools.gpu_check "$@"
