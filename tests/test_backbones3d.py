"""Efficient-3DCNNs and TAdaConv networks against the official code's fixtures (tests/fixtures/backbones3d): the
state_dict keys, shapes and order, parameter counts, logits under both weight rules, the pooled features and the
fvcore GFLOPs; other widths / depths against the counts the fixtures' README lists; released-style checkpoints
loading strictly; the clip-length rules."""

from __future__ import annotations

import json

import pytest
import torch

from archs import create_backbone, load_weights
from archs.e3d_common import global_pool
from models.core.flops import count_macs
from tests.backbone_fixtures import FIXTURES, apply_rule, build, fixture_input, load

E3D_LIGHT = [
    "mobilenet_0.5x",
    "mobilenet_1.0x",
    "mobilenet_1.5x",
    "mobilenet_2.0x",
    "mobilenetv2_0.2x",
    "mobilenetv2_0.7x",
    "mobilenetv2_1.0x",
    "shufflenet_0.5x_g3",
    "shufflenet_1.0x_g3",
    "shufflenet_1.5x_g3",
    "shufflenetv2_0.25x",
    "shufflenetv2_0.5x",
    "shufflenetv2_1.0x",
    "shufflenetv2_2.0x",
    "squeezenet_1.1",
    "resnet18_A",
    "resnet18_B",
]
E3D_HEAVY = ["resnet50_A", "resnet50_B", "resnet101_A", "resnet101_B"]
TADA = "tada2d_r50_8x8_k400"
ALL = E3D_LIGHT + E3D_HEAVY + [TADA]
# The smallest network of each family: plain-rule logits and pooled features too.
PLAIN = ["mobilenet_0.5x", "mobilenetv2_0.2x", "shufflenet_0.5x_g3", "shufflenetv2_0.25x", "squeezenet_1.1"]
PLAIN += ["resnet18_A", "resnet18_B"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: as fast on 2 cores, and far faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fanin_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    # The fixtures' README tolerance: |d| <= 1e-4 * max|ref| + 1e-5 (deep nets reach logits of 1e4).
    assert (got - ref).abs().max().item() <= 1e-4 * ref.abs().max().item() + 1e-5


@pytest.mark.parametrize("name", ALL)
def test_state_dict_keys_shapes_order_and_parameter_count(name):
    fx = load(name)
    net = build(name, fx["num_classes"])
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == fx["keys"]
    assert sum(p.numel() for p in net.parameters()) == fx["params"]


@pytest.mark.parametrize("name", E3D_LIGHT)
def test_fanin_logits_and_gflops_equal_the_official_code(name):
    fx = load(name)
    net = apply_rule(build(name, fx["num_classes"]), "fanin", fx)
    x = fixture_input(fx["input_shape"])
    with torch.no_grad():
        logits = net(x)[0]
    _fanin_close(logits, torch.tensor(fx["logits_fanin_rule"]))
    # fvcore multiply-accumulates of convs and linears (BN and pools not counted): the framework's convention.
    gflops = count_macs(net, x) / 1e9
    assert gflops == pytest.approx(fx["gflops_fvcore_framework_convention"], rel=1e-6)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_rule_logits_and_pooled_features(name):
    fx = load(name)
    net = apply_rule(build(name, fx["num_classes"]), "plain")
    with torch.no_grad():
        fm = net.featmap(fixture_input(fx["input_shape"]))
        logits = net.head_from_featmap(fm)[0]
    assert torch.allclose(logits, torch.tensor(fx["logits"]), rtol=0, atol=1e-6)
    if fx.get(
        "penultimate_features"
    ):  # the whole-map average equals the original's fixed AvgPool at 16 x 112^2
        assert torch.allclose(global_pool(fm)[0], torch.tensor(fx["penultimate_features"]), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", E3D_HEAVY)
def test_heavy_fanin_logits_and_gflops(name):
    fx = load(name)
    net = apply_rule(build(name, fx["num_classes"]), "fanin", fx)
    x = fixture_input(fx["input_shape"])
    with torch.no_grad():
        _fanin_close(net(x)[0], torch.tensor(fx["logits_fanin_rule"]))
    assert count_macs(net, x) / 1e9 == pytest.approx(fx["gflops_fvcore_framework_convention"], rel=1e-6)


def test_tada2d_equals_the_official_code():
    """Fan-in and plain-rule logits (the official `head.out` output) and pooled features, the official eval
    softmax from the same logits, fvcore GFLOPs at the 224^2 training crop and at the 256^2 test crop, where the
    published 43 GFLOPs per view come from (43.13)."""
    fx = load(TADA)
    net = apply_rule(build(TADA, 400), "fanin", fx)
    x = fixture_input(fx["input_shape"])
    with torch.no_grad():
        logits = net(x)[0]
    _fanin_close(logits, torch.tensor(fx["logits_fanin_rule"]))
    probs = torch.tensor(fx["official_eval_output_softmax_fanin_rule"])
    assert torch.allclose(logits.softmax(-1), probs, rtol=1e-4, atol=1e-7)
    apply_rule(net, "plain")
    with torch.no_grad():
        fm = net.featmap(x)
        assert torch.allclose(net.head_from_featmap(fm)[0], torch.tensor(fx["logits"]), rtol=0, atol=1e-6)
        assert torch.allclose(net.backbone.pool(fm)[0], torch.tensor(fx["penultimate_features"]), atol=1e-6)
    assert count_macs(net, x) / 1e9 == pytest.approx(fx["gflops_fvcore_framework_convention"], rel=1e-6)
    crop = fx["test_crop"]
    assert count_macs(net, torch.zeros(crop["input_shape"])) / 1e9 == pytest.approx(
        crop["gflops_fvcore_framework_convention"], rel=1e-6
    )


def test_eval_softmax_is_an_option_and_logits_are_the_default():
    net = create_backbone("tada2d_r50", num_classes=5, base_width=8, depths=(1, 1, 1, 1))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        logits = net.eval()(x)
        net.eval_softmax = True
        assert torch.allclose(net(x), logits.softmax(-1))
        train_out = net.train()(x)  # in training the option changes nothing
    for out in (logits, train_out):  # logits, not probabilities
        assert out.shape == (2, 5) and not torch.allclose(out.sum(-1), torch.ones(2))


def test_tadaconvnextv2_t_equals_the_official_code_on_a_small_clip():
    fx = json.loads((FIXTURES / "tadaconvnextv2_t_small_input.json").read_text())
    net = create_backbone("tadaconvnextv2_t", num_classes=400)
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == fx[
        "keys"
    ]  # 434, `gamma` first per block
    assert sum(p.numel() for p in net.parameters()) == fx["params"]
    apply_rule(net, "fanin", fx)
    with torch.no_grad():
        logits = net(fixture_input(fx["input_shape"]))
    _fanin_close(logits, torch.tensor(fx["logits_fanin_rule"]))


# Networks without a shared fixture: parameter counts and fvcore GFLOPs (conv + linear, LayerNorm and matmul for
# ConvNeXt) as the fixtures' README lists them for the official code (sections 5 and 6).
README_COUNTS = [
    ("mobilenetv2_0.45x", 600, (1, 3, 16, 112, 112), 1.400e6, 0.1580),
    ("shufflenet_2.0x_g3", 600, (1, 3, 16, 112, 112), 4.759e6, 0.5145),
    ("shufflenetv2_1.5x", 600, (1, 3, 16, 112, 112), 3.162e6, 0.2809),
]


@pytest.mark.parametrize("name,classes,shape,params,gflops", README_COUNTS)
def test_other_widths_match_the_official_counts(name, classes, shape, params, gflops):
    net = build(name, classes).eval()
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(
        params, abs=500
    )  # listed in units of 1e3
    assert count_macs(net, torch.zeros(shape)) / 1e9 == pytest.approx(gflops, abs=5e-5)  # 4 decimals listed


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,shape,params,gflops",
    [
        ("resnext101_B_c32", (1, 3, 16, 112, 112), 48_750_616, 9.5681),
        ("tada2d_r50_16x5", (1, 3, 16, 256, 256), 27_485_472, 86.250),
        ("tadaconvnextv2_t_16f", (1, 3, 16, 256, 256), 45_971_488, 47.217),
        ("tadaconvnextv2_s_16f", (1, 3, 16, 256, 256), 82.25e6, 91.66),
        ("tadaconvnextv2_b_16f", (1, 3, 16, 256, 256), 145.69e6, 161.78),
    ],
)
def test_heavy_networks_match_the_official_counts(name, shape, params, gflops):
    net = build(name, 600 if name.startswith("resnext") else 400).eval()
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(params, abs=5e3)
    assert count_macs(net, torch.zeros(shape)) / 1e9 == pytest.approx(gflops, abs=0.005)


def test_released_checkpoints_load_strictly(tmp_path):
    """An Efficient-3DCNNs file ({'state_dict': {'module.' + k}} from DataParallel, plus epoch / arch /
    optimizer / best_prec1) and a TAdaConv file ({'model_state': ...}) load with strict=True."""
    fx = load("mobilenetv2_0.2x")
    src = apply_rule(build("mobilenetv2_0.2x"), "fanin", fx)
    ckpt = {
        "epoch": 3,
        "arch": "mobilenetv2",
        "state_dict": {"module." + k: v for k, v in src.state_dict().items()},
        "optimizer": {"state": {}, "param_groups": []},
        "best_prec1": torch.tensor(50.65),
    }
    torch.save(ckpt, tmp_path / "kinetics_mobilenetv2_0.2x_RGB_16_best.pth")
    net = build("mobilenetv2_0.2x")
    result = load_weights(net, tmp_path / "kinetics_mobilenetv2_0.2x_RGB_16_best.pth", strict=True)
    assert result.missing == result.unexpected == result.mismatched == []
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in net.state_dict().items())

    tada = create_backbone("tada2d_r50", num_classes=174, base_width=8, depths=(1, 1, 1, 1))
    torch.save({"epoch": 64, "model_state": tada.state_dict(), "cfg": "{}"}, tmp_path / "ssv2.pyth")
    other = create_backbone("tada2d_r50", num_classes=174, base_width=8, depths=(1, 1, 1, 1))
    load_weights(other, tmp_path / "ssv2.pyth", strict=True)
    assert all(torch.equal(v, tada.state_dict()[k]) for k, v in other.state_dict().items())


