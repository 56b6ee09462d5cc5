"""The parity check of an export (scripts/export.py runs it; tests/test_export.py asserts it): the exported graphs
against the PyTorch model on the same random frames, for the outputs, the early exits and the decisions.

Float outputs must agree within float tolerance: max |diff| <= ATOL + RTOL * max |reference| over the tensor
(different kernels sum in different orders, so the rounding error scales with the magnitude of the sums, not
of each value); integers (frame indices, exits, integer crop corners) must be equal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ops.tools.export import DECISIONS, FRAMES, MANIFEST, torch_reference
from ops.tools.inference import choose_exits, predict_with_exit
from ops.tools.predict import Predictor

RTOL, ATOL = 1e-4, 1e-4


def run_torchscript(folder: str, manifest: dict, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Returns the outputs of the TorchScript graphs of `folder` on frames x (the staged chain: glance, focus)."""
    graphs = manifest["graphs"]

    def run(name: str, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        module = torch.jit.load(os.path.join(folder, graphs[name]["file"]))
        with torch.no_grad():
            out = module(*[feed[k] for k in graphs[name]["inputs"]])
        return dict(zip(graphs[name]["outputs"], out if isinstance(out, tuple) else (out,)))

    if not manifest["staged"]:
        out = run("model", {FRAMES: x})
    else:
        out = run("focus", {FRAMES: x, **run("glance", {FRAMES: x})})
    return {k: v.numpy() for k, v in out.items()}


def exported_outputs(folder: str, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Returns the exported model's outputs (logits, exit_logits, decisions.*) on frames x (B, T, 3, S, S)."""
    with open(os.path.join(folder, MANIFEST)) as f:
        manifest = json.load(f)
    if manifest["format"] == "torchscript":
        return run_torchscript(folder, manifest, x)
    from ops.tools.onnx_runtime import Deployed

    return Deployed(folder).forward(x.numpy())


def reference_exits(model: torch.nn.Module, x: torch.Tensor, thresholds: list[float]) -> tuple:
    """Returns PyTorch's (logits, exits) of early exit on frames x: predict_with_exit for a staged model (the
    deployment path), else the first exit reaching its threshold of a full forward."""
    if model.staged:
        logits, exits = predict_with_exit(model, x, thresholds)
    else:
        with torch.no_grad():
            logits, exits = choose_exits(model(x)["exit_logits"], thresholds)
    return logits.numpy(), exits.numpy()


def split_thresholds(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """Returns thresholds that split frames x between the exits and lie far from every score: for each exit
    before the last, the middle of the widest gap between its sorted confidences (the last exit -1e8)."""
    with torch.no_grad():
        scores = model(x)["exit_logits"].max(dim=-1).values.sort(dim=0).values  # (B, E), ascending
    gaps = scores[1:] - scores[:-1]  # (B - 1, E)
    k = gaps.argmax(dim=0, keepdim=True)
    middle = (scores.gather(0, k) + scores.gather(0, k + 1)) / 2
    return [float(v) for v in middle[0, :-1]] + [-1e8]


def varied_frames(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """Returns normalised-looking random frames (batch, frames, 3, size, size) whose videos differ in more than
    noise (a colour offset and contrast per video), so that random models tell them apart."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, frames, 3, size, size, generator=gen)
    offset = 2 * torch.randn(batch, 1, 3, 1, 1, generator=gen)
    return offset + noise * torch.rand(batch, 1, 1, 1, 1, generator=gen) * 2


@dataclass
class CheckResult:
    """Differences between an export and PyTorch: max abs differences of float outputs, equality of integers."""

    max_diff: dict[str, float] = field(default_factory=dict)
    equal: dict[str, bool] = field(default_factory=dict)
    ok: bool = True

    def summary(self) -> str:
        """Returns one line per compared output, and the verdict."""
        lines = [f"  {k}: max |diff| {v:.3g}" for k, v in self.max_diff.items()]
        lines += [f"  {k}: {'equal' if v else 'DIFFERENT'}" for k, v in self.equal.items()]
        verdict = "parity check passed" if self.ok else "PARITY CHECK FAILED"
        return "\n".join([f"{verdict} (floats: max |diff| <= {ATOL} + {RTOL} * max |reference|):", *lines])


def _compare(result: CheckResult, name: str, ref: np.ndarray, got: np.ndarray) -> None:
    if ref.shape != got.shape:
        result.equal[f"{name} shape"], result.ok = False, False
    elif np.issubdtype(ref.dtype, np.integer):
        result.equal[name] = bool(np.array_equal(ref, got))
        result.ok &= result.equal[name]
    else:
        diff = float(np.abs(ref.astype(np.float64) - got).max(initial=0.0))
        result.max_diff[name] = diff
        result.ok &= diff <= ATOL + RTOL * float(np.abs(ref).max(initial=0.0))


def check_predictor(predictor: Predictor, folder: str, batch: int = 3, seed: int = 0) -> CheckResult:
    """Compares the export in `folder` with the model of `predictor` on `batch` random videos (a fixed-batch
    export: its batch), early exit included (thresholds at each exit's median confidence)."""
    with open(os.path.join(folder, MANIFEST)) as f:
        manifest = json.load(f)
    model, cfg = predictor.model.eval().cpu(), predictor.cfg
    batch = batch if manifest["batch"] == "dynamic" else int(manifest["batch"])
    x = varied_frames(batch, sum(model.input_layout(cfg)), cfg.input_size, seed)
    ref, got = torch_reference(model, x), exported_outputs(folder, x)
    result = CheckResult()
    for name in ["logits", "exit_logits"] + [f"decisions.{k}" for k in DECISIONS]:
        if name in ref:
            _compare(result, name, ref[name], got.get(name, np.zeros(0)))
    if model.num_exits > 1 and manifest["format"] == "onnx":
        from ops.tools.onnx_runtime import Deployed

        thresholds = split_thresholds(model, x)
        ref_logits, ref_exits = reference_exits(model, x, thresholds)
        logits, exits = Deployed(folder).run(x.numpy(), thresholds)
        _compare(result, "early-exit logits", ref_logits, logits)
        _compare(result, "early-exit exits", ref_exits, exits)
    return result
