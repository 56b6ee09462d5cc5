"""TAdaConv layers and TAda2D: the calibrated convolution against explicit per-(video, frame) 2-D convolutions,
the route function's initial output, and TAda2D initialised from a factorised 2-D ResNet-50 checkpoint being that
2-D network applied to every frame (the TAdaConv README's property) until its route functions learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archs import RouteFuncMLP, TAdaConv2d, create_backbone, factorize_resnet_weights, resnet50


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: as fast on 2 cores, and far faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("cal_dim", ["cin", "cout"])
def test_tadaconv2d_is_a_per_frame_conv_with_calibrated_weights(cal_dim):
    torch.manual_seed(0)
    groups = 1 if cal_dim == "cin" else 2  # 'cin' calibrates all C_in channels of each kernel (groups 1)
    conv = TAdaConv2d(6, 4, [1, 3, 3], [1, 2, 2], [0, 1, 1], groups=groups, bias=True, cal_dim=cal_dim)
    x = torch.randn(2, 6, 3, 9, 9)
    channels = 6 if cal_dim == "cin" else 4
    alpha = 1 + 0.5 * torch.randn(2, channels, 3, 1, 1)
    alpha_b = 1 + 0.5 * torch.randn(2, 4, 3, 1, 1)
    out, out_b = conv(x, alpha), conv(x, [alpha, alpha_b])
    w = conv.weight[0, 0]  # (C_out, C_in / groups, 3, 3)
    for n in range(2):
        for t in range(3):
            a = alpha[n, :, t, 0, 0]
            wt = w * (a[None, :, None, None] if cal_dim == "cin" else a[:, None, None, None])
            ref = F.conv2d(x[n, :, t][None], wt, conv.bias[0, 0], stride=2, padding=1, groups=groups)[0]
            assert torch.allclose(out[n, :, t], ref, atol=1e-5)
            bias = conv.bias[0, 0] * alpha_b[n, :, t, 0, 0]
            ref_b = F.conv2d(x[n, :, t][None], wt, bias, stride=2, padding=1, groups=groups)[0]
            assert torch.allclose(out_b[n, :, t], ref_b, atol=1e-5)
    assert out.shape == (2, 4, 3, 5, 5) and conv.weight.shape == (1, 1, 4, 6 // groups, 3, 3)


def test_route_function_starts_at_one_and_the_readme_usage_runs():
    rf = RouteFuncMLP(c_in=64, ratio=4, kernels=[3, 3])
    conv = TAdaConv2d(64, 64, kernel_size=[1, 3, 3], stride=[1, 1, 1], padding=[0, 1, 1], bias=False)
    x = torch.randn(2, 64, 5, 8, 8)
    alpha = rf(x)
    assert alpha.shape == (2, 64, 5, 1, 1) and torch.equal(alpha, torch.ones_like(alpha))
    plain = F.conv3d(x, conv.weight[0, 0].unsqueeze(2), padding=(0, 1, 1))
    assert torch.allclose(conv(x, rf(x)), plain, atol=1e-5)
    with pytest.raises(ValueError, match="temporal kernel"):
        TAdaConv2d(4, 4, [3, 3, 3])


def _random_resnet50(base_width: int) -> dict[str, torch.Tensor]:
    """A torchvision-layout ResNet-50 state_dict (archs.resnet50 keys) with random weights and BN statistics."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in resnet50(base_width=base_width).state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = v
        elif k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.dim() > 1:
            sd[k] = torch.randn(v.shape, generator=g) * (1.0 / v[0].numel()) ** 0.5
        else:
            sd[k] = 0.1 * torch.randn(v.shape, generator=g) + (1.0 if k.endswith("weight") else 0.0)
    return sd


def _bn(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                        sd[f"{name}.bias"], False, 0.0, 1e-5)  # fmt: skip


def _per_frame_resnet50(sd: dict, frames: torch.Tensor) -> torch.Tensor:
    """The 2-D ResNet-50 of `sd` on frames (M, 3, H, W), with TAda2D's topology: no max-pool, the first block of
    every stage (res2 included) strided. Returns the last map (M, C, H/32, W/32)."""
    x = F.relu(_bn(F.conv2d(frames, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
    for layer, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        for i in range(blocks):
            p, stride = f"layer{layer}.{i}", 2 if i == 0 else 1
            out = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
            out = F.relu(
                _bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2")
            )
            out = _bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            x = F.relu(out + x)
    return x


def test_tada2d_at_initialisation_is_the_factorised_2d_resnet50_on_every_frame():
    sd2d = _random_resnet50(base_width=8)
    converted = factorize_resnet_weights(sd2d)
    assert converted["backbone.conv2.res_1.conv_branch.b.weight"].shape == (1, 1, 8, 8, 3, 3)
    assert converted["backbone.conv1.a.weight"].shape == (8, 3, 1, 7, 7)
    torch.manual_seed(0)
    net = create_backbone("tada2d_r50", num_classes=5, base_width=8)
    untouched = {k for k in net.state_dict() if k not in converted}  # keep their initial values (official)
    assert untouched and all(
        ".b_rf." in k or ".b_avgpool_bn." in k or k.startswith("head.") for k in untouched
    )
    net.load_state_dict(net.convert_pretrained(sd2d), strict=True)
    net.eval()
    x = torch.randn(2, 3, 5, 64, 64)
    with torch.no_grad():
        fm = net.featmap(x)  # (2, 256, 5, 2, 2)
        ref = _per_frame_resnet50(sd2d, x.transpose(1, 2).reshape(10, 3, 64, 64))
        ref = ref.view(2, 5, *ref.shape[1:]).transpose(1, 2)
        assert torch.allclose(fm, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        perm = torch.tensor([3, 0, 4, 2, 1])
        assert torch.allclose(net.featmap(x[:, :, perm]), fm[:, :, perm], atol=1e-4 * fm.abs().max().item())
        # Once a route function and the temporal aggregation are non-zero, frames see their neighbours.
        block = net.backbone.conv3.res_1.conv_branch
        block.b_rf.b.weight.normal_(0, 0.5)
        block.b_avgpool_bn.weight.fill_(1.0)
        moved = net.featmap(x[:, :, perm]) - net.featmap(x)[:, :, perm]
        assert moved.abs().max().item() > 1e-2 * fm.abs().max().item()


def test_factorisation_refuses_a_foreign_state_dict():
    with pytest.raises(KeyError, match="not a torchvision ResNet"):
        factorize_resnet_weights({"features.0.weight": torch.zeros(1)})
