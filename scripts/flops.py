"""Prints GFLOPs per video (fvcore, multiply-accumulates, papers' convention) for every preset and baseline, for
AdaFocus V1 / V2, and for the Efficient-3DCNNs / TAdaConv networks at their papers' inputs (beside the official
counters' figures).

    python scripts/flops.py            # table: per component, per exit, and the paper's figure
    python scripts/flops.py --json     # the table, then one JSON object {"preset:glance+focus@patch": GFLOPs}

Counting runs on CPU with randomly initialised networks (weights do not change MACs); a few minutes for all rows
(the TAdaConvNeXtV2 and 3-D ResNet rows are the slow ones; --keys picks rows).
"""

from __future__ import annotations

import argparse
import json

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
        f"reskd_r50:{frames}@112",
        dict(
            preset="an",
            model="tsn",
            focus_arch="resnet50",
            num_segments=frames,
            student_size=112,
            consensus_first=True,
        ),
        reference,
    )
    for frames, reference in ((16, 17.21), (8, 8.61))
]
_CLASSES = {"an": 200, "tsm": 174, "x3d": 400}
# Other methods (model config values, ActivityNet): AdaFocus V1, 16 frames; its papers give the figures only as
# read off V1 Fig. 5 / V2 Table 2 (about 17 / 26.6 / 38.5 / 53).
_METHODS = [
    (f"v1:16@{p}", dict(model="adafocus_v1", preset="an", dataset="actnet", patch_size=p), paper)
    for p, paper in ((96, 17.0), (128, 26.6), (160, 38.5), (192, 53.0))
]

# Efficient-3DCNNs at the paper's 16 x 112^2 (Kinetics-600 heads) and TAdaConv (Kinetics-400): (key, config,
# the paper's figure, the official counter's figure), in GFLOPs. Efficient-3DCNNs: the paper's Table 8 (2021
# version, = the repository's THOP counter after its 2021 stride fix, which counts conv MACs + BN 2/element + ReLU
# 1/element + pools + 2x linear); TAdaConv: the paper / MODEL_ZOO figure and the official `get_model_stats`
# (fvcore without BN) at the 256^2 test crop (tests/fixtures/backbones3d/README.md, sections 5-6).
_E3D = dict(preset="x3d", model="e3d", num_classes=600, num_segments=16, input_size=112)
_TADA = dict(preset="x3d", model="tada", num_classes=400)
_CLIP_ROWS = [
    ("e3d_mobilenet_0.5x:16@112", dict(_E3D, focus_arch="mobilenet_3d", width_mult=0.5), 0.098, 0.0979),
    ("e3d_mobilenet_1.0x:16@112", dict(_E3D, focus_arch="mobilenet_3d", width_mult=1.0), 0.241, 0.2408),
    ("e3d_mobilenet_1.5x:16@112", dict(_E3D, focus_arch="mobilenet_3d", width_mult=1.5), 0.429, 0.4288),
    ("e3d_mobilenet_2.0x:16@112", dict(_E3D, focus_arch="mobilenet_3d", width_mult=2.0), 0.662, 0.6617),
    ("e3d_mobilenetv2_0.2x:16@112", dict(_E3D, focus_arch="mobilenetv2_3d", width_mult=0.2), 0.063, 0.0633),
    ("e3d_mobilenetv2_0.45x:16@112", dict(_E3D, focus_arch="mobilenetv2_3d", width_mult=0.45), 0.177, 0.1766),
    ("e3d_mobilenetv2_0.7x:16@112", dict(_E3D, focus_arch="mobilenetv2_3d", width_mult=0.7), 0.325, 0.3247),
    ("e3d_mobilenetv2_1.0x:16@112", dict(_E3D, focus_arch="mobilenetv2_3d", width_mult=1.0), 0.561, 0.5611),
    ("e3d_shufflenet_0.5x_g3:16@112", dict(_E3D, focus_arch="shufflenet_3d", width_mult=0.5), 0.078, 0.0778),
    ("e3d_shufflenet_1.0x_g3:16@112", dict(_E3D, focus_arch="shufflenet_3d", width_mult=1.0), 0.199, 0.1994),
    ("e3d_shufflenet_1.5x_g3:16@112", dict(_E3D, focus_arch="shufflenet_3d", width_mult=1.5), 0.347, 0.3467),
    ("e3d_shufflenet_2.0x_g3:16@112", dict(_E3D, focus_arch="shufflenet_3d", width_mult=2.0), 0.538, 0.5377),
    (
        "e3d_shufflenetv2_0.25x:16@112",
        dict(_E3D, focus_arch="shufflenetv2_3d", width_mult=0.25),
        0.116,
        0.1161,
    ),
    ("e3d_shufflenetv2_1.0x:16@112", dict(_E3D, focus_arch="shufflenetv2_3d", width_mult=1.0), 0.195, 0.1949),
    ("e3d_shufflenetv2_1.5x:16@112", dict(_E3D, focus_arch="shufflenetv2_3d", width_mult=1.5), 0.291, 0.2912),
    ("e3d_shufflenetv2_2.0x:16@112", dict(_E3D, focus_arch="shufflenetv2_3d", width_mult=2.0), 0.438, 0.4377),
    ("e3d_squeezenet_1.1:16@112", dict(_E3D, focus_arch="squeezenet_3d"), 0.926, 0.9260),
    ("e3d_resnet18_A:16@112", dict(_E3D, focus_arch="resnet18_3d", shortcut_type="A"), 8.323, 8.3232),
    ("e3d_resnet50_A:16@112", dict(_E3D, focus_arch="resnet50_3d", shortcut_type="A"), 9.835, 9.8354),
    ("e3d_resnet50_B:16@112", dict(_E3D, focus_arch="resnet50_3d", shortcut_type="B"), None, 10.1301),
    ("e3d_resnet101_A:16@112", dict(_E3D, focus_arch="resnet101_3d", shortcut_type="A"), 13.664, 13.6645),
    ("e3d_resnet101_B:16@112", dict(_E3D, focus_arch="resnet101_3d", shortcut_type="B"), None, 13.9592),
    ("e3d_resnext101_B:16@112", dict(_E3D, focus_arch="resnext101_3d"), 9.652, 9.6522),
    ("tada2d_r50:8@224", dict(_TADA, focus_arch="tada2d_r50", num_segments=8, input_size=224), None, 33.023),
    ("tada2d_r50:8@256", dict(_TADA, focus_arch="tada2d_r50", num_segments=8, input_size=256), 43.0, 43.126),
    (
        "tada2d_r50:16@256",
        dict(_TADA, focus_arch="tada2d_r50", num_segments=16, input_size=256),
        86.0,
        86.250,
    ),
    (
        "tadaconvnextv2_t:16@256",
        dict(_TADA, focus_arch="tadaconvnextv2_t", num_segments=16, input_size=256),
        47.0,
        47.217,
    ),
    (
        "tadaconvnextv2_s:16@256",
        dict(_TADA, focus_arch="tadaconvnextv2_s", num_segments=16, input_size=256),
        91.0,
        91.66,
    ),
    (
        "tadaconvnextv2_b:16@256",
        dict(_TADA, focus_arch="tadaconvnextv2_b", num_segments=16, input_size=256),
        162.0,
        161.78,
    ),
]
# The Uni-AdaFocus variant with an Efficient-3DCNNs glance and a TAda2D focus ('x3d' preset flags; README).
_UA_CLIP = [
    (
        "x3d-e3d-tada:16+12@128",
        dict(
            preset="x3d",
            glance_arch="mobilenetv2_3d",
            glance_size=112,
            focus_arch="tada2d_r50",
            num_focus_segments=12,
        ),
        None,
    ),
]


