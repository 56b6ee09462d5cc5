"""GFLOPs of a model, as the model counts them (models/core/flops.py: fvcore, multiply-accumulates, papers' convention)."""

from __future__ import annotations

from torch import nn

from models import ModelConfig, build_model
from ops.engine.distributed import unwrap


def gflops_breakdown(model_or_cfg: nn.Module | ModelConfig) -> dict:
    """Returns the per-component GFLOPs dict (`exits`, `total`, ...) of a model, or of the model a ModelConfig
    builds (random weights: weights do not change the count); the model is counted in eval mode."""
    model = build_model(model_or_cfg) if isinstance(model_or_cfg, ModelConfig) else unwrap(model_or_cfg)
    was_training = model.training
    try:
        model.eval()
        return model.gflops_breakdown()
    finally:
        model.train(was_training)


def exit_gflops(model_or_cfg: nn.Module | ModelConfig) -> list[float]:
    """Returns GFLOPs per video of each exit (e.g. AN: K+1 exits; TSM/X3D: [glance only, full]; baselines:
    [full])."""
    return list(gflops_breakdown(model_or_cfg)["exits"])
