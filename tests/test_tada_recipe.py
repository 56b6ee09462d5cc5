"""TAdaConv's recipe parts: its optimizer groups (by parameter name, as its construct_optimizer), the ConvNeXt
ImageNet-1k initialisation of TAdaConvNeXtV2 and the per-network recipes' model fields."""

import pytest
import torch
import torch.nn.functional as F

from archs import create_backbone
from archs.tadaconvnext import convnext_to_tadaconvnext
from models import build_model, config_from_args
from models.clipnets.model import tadaconv_param_group
from ops.engine.optim import build_optimizer, model_param_groups
from ops.opts import parse_args

TINY_CNX = dict(depths=(1, 1, 1, 1), dims=(8, 16, 16, 16), head_dim=4)


def _groups_by_name(model, args) -> dict[str, tuple[float, float]]:
    """{parameter name: (lr, weight decay)} of the optimizer built for `model` under `args`."""
    names = {id(p): n for n, p in model.named_parameters()}
    opt = build_optimizer(model_param_groups(model, args), args)
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}


def _tiny(arch: str, tmp_path):
    """A small model of `arch` (ConvNeXt: the same module names at TINY_CNX widths) and its resolved args."""
    flags = ["--focus_base_width", "8"] if arch == "tada2d_r50" else []
    args = parse_args(
        ["kinetics", "RGB", "--model", "tada", "--arch", arch, "--root_dataset", str(tmp_path), *flags]
    )
    model = build_model(config_from_args(args, num_classes=3))
    if arch != "tada2d_r50":
        model.net = create_backbone(arch, num_classes=3, num_frames=16, **TINY_CNX)
    return model, args


def test_tada2d_groups_decay_neither_norms_nor_biases(tmp_path):
    # TAda2D (tada2d_k400.yaml: LR_REDUCE unset, BN.WEIGHT_DECAY 0): every lr 0.24; no decay for BN and biases
    model, args = _tiny("tada2d_r50", tmp_path)
    got = _groups_by_name(model, args)
    wd = 1e-4
    assert got["net.backbone.conv1.a.weight"] == (0.24, wd)
    assert got["net.backbone.conv1.a_bn.weight"] == (0.24, 0.0)
    assert got["net.backbone.conv2.res_1.conv_branch.b.weight"] == (0.24, wd)  # the TAdaConv2d kernel
    assert got["net.backbone.conv2.res_1.conv_branch.b_rf.a.weight"] == (0.24, wd)  # route function
    assert got["net.backbone.conv2.res_1.conv_branch.b_rf.bn.weight"] == (0.24, 0.0)
    assert got["net.backbone.conv2.res_1.conv_branch.b_avgpool_bn.bias"] == (0.24, 0.0)
    assert got["net.head.out.weight"] == (0.24, wd) and got["net.head.out.bias"] == (0.24, 0.0)
    decayed = {n for n, (_, d) in got.items() if d}
    assert all("bn" not in n and not n.endswith("bias") for n in decayed)


def test_convnext_groups_follow_tadaconvs_name_rule(tmp_path):
    # tadaconvnextv2_tiny_k400_16f.yaml: LR_REDUCE and FINE_TUNE true -> "rf" and head weights 5x, their biases
    # 10x; names with "bn" / "norm" and biases undecayed; matched as substrings (optimizer.py)
    model, args = _tiny("tadaconvnextv2_t", tmp_path)
    got = _groups_by_name(model, args)
    lr, wd = 5e-4, 0.02
    block = "net.backbone.stages.0.0."
    assert got[block + "dwconv.weight"] == (lr, wd) and got[block + "dwconv.bias"] == (lr, 0.0)
    assert got[block + "gamma"] == (lr, wd)
    assert got[block + "norm.weight"] == (lr, 0.0) and got[block + "norm_avgpool.weight"] == (lr, 0.0)
    assert got[block + "dwconv_rf.a.weight"] == pytest.approx((5 * lr, wd))
    assert got[block + "dwconv_rf.a.bias"] == pytest.approx((10 * lr, 0.0))
    assert got[block + "dwconv_rf.b_bias.weight"] == pytest.approx((10 * lr, 0.0))  # "bias" in the name
    assert got[block + "dwconv_rf.norm.weight"] == pytest.approx((5 * lr, wd))  # "rf" first: no "bn" in it
    assert got["net.backbone.downsample_layers.0.1.weight"] == (lr, wd)  # a LayerNorm, no "norm" in its name
    assert got["net.backbone.norm.weight"] == (lr, 0.0)
    assert got["net.head.out.weight"] == pytest.approx((5 * lr, wd))
    assert got["net.head.out.bias"] == pytest.approx((10 * lr, 0.0))
    assert tadaconv_param_group("backbone.pos_embd") == "no_decay"
    assert len(got) == sum(1 for _ in model.parameters())


