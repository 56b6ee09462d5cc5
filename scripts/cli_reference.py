"""Writes docs/cli.md, the command-line reference generated from the parser (ops/tools/cli_reference.py).

    python scripts/cli_reference.py [--check]

--check writes nothing and exits 1 when docs/cli.md is not what the code generates.
"""

from __future__ import annotations

import argparse
import os
import sys

from ops.tools.cli_reference import render

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "cli.md")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md is stale, write nothing")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        with open(PATH) as f:
            stale = f.read() != text
        if stale:
            print(f"{PATH} is stale: run python scripts/cli_reference.py", file=sys.stderr)
        return int(stale)
    with open(PATH, "w") as f:
        f.write(text)
    print(f"=> {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
