"""The CUDA paths, shown on CPU with proxies: a tensor on the `meta` device stands in for one on a GPU (an op that
mixes it with a CPU tensor fails the same way), CPU autocast for CUDA autocast, and unit tests of the guards."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ops.tools.benchmark import train_step_fn


class _MetaClassifier(nn.Module):
    """A linear classifier over uint8 clips whose criterion keeps everything on the logits' device."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x.flatten(2)).mean(1)}

    def criterion(self):
        return lambda out, target: (F.cross_entropy(out["logits"], target), {})


def test_benchmark_training_step_draws_its_labels_on_the_frames_device():
    model = _MetaClassifier(5).to("meta")
    frames = torch.zeros(2, 3, 3, 4, 4, dtype=torch.uint8, device="meta")
    step = train_step_fn(model, frames, 5)
    step()  # labels drawn on the CPU for logits on another device: "not on the expected device"
    assert model.fc.weight.device.type == "meta"


class _Clips(nn.Module):
    """A linear classifier over (B, T, 3, 4, 4) clips: forward -> {'logits' (B, C)}."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x.flatten(2)).mean(1)}


def nan_at(steps: set[int]):
    """A cross-entropy criterion whose loss is NaN at the given calls (0-based)."""
    calls = []

    def criterion(out, target):
        loss = F.cross_entropy(out["logits"], target)
        if len(calls) in steps:
            loss = loss * float("nan")
        calls.append(1)
        return loss, {}

    return criterion


def clip_batches(count: int, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randint(0, 256, (4, 2, 3, 4, 4), dtype=torch.uint8, generator=gen),
            torch.randint(0, 3, (4,), generator=gen),
            torch.arange(4),
        )
        for _ in range(count)
    ]


def run_epoch(model, criterion, batches, tmp_path, scaler=None, info=None):
    from ops.engine.distributed import DistInfo
    from ops.engine.loops import train_one_epoch
    from ops.engine.runlog import RunLogger

    args = argparse.Namespace(lr_per_step=False, amp="none", clip_gradient=None, print_freq=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with RunLogger(str(tmp_path), enabled=False, tensorboard=False) as logger:
        return train_one_epoch(model, criterion, batches, opt, args, info or DistInfo(), 0, logger, scaler)


def test_nonfinite_loss_stops_before_the_update_without_a_scaler(tmp_path):
    torch.manual_seed(0)
    model, batches = _Clips(), clip_batches(3)
    reference = _Clips()
    reference.load_state_dict(model.state_dict())
    run_epoch(reference, nan_at(set()), batches[:1], tmp_path)  # the weights after the one finite step
    with pytest.raises(
        FloatingPointError, match=r"epoch 0 iteration 1: the loss is not finite on rank\(s\) \[0\]"
    ):
        run_epoch(model, nan_at({1}), batches, tmp_path)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # the NaN step never reached the weights


def test_gradscaler_skips_a_nonfinite_step_and_the_means_leave_it_out(tmp_path):
    # CPU GradScaler: the same skip logic as the CUDA one under --amp fp16
    torch.manual_seed(0)
    model, batches = _Clips(), clip_batches(3)
    twin = _Clips()
    twin.load_state_dict(model.state_dict())
    stats = run_epoch(model, nan_at({1}), batches, tmp_path, torch.amp.GradScaler("cpu"))
    assert stats["nonfinite_steps"] == 1.0 and math.isfinite(stats["loss"])
    # the skipped step changed nothing: the two finite steps alone give the same weights and loss
    plain = run_epoch(twin, nan_at(set()), [batches[0], batches[2]], tmp_path, torch.amp.GradScaler("cpu"))
    assert stats["loss"] == pytest.approx(plain["loss"], rel=1e-12) and "nonfinite_steps" not in plain
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(FloatingPointError, match="not finite at any step"):
        run_epoch(model, nan_at({0, 1}), batches[:2], tmp_path, torch.amp.GradScaler("cpu"))


def test_an_classifier_runs_in_float32_under_autocast_in_evaluation():
    # The 'an' preset autocasts its two backbones only; the classifier (glance half shared by every exit in
    # evaluation, then the focus half) stays float32. CPU autocast stands in for CUDA's (--amp in evaluation).
    from models import ModelConfig, build_model
    from tests.test_model_grads import TINY

    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="an", **TINY["an"], pretrain="none")).eval()
    dtypes: dict[str, torch.dtype] = {}
    for name in ("global_mlp", "local_mlp"):
        getattr(model.classifier, name).register_forward_hook(
            lambda m, i, o, name=name: dtypes.update({name: o.dtype})
        )
    backbone = []
    model.global_CNN.features[0].register_forward_hook(lambda m, i, o: backbone.append(o.dtype))
    x = torch.randn(1, 12, 3, 128, 128)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert backbone == [torch.bfloat16]  # the backbones do run under autocast
    assert dtypes == {"global_mlp": torch.float32, "local_mlp": torch.float32}
    assert out["exit_logits"].dtype == torch.float32


def test_early_exit_cache_key_names_the_world_size_and_the_workers(tmp_path):
    from ops.engine.distributed import DistInfo
    from ops.engine.evaluate import _cache_key

    ckpt = tmp_path / "ckpt.pth.tar"
    ckpt.write_bytes(b"weights")
    args = argparse.Namespace(
        resume=str(ckpt), test_crops=1, num_clips=1, train_list=None, val_list=None, seed=0, workers=4
    )
    one = _cache_key(args, DistInfo())
    assert _cache_key(args, DistInfo()) == one
    assert _cache_key(args, DistInfo(world_size=2, local_world_size=2)) != one  # 2 ranks, 2 workers each
    assert _cache_key(args, DistInfo(world_size=2, local_world_size=1)) != one  # 2 ranks, 4 workers each
    args.workers = 0
    assert _cache_key(args, DistInfo()) != one
