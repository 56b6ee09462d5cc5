"""ops.engine.optim: param groups, lr schedules (values), partial BN, clipping, AMP helpers on CPU."""

import argparse
import math

import pytest
import torch
from torch import nn

from models.core.interface import freeze_partial_bn
from ops.engine.loops import eval_amp
from ops.engine.optim import (
    adjust_learning_rate,
    amp_dtype,
    autocast_context,
    backward_step,
    build_optimizer,
    clip_gradients,
    lr_at,
    make_grad_scaler,
)
from ops.opts import parse_args


def ns(**kw):
    base = dict(
        lr=0.02,
        epochs=50,
        lr_type="cos",
        lr_steps=[50.0, 100.0],
        weight_decay=1e-3,
        momentum=0.9,
        lr_per_step=False,
    )
    return argparse.Namespace(**{**base, **kw})


def two_groups():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    return net, [
        {"params": net[0].parameters(), "lr_mult": 0.5, "name": "glance"},
        {"params": list(net[1].parameters()), "lr_mult": 20.0, "decay_mult": 1.0, "name": "classifier"},
    ]


def test_build_optimizer_groups():
    net, groups = two_groups()
    opt = build_optimizer(groups, ns())
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert [(g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups] == [
        ("glance", 0.01, 1e-3, 2),
        ("classifier", 0.4, 1e-3, 2),
    ]
    _, groups = two_groups()
    for g in groups:
        g["params"] = [p.requires_grad_(False) for p in g["params"]]
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(groups, ns())


def test_cosine_per_epoch_values_match_the_original_formula():
    args = ns()
    assert [lr_at(e, args) for e in (0, 25, 50)] == pytest.approx([0.02, 0.01, 0.0], abs=1e-12)
    assert lr_at(10, args) == pytest.approx(0.5 * 0.02 * (1 + math.cos(math.pi * 10 / 50)))
    # per-step only when asked for; epoch 10, step 5 of 10 -> t = 10.5
    assert lr_at(10, args, step=5, steps_per_epoch=10) == lr_at(10, args)
    args.lr_per_step = True
    assert lr_at(10, args, step=5, steps_per_epoch=10) == pytest.approx(
        0.01 * (1 + math.cos(math.pi * 10.5 / 50))
    )


def test_step_schedule_counts_milestones_passed():
    args = ns(lr_type="step", lr_steps=[10.0, 20.0], lr=1.0)
    assert [lr_at(e, args) for e in (0, 9, 10, 19, 20, 49)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_at(0, ns(lr_type="step", lr_steps=[0.0, 0.0], lr=1.0)) == pytest.approx(0.01)  # README `0 0`


def test_adjust_learning_rate_sets_every_group():
    _, groups = two_groups()
    args = parse_args(["synthetic", "RGB", "--lr", "0.1", "--epochs", "4", "--wd", "1e-4"])
    opt = build_optimizer(groups, args)
    lr = adjust_learning_rate(opt, 2, args)
    assert lr == pytest.approx(0.05)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 1.0])
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 1e-4]


def test_freeze_partial_bn_keeps_only_the_first_bn_trainable():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 1),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 1),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.Conv3d(4, 4, 1), nn.BatchNorm3d(4)),
    )
    net.train()
    assert freeze_partial_bn(net) == ["3", "4.1"]
    assert net[1].training and net[1].weight.requires_grad
    assert not net[3].training and not net[3].weight.requires_grad and not net[3].bias.requires_grad
    stats = net[3].running_mean.clone()
    net[:4](torch.randn(2, 3, 5, 5)).sum().backward()
    assert (
        torch.equal(net[3].running_mean, stats) and net[3].weight.grad is None
    )  # frozen: no update, no grad
    assert not torch.equal(net[1].running_mean, torch.zeros(4))  # the first BN still updates its statistics
    net.train()  # train() re-enables BN: the helper is re-applied every epoch (idempotent)
    assert freeze_partial_bn(net) == ["3", "4.1"] and not net[3].training