def _convnext_2d(sd: dict, x: torch.Tensor, dims, depths) -> torch.Tensor:
    """A 2-D ConvNeXt forward (QuickGELU, as TAdaConvNeXtV2's blocks) on images x (N, 3, H, W) with the weights
    of a ConvNeXt state_dict `sd`; returns the last stage's map (N, dims[-1], H / 32, W / 32)."""

    def ln_cf(y, p):
        return F.layer_norm(
            y.permute(0, 2, 3, 1), y.shape[1:2], sd[p + ".weight"], sd[p + ".bias"], 1e-6
        ).permute(0, 3, 1, 2)

    y = ln_cf(
        F.conv2d(x, sd["downsample_layers.0.0.weight"], sd["downsample_layers.0.0.bias"], 4),
        "downsample_layers.0.1",
    )
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i:
            d = f"downsample_layers.{i}"
            y = F.conv2d(ln_cf(y, d + ".0"), sd[d + ".1.weight"], sd[d + ".1.bias"], 2)
        for j in range(depth):
            p = f"stages.{i}.{j}."
            z = F.conv2d(y, sd[p + "dwconv.weight"], sd[p + "dwconv.bias"], padding=3, groups=dim).permute(
                0, 2, 3, 1
            )
            z = F.layer_norm(z, (dim,), sd[p + "norm.weight"], sd[p + "norm.bias"], 1e-6)
            z = F.linear(z, sd[p + "pwconv1.weight"], sd[p + "pwconv1.bias"])
            z = F.linear(z * torch.sigmoid(1.702 * z), sd[p + "pwconv2.weight"], sd[p + "pwconv2.bias"])
            y = y + (sd[p + "gamma"] * z).permute(0, 3, 1, 2)
    return y


def test_convnext_imagenet_weights_make_tadaconvnextv2_the_2d_convnext_on_every_other_frame():
    # tadaconv/utils/checkpoint.py convert_convnext_weights: stem kernel (0, w, 0) over time, other kernels gain a
    # temporal axis; route functions (b, b_bias zero) calibrate by 1 and norm_avgpool (zero weight) adds 0, so the
    # network is the 2-D ConvNeXt on frames 0, 2, 4, ... (the stem's temporal stride 2, its middle tap).
    dims, depths = TINY_CNX["dims"], TINY_CNX["depths"]
    g = torch.Generator().manual_seed(0)
    sd = {"downsample_layers.0.0.weight": torch.randn(dims[0], 3, 4, 4, generator=g) * 0.2}
    sd["downsample_layers.0.0.bias"] = torch.randn(dims[0], generator=g) * 0.1
    sd["downsample_layers.0.1.weight"], sd["downsample_layers.0.1.bias"] = (
        torch.rand(dims[0], generator=g) + 0.5,
        torch.randn(dims[0], generator=g) * 0.1,
    )
    for i in range(1, 4):
        d = f"downsample_layers.{i}"
        sd[d + ".0.weight"], sd[d + ".0.bias"] = (
            torch.rand(dims[i - 1], generator=g) + 0.5,
            torch.randn(dims[i - 1], generator=g) * 0.1,
        )
        sd[d + ".1.weight"] = torch.randn(dims[i], dims[i - 1], 2, 2, generator=g) * 0.2
        sd[d + ".1.bias"] = torch.randn(dims[i], generator=g) * 0.1
    for i, dim in enumerate(dims):
        for j in range(depths[i]):
            p = f"stages.{i}.{j}."
            sd[p + "gamma"] = torch.rand(dim, generator=g) + 0.5
            sd[p + "dwconv.weight"] = torch.randn(dim, 1, 7, 7, generator=g) * 0.2
            sd[p + "dwconv.bias"] = torch.randn(dim, generator=g) * 0.1
            sd[p + "norm.weight"], sd[p + "norm.bias"] = (
                torch.rand(dim, generator=g) + 0.5,
                torch.randn(dim, generator=g) * 0.1,
            )
            sd[p + "pwconv1.weight"] = torch.randn(4 * dim, dim, generator=g) * 0.2
            sd[p + "pwconv1.bias"] = torch.randn(4 * dim, generator=g) * 0.1
            sd[p + "pwconv2.weight"] = torch.randn(dim, 4 * dim, generator=g) * 0.2
            sd[p + "pwconv2.bias"] = torch.randn(dim, generator=g) * 0.1
    sd["norm.weight"], sd["norm.bias"] = (
        torch.rand(dims[-1], generator=g) + 0.5,
        torch.randn(dims[-1], generator=g) * 0.1,
    )
    sd["head.weight"], sd["head.bias"] = torch.randn(1000, dims[-1], generator=g), torch.zeros(1000)
    net = create_backbone("tadaconvnextv2_t", num_classes=3, num_frames=6, **TINY_CNX).eval()
    converted = net.convert_pretrained(sd)
    assert converted["backbone.stages.0.0.dwconv.weight"].shape == (1, 1, dims[0], 1, 7, 7)
    assert torch.equal(
        converted["backbone.downsample_layers.0.0.weight"][:, :, 0], torch.zeros(dims[0], 3, 4, 4)
    )
    net.load_state_dict(converted)
    x = torch.randn(2, 3, 6, 64, 64, generator=g)
    with torch.no_grad():
        fm = net.featmap(x)  # (2, C, 3, 2, 2)
        ref = torch.stack([_convnext_2d(sd, x[:, :, t], dims, depths) for t in (0, 2, 4)], dim=2)
    assert torch.allclose(fm, ref, rtol=1e-4, atol=1e-5)
    assert set(convnext_to_tadaconvnext(sd)) <= set(net.state_dict())


def test_per_network_model_fields(tmp_path):
    for arch, drop_path, boost in (
        ("tadaconvnextv2_s", 0.4, True),
        ("tadaconvnextv2_b", 0.6, True),
        ("tada2d_r50", None, False),
    ):
        args = parse_args(
            ["kinetics", "RGB", "--model", "tada", "--arch", arch, "--root_dataset", str(tmp_path)]
        )
        assert (args.drop_path, args.boost_new_lr) == (drop_path, boost)
    args = parse_args(
        [
            "kinetics",
            "RGB",
            "--model",
            "tada",
            "--arch",
            "tadaconvnextv2_t",
            "--drop_path",
            "0.1",
            "--no_boost_new_lr",
            "--root_dataset",
            "x",
        ]
    )
    assert (args.drop_path, args.boost_new_lr, args.lr) == (0.1, False, 5e-4)
