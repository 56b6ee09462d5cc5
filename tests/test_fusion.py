"""Conv + ReLU / ReLU6 / residual-add fusion of the deploy path (ops/tools/fusion.py): the fused model gives
the unfused deploy model's outputs up to a few float32 ulps, for every preset's tiny model, and the fallback
(autograd / non-oneDNN) path computes the same function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archs.resnet import resnet50
from archs.temporal_shift import make_temporal_shift
from ops.tools.fusion import FusedConv2d, FusedResBlock, fuse_conv_activations, fusion_available
from ops.tools.inference import deploy_model, fold_batchnorm, normalize_frames, predict_with_exit
from tests.test_model_grads import tiny_input, tiny_model

pytestmark = pytest.mark.skipif(not fusion_available(), reason="torch built without oneDNN")
EPS = torch.finfo(torch.float32).eps


def _ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / (EPS * b.abs().max()))


@pytest.mark.parametrize("preset", ["an", "tsm", "x3d"])
def test_fused_deploy_path_equals_the_unfused_one(preset):
    model, cfg = tiny_model(preset)
    model.eval()
    x = (255 * tiny_input(cfg, batch=3).sigmoid()).to(torch.uint8)  # raw frames, as the loader gives them
    plain, fused = deploy_model(model), deploy_model(model, fuse=True)
    n = sum(isinstance(m, FusedConv2d) for m in fused.modules())
    if preset in ("an", "tsm"):  # MobileNetV2 glance, ResNet focus
        assert n > 10 and any(isinstance(m, FusedResBlock) for m in fused.modules())
    never = [1e8] * (model.num_exits - 1) + [-1e8]
    ref = predict_with_exit(plain, x, never, prepare=normalize_frames)[0]
    out = predict_with_exit(fused, x, never, prepare=normalize_frames)[0]
    assert _ulps(out, ref) < 64


def test_fused_bottlenecks_with_temporal_shift_match_and_fall_back_alike():
    torch.manual_seed(0)
    net = make_temporal_shift(resnet50(num_classes=10, base_width=8), n_segment=4).eval()
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            (
                m.running_mean.uniform_(-0.2, 0.2),
                m.running_var.uniform_(0.5, 1.5),
                m.weight.data.uniform_(0.5, 1.5),
            )
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        fold_batchnorm(net)
        assert fuse_conv_activations(net) == 3 * 16 + 0  # every bottleneck conv (stem and downsample unfused)
        out = net(x)
    assert _ulps(out, ref) < 64
    slow = net(x.requires_grad_())  # autograd: the unfused ops
    assert _ulps(slow.detach(), ref) < 64
    slow.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
