"""Evaluate a checkpoint (ours or the original's) over --test_crops x --num_clips views, averaging the logits."""

from ops.engine.evaluate import run_nview
from ops.opts import parse_args

if __name__ == "__main__":
    run_nview(parse_args(script="nview"))
