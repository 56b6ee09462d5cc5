"""Mutation check of the test suite: makes each of a list of deliberate bugs in a temporary copy of the repository,
runs the tests that should catch it there, and reports each bug caught or missed.

    python scripts/mutation_check.py [--only NAME,...] [--list] [--no-baseline] [--timeout S]

A bug is one exact text replacement in one file (the text must occur there exactly once, or the check stops with
an error naming the mutation: the code moved and the list needs updating). Caught: the tests fail (pytest exit
status 1). Missed: they pass. Anything else (a timeout, a collection error) is reported as an error. Before the
mutations the selected tests run once on the unmodified copy (skip with --no-baseline): they must pass, or a
"caught" would mean nothing. The last line printed is one JSON object: {"caught": [...], "missed": [...],
"errors": [...], "seconds": ...}. Exit status 0 when every mutation was caught.

The list covers the five bugs the suite once let pass (issue 29) and twelve across frame selection, crop geometry,
early-exit calibration, PPO and RNG restore. It takes several minutes on 2 cores, so it is not part of `pytest`
(tests/test_mutation_check.py runs one mutation to check the plumbing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Mutation:
    """A deliberate bug: `old` replaced by `new` in `path` (repository-relative); `tests` are pytest arguments."""

    name: str
    area: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


POLICIES = "models/uniadafocus/policies.py"
PATCHES = "models/core/patches.py"
EARLY_EXIT = "ops/engine/early_exit.py"
PPO = "models/adafocus_v1/ppo.py"
CKPT = "ops/engine/checkpoint.py"
DISTILL = "models/reskd/distill.py"
T_POLICIES = "tests/test_policies.py"
T_DISTILL = "tests/test_distill_train.py"

MUTATIONS = (
    # ---- the five bugs every test once passed
    Mutation(
        "temperature_ignored_in_selection",
        "frame selection",
        "models/uniadafocus/model.py",
        "idx = sample_indices(w_t.detach(), cfg.num_input_focus_segments",
        "idx = sample_indices(w.detach(), cfg.num_input_focus_segments",
        (T_POLICIES, "-k", "temperature"),
    ),
    Mutation(
        "cdf_tie_to_upper_bin",
        "frame selection",
        POLICIES,
        "hit = cdf.unsqueeze(2) >= thresholds.unsqueeze(1)",
        "hit = cdf.unsqueeze(2) > thresholds.unsqueeze(1)",
        (T_POLICIES, "-k", "knot"),
    ),
    Mutation(
        "distiller_kd_weight_1",
        "distillation",
        DISTILL,
        "term = feature_mse(s, t, kd.weight)",
        "term = feature_mse(s, t, 1.0)",
        (T_DISTILL, "-k", "criterion"),
    ),
    Mutation(
        "mse_kd_default_weight_10",
        "distillation",
        DISTILL,
        'KD_DEFAULTS = {"mse": {"weight": 100.0}',
        'KD_DEFAULTS = {"mse": {"weight": 10.0}',
        (T_DISTILL, "-k", "criterion"),
    ),
    Mutation(
        "kl_kd_ignores_temperature",
        "distillation",
        DISTILL,
        "term = position_kl(s, t, kd.weight, kd.temperature)",
        "term = position_kl(s, t, kd.weight, 1.0)",
        (T_DISTILL, "-k", "criterion"),
    ),
    # ---- frame selection
    Mutation(
        "eval_threshold_not_centred",
        "frame selection",
        POLICIES,
        "offset = torch.full_like(base, 0.5)",
        "offset = torch.full_like(base, 0.25)",
        (T_POLICIES, "-k", "sample_indices_eval"),
    ),
    Mutation(
        "selection_cap_off_by_one",
        "frame selection",
        POLICIES,
        "return torch.minimum(ordered, num_candidates - k + steps)",
        "return torch.minimum(ordered, num_candidates - k + steps + 1)",
        (T_POLICIES, "-k", "enforce_order or sample_indices"),
    ),
    Mutation(
        "position_rounded_not_floored",
        "frame selection",
        POLICIES,
        "return enforce_order(torch.floor(positions).long(), num_candidates), positions",
        "return enforce_order(torch.round(positions).long(), num_candidates), positions",
        (T_POLICIES, "-k", "sample_indices or fixture_focus"),
    ),
    # ---- crop geometry
    Mutation(
        "smallest_region_112",
        "crop geometry",
        PATCHES,
        "MIN_REGION = 96",
        "MIN_REGION = 112",
        ("tests/test_patches.py",),
    ),
    Mutation(
        "box_may_leave_the_frame",
        "crop geometry",
        PATCHES,
        "top_left = actions[:, :2] * (image_size - side)",
        "top_left = actions[:, :2] * image_size",
        ("tests/test_patches.py",),
    ),
    Mutation(
        "box_y_x_swapped",
        "crop geometry",
        PATCHES,
        "return _theta(side[:, 0], side[:, 1], top_left[:, 0], top_left[:, 1], image_size)",
        "return _theta(side[:, 0], side[:, 1], top_left[:, 1], top_left[:, 0], image_size)",
        ("tests/test_patches.py",),
    ),
    # ---- early-exit calibration
    Mutation(
        "one_extra_sample_exits",
        "early-exit calibration",
        EARLY_EXIT,
        "chosen = remaining[: min(out_n, remaining.numel())]",
        "chosen = remaining[: min(out_n + 1, remaining.numel())]",
        ("tests/test_early_exit.py",),
    ),
    Mutation(
        "exit_counts_rounded",
        "early-exit calibration",
        EARLY_EXIT,
        "out_ns = torch.floor(float(n) * p).long().tolist()",
        "out_ns = torch.round(float(n) * p).long().tolist()",
        ("tests/test_early_exit.py",),
    ),
    # ---- PPO (AdaFocus V1 stage 2)
    Mutation(
        "returns_not_discounted",
        "PPO",
        PPO,
        "discounted = reward + gamma * discounted",
        "discounted = reward + discounted",
        ("tests/test_rl.py",),
    ),
    Mutation(
        "advantage_not_detached",
        "PPO",
        PPO,
        "advantages = returns - values.detach()",
        "advantages = returns - values",
        ("tests/test_rl.py",),
    ),
    # ---- RNG restore on --resume
    Mutation(
        "torch_rng_not_restored",
        "RNG restore",
        CKPT,
        'torch.set_rng_state(state["torch"])',
        'torch.get_rng_state()  # state["torch"] not restored',
        ("tests/test_checkpoint.py", "-k", "rng"),
    ),
    Mutation(
        "numpy_rng_not_restored",
        "RNG restore",
        CKPT,
        "np.random.set_state((name, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))",
        "np.random.get_state()  # not restored",
        ("tests/test_checkpoint.py", "-k", "rng"),
    ),
)


def copy_repo(dest: str) -> None:
    """Copies the repository's files (tracked and untracked, not ignored; without .git) into `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):  # deleted in the work tree but still in the index
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))


