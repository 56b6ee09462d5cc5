"""Numerics and speed settings of the CUDA back-ends (and of host memory), chosen explicitly for every run
(nothing is left to a library default that another version may change).

- TF32 (`--tf32 on|off`, default off): matmuls and convolutions in float32 keep their full precision, so logits on
  a GPU stay within about 1e-5 of the CPU-verified ones (cuDNN convolutions would otherwise use TF32 by default);
  `on` is faster on Ampere and later GPUs (10-bit mantissa inputs).
- cuDNN autotuning (`cudnn.benchmark`) for training, whose input shapes are fixed; off for evaluation and under
  `--deterministic`.
- `--deterministic`: cuDNN's deterministic algorithms, `torch.use_deterministic_algorithms` (warn-only: the
  backward of grid_sample and a few others have no deterministic CUDA kernel, so those steps warn instead of
  stopping) and the cuBLAS workspace setting it needs. Costs speed; with it a resumed CUDA run repeats the
  uninterrupted one except in those ops.
- `--host_memory keep|release` (default keep): freed CPU memory stays in the process for the next batch
  (ops/engine/host_memory.py; outputs unchanged).
- Mixed precision: a bare `--amp` (`auto`) is bf16 on GPUs of compute capability 8.0 or later (Ampere+), fp16
  with a GradScaler before (bf16 is emulated, slowly, there).
"""

from __future__ import annotations

import argparse
import os

import torch

from ops.engine.host_memory import apply_host_memory

CUBLAS_WORKSPACE = ":4096:8"


def resolve_amp(amp: str | None, device: torch.device) -> str:
    """Returns the precision `--amp` means on `device`: 'auto' -> 'bf16' on CUDA capability >= 8.0, else 'fp16'
    (CPU: 'none', where autocast is not used); other values unchanged."""
    if amp != "auto":
        return amp or "none"
    if device.type != "cuda":
        return "none"
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def configure_backends(args: argparse.Namespace, device: torch.device, training: bool) -> str | None:
    """Applies --host_memory, --tf32, --deterministic and cudnn.benchmark (training on CUDA) and resolves a bare
    --amp (args.amp is rewritten); returns one line for the run log on CUDA (None on CPU). Call it before the first
    CUDA computation."""
    apply_host_memory(getattr(args, "host_memory", None))
    deterministic = bool(getattr(args, "deterministic", False))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read by cuBLAS at its first use
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = training and device.type == "cuda" and not deterministic
    asked = getattr(args, "amp", None)
    args.amp = resolve_amp(asked, device)
    if device.type != "cuda":
        return None
    precision = "tf32" if args.tf32 == "on" else "ieee"
    # the fp32_precision settings only: reading the legacy allow_tf32 flags after them raises in torch >= 2.9
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cudnn.rnn.fp32_precision = precision
    amp = args.amp + (" (bare --amp: by compute capability)" if asked == "auto" else "")
    return (
        f"device {device} ({torch.cuda.get_device_name(device)}): TF32 {args.tf32}, cudnn.benchmark "
        f"{'on' if torch.backends.cudnn.benchmark else 'off'}, deterministic {'on' if deterministic else 'off'}, "
        f"amp {amp}"
    )
