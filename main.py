"""Train (or with --evaluate, validate) Uni-AdaFocus or a baseline. Accepts the original command lines."""

from ops.engine.train import run
from ops.opts import parse_args

if __name__ == "__main__":
    run(parse_args(script="main"))