_OFFICIAL = {row[0]: row[3] for row in _CLIP_ROWS}  # the official counters' figures
_NOT_PARTS = (
    "total",
    "paper",
    "official",
    "per_frame",
    "per_focus_frame",
)  # breakdown keys that are no component


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _configs():
    """Yields (key, ModelConfig, paper figure) for every row."""
    from models import ModelConfig, config_from_dict

    for key, preset, over, paper in _UA:
        yield key, ModelConfig(preset=preset, num_classes=_CLASSES[preset], **over), paper
    for key, over, paper in _BASELINES + _V2 + _RESKD + _METHODS + _UA_CLIP:
        yield key, config_from_dict({**over, "num_classes": _CLASSES[over["preset"]]}), paper
    for key, over, paper, _ in _CLIP_ROWS:
        yield key, config_from_dict(over), paper


def known_keys() -> set[str]:
    """Returns every row key (including the glance-only exits)."""
    rows = _UA + _BASELINES + _V2 + _RESKD + _METHODS + _UA_CLIP + _CLIP_ROWS
    return {row[0] for row in rows} | {v[0] for v in _GLANCE_ONLY.values()}


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
        if key in _OFFICIAL:
            out[key]["official"] = _OFFICIAL[key]
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
    glance_only = {v[0] for v in _GLANCE_ONLY.values()}
    columns = None
    for key, b in rows.items():
        parts = [k for k, v in b.items() if k not in _NOT_PARTS and isinstance(v, float)]
        if key not in glance_only and parts != columns:  # a header for each kind of breakdown
            columns = parts
            names = " ".join(f"{c[:14]:>14s}" for c in columns)
            print(f"\n{'model':24s} {names} {'TOTAL':>8s} {'paper':>6s} {'diff%':>6s}  exits")
        values = " ".join(f"{b[c]:14.3f}" if key not in glance_only else f"{'':14s}" for c in columns)
        tail = f"{b['total']:8.3f} {_fmt(b['paper']):>6s} {_diff(b['total'], b['paper']):>6s}"
        if key in glance_only:
            note = "(glance-only exit)"
        elif "official" in b:
            note = f"(official counter {b['official']:.4f}, {_diff(b['total'], b['official'])}%)"
        else:
            note = "[" + " ".join(f"{e:.2f}" for e in b["exits"]) + "]"
        print(f"{key:24s} {values} {tail}  {note}")
        for name, value in b["not_in_total"].items():
            print(f"{'':24s} (not in total: {name} {value:.3f})")
    totals = {k: b["total"] for k, b in rows.items()}
    if args.json:
        print(json.dumps({k: round(v, 6) for k, v in totals.items()}))
    return totals


if __name__ == "__main__":
    main()