@pytest.mark.parametrize(
    "name,kw",
    [
        ("mobilenet_3d", dict(width_mult=0.25)),
        ("mobilenetv2_3d", dict(width_mult=0.2)),
        ("shufflenet_3d", dict(width_mult=0.5, groups=3)),
        ("shufflenetv2_3d", dict(width_mult=0.25)),
        ("squeezenet_3d", dict(version=1.0)),
    ],
)
def test_without_temporal_strides_every_frame_keeps_its_features(name, kw):
    """temporal_stride=False keeps T (16 frames -> 16 maps) with the same state_dict; the published nets end at
    T' = 1 (16 frames reduced 16x); the head pools any clip size."""
    x = torch.randn(1, 3, 16, 64, 64)
    a = create_backbone(name, num_classes=5, **kw).eval()
    b = create_backbone(name, num_classes=5, temporal_stride=False, **kw).eval()
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [
        (k, v.shape) for k, v in b.state_dict().items()
    ]
    with torch.no_grad():
        assert a.featmap(x).shape[2] == 1 and b.featmap(x).shape[2] == 16
        assert b(x).shape == (1, 5) and a(torch.randn(2, 3, 16, 64, 48)).shape == (2, 5)


def test_clip_length_rules():
    with pytest.raises(ValueError, match=">= 3 frames"):
        create_backbone("tada2d_r50", num_frames=2)
    with pytest.raises(ValueError, match=">= 5 frames"):
        create_backbone("tadaconvnextv2_t", num_frames=4)
    net = create_backbone("tada2d_r50", num_classes=3, base_width=8, depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 3, 32, 32)).shape == (1, 3)
        with pytest.raises(RuntimeError, match="smaller than kernel size"):  # the temporal pool needs T >= 3
            net(torch.randn(1, 3, 2, 32, 32))
    with pytest.raises(ValueError, match="ShuffleNetV2 width_mult"):
        create_backbone("shufflenetv2_3d", width_mult=0.75)
    with pytest.raises(ValueError, match="groups"):
        create_backbone("shufflenet_3d", groups=5)