def test_clip_gradients_and_backward_step():
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(5, 4)).pow(2).sum().backward()
    norm = torch.cat([p.grad.flatten() for p in net.parameters()]).norm().item()
    assert clip_gradients(net, 1e-3) == pytest.approx(norm)
    assert torch.cat([p.grad.flatten() for p in net.parameters()]).norm().item() == pytest.approx(
        1e-3, rel=1e-4
    )
    assert clip_gradients(net, None) is None
    w = net.weight.detach().clone()
    opt.zero_grad()
    loss = net(torch.ones(1, 4)).sum()
    assert backward_step(loss, opt, net, max_norm=None) is None
    assert torch.allclose(net.weight, w - 0.1 * torch.ones(3, 4))  # d(sum)/dW = ones


def test_amp_helpers_are_no_ops_on_cpu():
    for amp in ("bf16", "fp16", "none", None):
        assert amp_dtype("cpu", amp) is None and make_grad_scaler("cpu", amp) is None
        with autocast_context(torch.device("cpu"), amp):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert amp_dtype("cuda", "bf16") == torch.bfloat16 and amp_dtype("cuda:1", "fp16") == torch.float16
    with pytest.raises(ValueError, match="unknown --amp"):
        amp_dtype("cuda", "fp8")


def test_evaluation_runs_in_float32_unless_amp_is_given():
    a = parse_args(["kinetics", "RGB"])
    assert (a.amp, eval_amp(a)) == ("fp16", "none")  # the preset's AMP is for training only
    assert eval_amp(parse_args(["kinetics", "RGB", "--amp", "bf16"])) == "bf16"


def test_warmup_is_tadaconvs_linear_ramp_to_the_cosine_per_iteration():
    # TAda2D K400 8x8 (configs/projects/tada/tada2d_k400.yaml): BASE_LR 0.24, MAX_EPOCH 100, WARMUP_EPOCHS 8,
    # WARMUP_START_LR 0.01; lr_policy.get_lr_at_epoch: cur_epoch * (cosine(8) - start) / 8 + start below epoch 8.
    args = parse_args(["kinetics", "RGB", "--model", "tada", "--root_dataset", "x"])
    assert (args.warmup_epochs, args.warmup_start_lr, args.lr_per_step) == (8.0, 0.01, True)
    cos8 = 0.24 * (math.cos(math.pi * 8 / 100) + 1) * 0.5
    assert lr_at(0, args, step=0, steps_per_epoch=10) == pytest.approx(0.01, abs=1e-15)
    assert lr_at(3, args, step=5, steps_per_epoch=10) == pytest.approx(
        3.5 * (cos8 - 0.01) / 8 + 0.01, rel=1e-12
    )
    assert lr_at(8, args, step=0, steps_per_epoch=10) == pytest.approx(cos8, rel=1e-12)  # continuous at 8
    assert lr_at(50, args, step=5, steps_per_epoch=10) == pytest.approx(
        0.24 * (math.cos(math.pi * 50.5 / 100) + 1) * 0.5, rel=1e-12
    )
    # any method: a step schedule warms up to its value at W, per epoch without --lr_per_step
    step = ns(lr_type="step", lr_steps=[2.0], lr=1.0, warmup_epochs=4.0, warmup_start_lr=0.0)
    assert [lr_at(e, step) for e in range(6)] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])


def test_adamw_with_decoupled_decay_per_group():
    net = nn.Linear(3, 2)
    groups = [
        {"params": [net.weight], "lr_mult": 5.0, "decay_mult": 1.0, "name": "w"},
        {"params": [net.bias], "lr_mult": 10.0, "decay_mult": 0.0, "name": "b"},
    ]
    opt = build_optimizer(groups, ns(optimizer="adamw", lr=1e-3, weight_decay=0.02))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([5e-3, 1e-2])
    assert [g["weight_decay"] for g in opt.param_groups] == [0.02, 0.0]
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    net.weight.grad, net.bias.grad = torch.zeros_like(net.weight), torch.zeros_like(net.bias)
    opt.step()  # zero gradients: only the decoupled decay moves the weight, w *= 1 - lr * wd; the bias stays
    assert torch.allclose(net.weight, w0 * (1 - 5e-3 * 0.02), rtol=1e-6) and torch.equal(net.bias, b0)


def test_adamw_refuses_sgd_flags(capsys):
    with pytest.raises(SystemExit):
        parse_args(["kinetics", "RGB", "--model", "tada", "--arch", "tadaconvnextv2_t", "--nesterov"])
    assert "applies to --optimizer sgd" in capsys.readouterr().err