def run_tests(copy: str, tests: tuple[str, ...], timeout: float) -> tuple[int | None, float, str]:
    """Runs pytest on `tests` in the copy; returns (exit status or None on timeout, seconds, output tail)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, ""
    return done.returncode, time.perf_counter() - t0, (done.stdout + done.stderr)[-1500:]


def apply(copy: str, m: Mutation) -> str:
    """Makes the bug in the copy; returns the file's original text (to restore it)."""
    path = os.path.join(copy, m.path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    count = text.count(m.old)
    if count != 1:
        raise ValueError(
            f"mutation {m.name}: {m.path} holds its text {count} times (must be once): {m.old!r}; update "
            "scripts/mutation_check.py to the code"
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(m.old, m.new))
    return text


def check(mutations: list[Mutation], baseline: bool, timeout: float) -> dict:
    """Runs the check in a temporary copy; prints one line per mutation; returns the summary dict."""
    t0 = time.perf_counter()
    summary: dict = {"caught": [], "missed": [], "errors": []}
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as copy:
        copy_repo(copy)
        if baseline:
            tests = sorted({t for m in mutations for t in m.tests if t.startswith("tests/")})
            status, seconds, tail = run_tests(copy, tuple(tests), timeout * 2)
            print(f"baseline (no mutation): {' '.join(tests)}: exit {status} in {seconds:.0f} s", flush=True)
            if status != 0:
                print(tail)
                summary["errors"].append("baseline")
                summary["seconds"] = round(time.perf_counter() - t0, 1)
                return summary
        for m in mutations:
            original = apply(copy, m)
            try:
                status, seconds, tail = run_tests(copy, m.tests, timeout)
            finally:
                with open(os.path.join(copy, m.path), "w", encoding="utf-8") as f:
                    f.write(original)
            verdict = {1: "caught", 0: "missed"}.get(status, "error")
            summary[{"error": "errors"}.get(verdict, verdict)].append(m.name)
            print(f"{verdict:7s} {m.name} ({m.area}; {m.path}) in {seconds:.0f} s", flush=True)
            if verdict == "error":
                print(f"        exit status {status}:\n{tail}")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Parses the flags, runs the check, prints the JSON line; returns 0 when every mutation was caught."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated mutation names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run of the selected tests without mutation"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run (600)")
    args = parser.parse_args(argv)
    names = [m.name for m in MUTATIONS]
    wanted = [n for n in args.only.split(",") if n]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"--only: unknown mutations {unknown}; known: {', '.join(names)}")
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:36s} {m.area:24s} {m.path}: {m.old!r} -> {m.new!r}; {' '.join(m.tests)}")
        return 0
    chosen = [m for m in MUTATIONS if not wanted or m.name in wanted]
    summary = check(chosen, baseline=not args.no_baseline, timeout=args.timeout)
    print(f"{len(summary['caught'])} of {len(chosen)} mutations caught")
    print(json.dumps(summary))
    return 0 if len(summary["caught"]) == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
