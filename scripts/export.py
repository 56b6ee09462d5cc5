"""Export a trained checkpoint for deployment: ONNX (run by ONNX Runtime, e.g. `python -m ops.tools.onnx_predict`)
or TorchScript (libtorch), for every method of the registry.

    python scripts/export.py CKPT --format onnx|torchscript --out DIR [--opset 20] [--batch dynamic|N]
        [--exit_threshold T [T ...] [--exit_criterion confidence]] [--categories FILE] [--trust_checkpoint]

A model with early exit (Uni-AdaFocus) is written as two graphs, glance.onnx (frames -> glance logits, exit 0,
and the state the second stage needs) and focus.onnx (frames + that state -> final logits, every exit's logits,
the selected frames and focus regions), so a runtime can stop after the first; any other model as model.onnx
(.pt for TorchScript). The graphs take normalised float32 frames (B, T, 3, S, S) and hold everything the model
does inside (glance resize, frame selection, patch crops); DIR/deploy.json says what the loader does (sampling,
resize, crop, mean / std, layout), the class names, GFLOPs per exit and the exit thresholds given here. The export
is checked against PyTorch on random frames (logits, exits, frame indices, patch positions); the differences
are printed. Exit status: 0, 2 for a usage or checkpoint error, 1 when the check fails.
"""

from __future__ import annotations

import argparse
import sys

from ops.engine.checkpoint import CheckpointError
from ops.engine.early_exit import CRITERIA
from ops.tools.export import DEFAULT_OPSET, FORMATS, export_predictor
from ops.tools.export_check import check_predictor
from ops.tools.predict import load_predictor


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by main.py (ckpt.best.pth.tar)")
    p.add_argument("--format", choices=FORMATS, required=True, help="onnx | torchscript")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the graphs and deploy.json")
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset ({DEFAULT_OPSET}, the least)"
    )
    p.add_argument("--batch", default="dynamic", help="'dynamic' (any batch size) or a fixed batch size N")
    p.add_argument("--exit_threshold", type=float, nargs="+", help="thresholds the runtime uses by default")
    p.add_argument("--exit_criterion", choices=CRITERIA, default="confidence", help="(confidence)")
    p.add_argument("--categories", help="class names, one per line, for a checkpoint saved without them")
    p.add_argument(
        "--trust_checkpoint", action="store_true", help="open CKPT as a full pickle (runs its code)"
    )
    p.add_argument("--no_check", action="store_true", help="skip the parity check against PyTorch")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.batch != "dynamic" and not (a.batch.isdigit() and int(a.batch) >= 1):
        parser.error(f"--batch must be 'dynamic' or a positive integer, got {a.batch!r}")
    if a.format == "onnx" and a.opset < DEFAULT_OPSET:
        parser.error(f"--opset {a.opset}: the patch crops need AffineGrid, opset {DEFAULT_OPSET} or later")
    try:
        predictor = load_predictor(
            a.checkpoint, device="cpu", trust=a.trust_checkpoint, categories=a.categories
        )
        manifest = export_predictor(
            predictor,
            a.out,
            a.format,
            opset=a.opset,
            batch=None if a.batch == "dynamic" else int(a.batch),
            thresholds=a.exit_threshold,
            criterion=a.exit_criterion,
        )
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = ", ".join(g["file"] for g in manifest["graphs"].values())
    print(f"{a.out}: {files} + deploy.json ({manifest['model']}, {manifest['num_exits']} exits)")
    if a.no_check:
        return 0
    result = check_predictor(predictor, a.out)
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
