"""Prints GFLOPs per video (fvcore, multiply-accumulates, papers' convention) for every preset and baseline.

    python scripts/flops.py            # table: per component, per exit, and the paper's figure
    python scripts/flops.py --json     # the table, then one JSON object {"preset:glance+focus@patch": GFLOPs}

Counting runs on CPU with randomly initialised networks (weights do not change MACs); about 15-30 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (key, model config overrides, number reported in the papers / READMEs (None: no published figure))
_UA = [
    ("an:16+16@96", "an", dict(patch_size=96), None),
    ("an:16+16@128", "an", dict(patch_size=128), 27.2),
    ("an:16+16@160", "an", dict(patch_size=160), None),
    ("an:16+16@192", "an", dict(patch_size=192), None),
    ("tsm:8+8@96", "tsm", dict(num_focus_segments=8, num_input_focus_segments=24, patch_size=96), 8.8),
    ("tsm:8+12@96", "tsm", dict(num_focus_segments=12, num_input_focus_segments=36, patch_size=96), 11.8),
    ("tsm:8+12@128", "tsm", dict(num_focus_segments=12, num_input_focus_segments=36, patch_size=128), 18.8),
    ("tsm:8+16@128", "tsm", dict(num_focus_segments=16, num_input_focus_segments=48, patch_size=128), 24.2),
    ("x3d:16+32@128", "x3d", dict(), 8.8),
]
_GLANCE_ONLY = {
    "an:16+16@128": ("an:16+0@128", None),
    "x3d:16+32@128": ("x3d:16+0@128", 2.4),
    "tsm:8+12@128": ("tsm:8+0@128", None),
}
_BASELINES = [
    ("tsm_r50:8@224", dict(preset="tsm", model="tsm", focus_arch="resnet50", num_segments=8), 32.7),
    ("tsn_r50:8@224", dict(preset="tsm", model="tsn", focus_arch="resnet50", num_segments=8), 32.7),
    ("tsm_mbv2:8@224", dict(preset="tsm", model="tsm", focus_arch="mobilenetv2", num_segments=8), None),
    # X3D paper (Feichtenhofer 2020), Table 2: X3D-S 1.96, X3D-M 4.73, X3D-L 18.37 GFLOPs per clip.
    (
        "x3d_s:13@160",
        dict(preset="x3d", model="x3d", focus_arch="x3d_s", num_segments=13, input_size=160),
        1.96,
    ),
    (
        "x3d_m:16@224",
        dict(preset="x3d", model="x3d", focus_arch="x3d_m", num_segments=16, input_size=224),
        4.73,
    ),
    (
        "x3d_l:16@312",
        dict(preset="x3d", model="x3d", focus_arch="x3d_l", num_segments=16, input_size=312),
        18.37,
    ),
]
# AdaFocus V2 (V2 paper tables: ActivityNet MN2/RN rows; Sth-Sth rows)
_V2 = [
    ("v2_an:16@96", dict(preset="an", model="adafocus_v2", patch_size=96), 17.6),
    ("v2_an:16@128", dict(preset="an", model="adafocus_v2", patch_size=128), 27.0),
    ("v2_an:16@160", dict(preset="an", model="adafocus_v2", patch_size=160), 39.0),
    ("v2_an:16@192", dict(preset="an", model="adafocus_v2", patch_size=192), None),
    ("v2_ss:8+12@128", dict(preset="tsm", model="adafocus_v2", patch_size=128), 18.5),
    ("v2_ss:8+12@144", dict(preset="tsm", model="adafocus_v2", patch_size=144), 23.5),
    ("v2_ss:8+12@160", dict(preset="tsm", model="adafocus_v2", patch_size=160), 27.5),
    ("v2_ss:8+12@176", dict(preset="tsm", model="adafocus_v2", patch_size=176), 33.7),
]
# ResKD students (TSN-R50, mmaction head: one classifier call per video) at 112 px, resized in the model from the
# 224 crop; reference = fvcore count of the official student network (the paper's tables could not be read).
_RESKD = [
    (
        "reskd_r50:16@112",
        dict(
            preset="an",
            model="tsn",
            focus_arch="resnet50",
            num_segments=16,
            student_size=112,
            consensus_first=True,
        ),
        17.21,
    ),
    (
        "reskd_r50:8@112",
        dict(
            preset="an",
            model="tsn",
            focus_arch="resnet50",
            num_segments=8,
            student_size=112,
            consensus_first=True,
        ),
        8.61,
    ),
]
_CLASSES = {"an": 200, "tsm": 174, "x3d": 400}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _configs():
    """Yields (key, ModelConfig, paper figure) for every Uni-AdaFocus row and baseline."""
    from models import get_method
    from models.config import ModelConfig

    for key, preset, over, paper in _UA:
        yield key, ModelConfig(preset=preset, num_classes=_CLASSES[preset], **over), paper
    for key, over, paper in _BASELINES + _V2 + _RESKD:
        config_cls = get_method(over.get("model", "uniadafocus")).config_cls
        yield key, config_cls(num_classes=_CLASSES[over["preset"]], **over), paper


def known_keys() -> set[str]:
    """Returns every row key (including the glance-only exits)."""
    return {row[0] for row in _UA + _BASELINES + _V2 + _RESKD} | {v[0] for v in _GLANCE_ONLY.values()}


def collect(keys: set[str] | None = None) -> dict[str, dict]:
    """Returns {key: breakdown dict of ops.engine.flops.gflops_breakdown (+ 'paper')} for `keys` (default: all rows);
    a glance-only key maps to its parent row with `total` = the glance exit."""
    from ops.engine.flops import gflops_breakdown

    keys = set(keys or known_keys())
    if keys - known_keys():
        raise KeyError(f"unknown keys {sorted(keys - known_keys())}; known: {sorted(known_keys())}")
    parents = {v[0]: k for k, v in _GLANCE_ONLY.items()}
    needed = {parents.get(k, k) for k in keys}
    out: dict[str, dict] = {}
    for key, cfg, paper in _configs():
        if key not in needed:
            continue
        out[key] = {**gflops_breakdown(cfg), "paper": paper}
        if key in _GLANCE_ONLY:
            gkey, gpaper = _GLANCE_ONLY[key]
            out[gkey] = {**out[key], "total": out[key]["exits"][0], "paper": gpaper}
    return out


def _diff(total: float, paper: float | None) -> str:
    return "" if paper is None else f"{100 * (total / paper - 1):+.2f}"


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints the table (and with --json the JSON object); returns {key: total GFLOPs}."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON object of totals")
    parser.add_argument(
        "--keys", default="", help="comma-separated subset of rows (e.g. 'tsm:8+8@96,x3d:16+32@128')"
    )
    args = parser.parse_args(argv)
    wanted = {k for k in args.keys.split(",") if k}
    if wanted - known_keys():
        parser.error(f"unknown keys {sorted(wanted - known_keys())}; known: {sorted(known_keys())}")
    rows = collect(wanted or None)
    print(
        f"{'model':16s} {'glance':>8s} {'g-heads':>8s} {'spatial':>8s} {'tempor.':>8s} {'focus':>8s} "
        f"{'f-heads':>8s} {'TOTAL':>8s} {'paper':>6s} {'diff%':>6s}  exits"
    )
    glance_only = {v[0] for v in _GLANCE_ONLY.values()}
    for key, b in rows.items():
        if key in glance_only:
            print(
                f"{key:16s} {'':8s} {'':8s} {'':8s} {'':8s} {'':8s} {'':8s} {b['total']:8.3f} "
                f"{_fmt(b['paper']):>6s} {_diff(b['total'], b['paper']):>6s}  (glance-only exit)"
            )
        elif "backbone" in b:
            print(
                f"{key:16s} {b['backbone']:8.3f} {b['heads']:8.3f} {'':8s} {'':8s} {'':8s} {'':8s} "
                f"{b['total']:8.3f} {_fmt(b['paper']):>6s} {_diff(b['total'], b['paper']):>6s}  (baseline, full frames)"
            )
        elif "spatial_policy" not in b:  # another method: its own parts
            parts = " ".join(
                f"{k} {v:.3f}" for k, v in b.items() if isinstance(v, float) and k not in ("total", "paper")
            )
            print(
                f"{key:16s} {'':8s} {'':8s} {'':8s} {'':8s} {'':8s} {'':8s} {b['total']:8.3f} "
                f"{_fmt(b['paper']):>6s} {_diff(b['total'], b['paper']):>6s}  ({parts}, {len(b['exits'])} exits)"
            )
        else:
            exits = " ".join(f"{e:.2f}" for e in b["exits"])
            print(
                f"{key:16s} {b['glance']:8.3f} {b['glance_heads']:8.3f} {b['spatial_policy']:8.3f} "
                f"{b['temporal_policy']:8.3f} {b['focus']:8.3f} {b['focus_heads']:8.3f} {b['total']:8.3f} "
                f"{_fmt(b['paper']):>6s} {_diff(b['total'], b['paper']):>6s}  [{exits}]"
            )
            for name, value in b["not_in_total"].items():
                print(f"{'':16s} (not in total: {name} {value:.3f})")
    totals = {k: b["total"] for k, b in rows.items()}
    if args.json:
        print(json.dumps({k: round(v, 6) for k, v in totals.items()}))
    return totals


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
