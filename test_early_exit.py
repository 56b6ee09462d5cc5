"""Sample-wise dynamic (early-exit) evaluation: calibrate exit thresholds on the training split, sweep exit
distributions on val, write the accuracy-vs-GFLOPs curve as CSV and PNG."""

from ops.engine.evaluate import run_early_exit
from ops.opts import parse_args

if __name__ == "__main__":
    run_early_exit(parse_args(script="early_exit"))
