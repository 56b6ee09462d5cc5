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


@pytest.fixture
def backend_state(monkeypatch):
    """Restores the global back-end settings a test changes; a fake GPU of a chosen capability."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
        torch.backends.cudnn.rnn.fp32_precision,
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    capability = {"value": (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "fake GPU")
    yield capability
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
    torch.backends.cuda.matmul.fp32_precision = saved[4]
    torch.backends.cudnn.conv.fp32_precision = saved[5]
    torch.backends.cudnn.rnn.fp32_precision = saved[6]


def test_backends_tf32_off_by_default_autotuning_for_training_and_deterministic(backend_state):
    import os

    from ops.engine.backends import configure_backends
    from ops.opts import parse_args

    gpu = torch.device("cuda", 0)
    args = parse_args(["synthetic", "RGB"])
    assert args.tf32 == "off" and not args.deterministic
    line = configure_backends(args, gpu, training=True)
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"  # cuDNN's own default would be TF32
    assert torch.backends.cuda.matmul.fp32_precision == "ieee" and torch.backends.cudnn.benchmark
    assert "TF32 off, cudnn.benchmark on, deterministic off" in line
    configure_backends(args, gpu, training=False)
    assert not torch.backends.cudnn.benchmark  # evaluation: variable last batch, no autotuning
    args = parse_args(["synthetic", "RGB", "--tf32", "on", "--deterministic"])
    line = configure_backends(args, gpu, training=True)
    assert torch.backends.cudnn.conv.fp32_precision == "tf32" == torch.backends.cuda.matmul.fp32_precision
    assert (
        torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    )
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and "deterministic on" in line
    assert configure_backends(parse_args(["synthetic", "RGB"]), torch.device("cpu"), training=True) is None


def test_bare_amp_is_bf16_from_ampere_on_and_fp16_before(backend_state):
    from ops.engine.backends import configure_backends
    from ops.engine.optim import amp_dtype, make_grad_scaler
    from ops.opts import parse_args

    gpu = torch.device("cuda", 0)
    args = parse_args(["synthetic", "RGB", "--amp"])
    assert args.amp == "auto"
    assert amp_dtype(gpu, "auto") == torch.bfloat16 and make_grad_scaler(gpu, "auto") is None
    assert "amp bf16 (bare --amp: by compute capability)" in configure_backends(args, gpu, training=True)
    backend_state["value"] = (7, 0)  # V100: bf16 has no fast path
    assert amp_dtype(gpu, "auto") == torch.float16
    args = parse_args(["synthetic", "RGB", "--amp"])
    configure_backends(args, gpu, training=True)
    assert args.amp == "fp16"
    assert parse_args(["synthetic", "RGB", "--amp", "bf16"]).amp == "bf16"
    cpu_args = parse_args(["synthetic", "RGB", "--amp"])
    configure_backends(cpu_args, torch.device("cpu"), training=True)
    assert cpu_args.amp == "none" and amp_dtype("cpu", "auto") is None


def test_batchnorm_on_one_video_per_process_names_the_layer_and_the_minimum_batch():
    from ops.engine.batchnorm import check_batch_statistics
    from ops.engine.distributed import DistInfo
    from tests.test_adafocus_v2 import tiny

    model = tiny("tsm")[0].train()  # the V2 Sth-Sth policy: BatchNorm1d on (B, hidden) features
    x = torch.randn(1, 2 + 4, 3, 64, 64)
    check_batch_statistics(model, 1, DistInfo(world_size=4, backend="nccl"))
    with pytest.raises(ValueError) as err:
        model(x)
    msg = str(err.value)
    assert msg.startswith(
        "policy_stn.encoder.5 (BatchNorm1d) sees one value per channel in training: 1 video(s)"
    )
    assert "--batch-size 8 or more (at least 2 videos per process)" in msg and "--sync_bn" in msg
    model = tiny("tsm")[0].train()
    check_batch_statistics(model, 2, DistInfo())
    model(torch.randn(2, 6, 3, 64, 64))  # two videos: every check passes and removes itself
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_sync_bn_converts_every_batchnorm_on_gpus_and_is_refused_on_cpu():
    from ops.engine.batchnorm import sync_batchnorm
    from ops.engine.distributed import DistInfo
    from tests.test_adafocus_v2 import tiny

    args = argparse.Namespace(sync_bn=True)
    model = tiny("tsm")[0]
    params = {id(p) for p in model.parameters()}
    keys = list(model.state_dict())
    count = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    gpus = DistInfo(world_size=2, device=torch.device("cuda", 0), backend="nccl")
    model, note = sync_batchnorm(model, args, gpus)
    assert note == f"--sync_bn: {count} BatchNorm layers synchronised over 2 processes"
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == count
    assert {id(p) for p in model.parameters()} == params and list(model.state_dict()) == keys
    with pytest.raises(ValueError, match="--sync_bn needs CUDA processes"):
        sync_batchnorm(tiny("tsm")[0], args, DistInfo(world_size=2, backend="gloo"))
    assert "one process" in sync_batchnorm(model, args, DistInfo())[1]


def test_persistent_workers_are_reseeded_every_epoch(data_root, tmp_path):
    # Workers persist across epochs (make_loader), so the seed the loader gives a new worker reaches them only
    # once: a run resumed at epoch 1 must still draw what the uninterrupted run drew there.
    from ops.engine.distributed import DistInfo
    from ops.engine.loops import build_dataset, build_loader, seed_epoch
    from ops.engine.setup import load_dataset_config
    from ops.opts import parse_args

    args = parse_args(
        ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", str(tmp_path), "-j", "2", "-b", "4"]
        + "--input_size 32 --patch_size 16 --glance_size 32 --num_glance_segments 2 --num_input_focus_segments 4 --num_focus_segments 2".split()
    )
    config = load_dataset_config(args)

    def epochs(first: int, last: int) -> list[list[torch.Tensor]]:
        dataset = build_dataset(args, config, "train", (2, 4))
        loader = build_loader(dataset, args, DistInfo(), shuffle=True, drop_last=True)
        out = []
        for epoch in range(first, last + 1):
            seed_epoch(loader, epoch, seed=5)
            out.append(
                [
                    torch.cat([frames.flatten(1), index[:, None].to(torch.uint8)], 1)
                    for frames, _, index in loader
                ]
            )
        return out

    straight, resumed = epochs(0, 1), epochs(1, 1)
    assert len(resumed[0]) == 3 and all(torch.equal(a, b) for a, b in zip(straight[1], resumed[0]))
    assert not any(torch.equal(a, b) for a, b in zip(straight[0], straight[1]))


def test_v1_crop_and_policy_distribution_need_no_host_sync():
    # A host sync (.item(), bool(tensor)) raises on the meta device, as it would stall a CUDA stream.
    from models.adafocus_v1.crops import integer_crop
    from models.adafocus_v1.ppo import ActorCritic

    images = torch.zeros(6, 3, 10, 10, device="meta")
    corners = torch.zeros(6, 2, dtype=torch.long, device="meta")
    assert integer_crop(images, corners, 4).shape == (6, 3, 4, 4)
    policy = ActorCritic(8, 2, 16).to("meta")
    probs = torch.full((6, 49), 1 / 49, device="meta")
    dist = policy.distribution(probs)
    assert dist.log_prob(dist.sample()).shape == (6,) and dist.entropy().shape == (6,)
    # on the CPU the corners are still checked on the host, with the corners in the message
    with pytest.raises(ValueError, match=r"patch of side 4 at \[\[0, 7\]\] leaves the 10 x 10 frame"):
        integer_crop(torch.zeros(1, 3, 10, 10), torch.tensor([[0, 7]]), 4)
