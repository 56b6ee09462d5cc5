"""Break training on purpose and check that it survives: bad frames, videos and list rows, NaN losses, a full disk,
an unwritable log folder, --resume auto, and DDP jobs with a bad sample or a process killed at random moments.

    PYTHONPATH=. python scripts/fault_check.py [--fast] [--kills 10] [--work DIR] [--only CASE ...]

Prints one line per case (held / FAILED) and a final JSON line; exit status 1 when a case failed. --fast runs
the single-process cases (the CI subset, tests/test_fault_check.py); the DDP cases start `python main.py`
subprocesses (2 processes, gloo, CPU). The logic is in ops/tools/fault_check.py; docs/robustness.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from ops.tools import fault_check


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="only the single-process cases")
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs of the ddp_kills case (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments and victims")
    p.add_argument("--work", help="work folder (default: a temporary folder, removed)")
    p.add_argument("--only", nargs="+", choices=list(fault_check.CASES), help="run these cases")
    args = p.parse_args(argv)
    names = args.only or (fault_check.FAST if args.fast else list(fault_check.CASES))
    if args.work:
        out = fault_check.run_cases(args.work, names, kills=args.kills, seed=args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="fault_check_") as work:
            out = fault_check.run_cases(work, names, kills=args.kills, seed=args.seed)
    return 1 if out["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
