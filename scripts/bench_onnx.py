"""ONNX Runtime against our PyTorch inference path on the CPU: the same model, the same batch, timed in one run.

    python scripts/bench_onnx.py [--pair tsm|x3d|an|e3d-tada] [--batch 8] [--threads 2] [--repeats 5] [--json]

The Uni-AdaFocus model of a scripts/bench.py pair (random weights) is exported to a temporary folder
(scripts/export.py's export, checked against PyTorch) and both run the full model (no early exit) on the same
random frames from normalised float32: `pytorch` is the eval model as scripts/predict.py runs it (its staged
deployment path, ops.tools.inference.predict_with_exit, under inference_mode), `pytorch_deploy` the same on
ops.tools.inference.deploy_model (BatchNorm folded, channels-last weights, scripts/bench.py's default), and
`onnxruntime` the exported graphs (ops.tools.onnx_runtime.Deployed, ORT's default graph optimisations). Calls
are interleaved after one warm-up round; medians. The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from models import build_model
from ops.engine.flops import exit_gflops
from ops.tools.benchmark import default_pairs, interleaved_medians
from ops.tools.export import export_predictor
from ops.tools.export_check import check_predictor
from ops.tools.inference import deploy_model, predict_with_exit
from ops.tools.onnx_runtime import Deployed
from ops.tools.predict import Predictor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--pair", default="tsm", choices=sorted(default_pairs()), help="scripts/bench.py pair (tsm)"
    )
    p.add_argument("--batch", type=int, default=8, help="videos per call (8)")
    p.add_argument("--threads", type=int, default=2, help="threads of both runtimes (2)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each (5)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = default_pairs()[args.pair].adaptive
    model = build_model(cfg).eval()
    predictor = Predictor(model, cfg, [str(i) for i in range(cfg.num_classes)], torch.device("cpu"), "pil",
                          exit_gflops(model), "random")  # fmt: skip
    frames = sum(model.input_layout(cfg))
    x = torch.randn(args.batch, frames, 3, cfg.input_size, cfg.input_size)
    never = [1e8] * (model.num_exits - 1) + [-1e8]
    deployed = deploy_model(model)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export_predictor(predictor, folder, "onnx")
        export_s = time.perf_counter() - start
        check = check_predictor(predictor, folder, batch=2)
        ort = Deployed(folder, threads=args.threads)
        x_np = x.numpy()

        def torch_path(m):
            if m.staged:
                return lambda: predict_with_exit(m, x, never)
            return lambda: torch.inference_mode()(m)(x)

        fns = {
            "pytorch": torch_path(model),
            "pytorch_deploy": torch_path(deployed),
            "onnxruntime": lambda: ort.forward(x_np),
        }
        t = interleaved_medians(fns, 1, args.repeats)
    result = {
        "pair": args.pair,
        "batch": args.batch,
        "threads": args.threads,
        "seconds": t,
        "ratio_pytorch_over_onnxruntime": t["pytorch"] / t["onnxruntime"],
        "ratio_deploy_over_onnxruntime": t["pytorch_deploy"] / t["onnxruntime"],
        "export_s": export_s,
        "parity_ok": check.ok,
        "loadavg": os.getloadavg()[0],
        "torch": torch.__version__,
    }
    if not args.json:
        print(f"{args.pair}: batch {args.batch}, {args.threads} threads (load {result['loadavg']:.1f})")
        for k, v in t.items():
            print(f"  {k:15s} {1e3 * v:9.1f} ms  ({args.batch / v:6.2f} videos/s)")
        print(f"  PyTorch / ONNX Runtime: {result['ratio_pytorch_over_onnxruntime']:.2f} (eval model), "
              f"{result['ratio_deploy_over_onnxruntime']:.2f} (deploy_model)")  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
