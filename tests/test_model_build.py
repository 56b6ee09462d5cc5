"""Construction of the composed models: state_dict keys of the original, the X3D preset forward, baselines,
configuration from the command line, pretrained-weight loading."""

from __future__ import annotations

import pytest
import torch

from archs import WeightsError, create_backbone
from models import ModelConfig, build_model, config_from_dict
from ops.opts import parse_args
from tests.official import load_fixture
from tests.test_model_grads import TINY, TINY_X3D, tiny_input

CLASSES = {"an": 200, "tsm": 174, "x3d": 400}


@pytest.mark.parametrize("preset", ["an", "tsm", "x3d"])
def test_state_dict_keys_and_shapes_equal_the_original(preset):
    model = build_model(ModelConfig(preset=preset, num_classes=CLASSES[preset]))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {e["key"]: e["shape"] for e in load_fixture(f"state_dict_keys_{preset}.json")["entries"]}
    assert len(theirs) == {"an": 750, "tsm": 672, "x3d": 1754}[preset]
    assert ours == theirs


def test_x3d_preset_eval_forward():
    """The preset's published input layout (16 glance frames resized to 160, 32 of 96 candidates cropped to 128)
    on X3D nets made narrow (the full-size X3D-S / X3D-L: widths and depths in tests/test_archs.py, GFLOPs against
    the official constants in tests/test_flops.py)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="x3d", num_classes=400, x3d_overrides=TINY_X3D)).eval()
    assert torch.equal(model.global_CNN_head[0].weight, model.global_CNN.head.lin_5.weight.flatten(1))
    assert torch.equal(model.local_CNN_head[3].bias, model.local_CNN.head.projection.bias)
    clip_shapes = []
    for net in (model.global_CNN, model.local_CNN):
        original = net.featmap
        net.featmap = lambda x, f=original: clip_shapes.append(tuple(x.shape)) or f(x)
    x = torch.randn(1, 16 + 96, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert clip_shapes == [
        (1, 3, 16, 160, 160),
        (1, 3, 32, 128, 128),
    ]  # glance resized to 160, 32 patches of 128
    assert out["exit_logits"].shape == (1, 2, 400) and out["focus_indices"].shape == (1, 32)
    torch.testing.assert_close(out["logits"], out["glance_final_logits"] + out["focus_final_logits"])
    torch.testing.assert_close(out["exit_logits"][:, 0], out["glance_frame_logits"].mean(1))
    torch.testing.assert_close(out["exit_logits"][:, 1], out["logits"])
    assert out["actions"].shape == (1, 4) and out["weights"].shape == (1, 16)


@pytest.mark.parametrize("model_name,arch", [("tsm", "resnet18"), ("tsn", "mobilenetv2"), ("x3d", "x3d_s")])
def test_baselines_forward_keys_and_loss(model_name, arch):
    preset = "x3d" if model_name == "x3d" else "tsm"
    tiny = (
        dict(focus_base_width=4)
        if arch == "resnet18"
        else (
            dict(focus_width_mult=0.25)
            if arch == "mobilenetv2"
            else dict(x3d_overrides=TINY["x3d"]["x3d_overrides"])
        )
    )
    cfg = ModelConfig(
        preset=preset, model=model_name, focus_arch=arch, num_classes=5, num_segments=4, input_size=64, **tiny
    )
    model = build_model(cfg)
    keys = list(model.state_dict())
    if model_name == "x3d":
        assert keys[0].startswith("net.s1.") and "net.head.projection.weight" in keys
    else:
        assert keys[0].startswith("base_model.") and keys[-2:] == ["new_fc.weight", "new_fc.bias"]
        assert any(".net.weight" in k for k in keys) == (model_name == "tsm")  # temporal shift wraps convs
    out = model(torch.randn(2, 4, 3, 64, 64))
    assert out["logits"].shape == (2, 5) and out["exit_logits"].shape == (2, 1, 5)
    loss, parts = model.criterion()(out, torch.tensor([0, 4]))
    loss.backward()
    log_p = torch.log_softmax(out["logits"].detach().double(), dim=1)
    cross_entropy = -float(log_p[0, 0] + log_p[1, 4]) / 2  # the baselines train by plain CE on the logits
    assert float(loss.detach()) == pytest.approx(cross_entropy, rel=1e-5)
    assert parts["loss"] == pytest.approx(cross_entropy, rel=1e-5)
    assert [g["name"] for g in model.param_groups()] in (["base_model", "new_fc"], ["net"])


def test_config_from_command_line():
    tsm = ModelConfig.from_args(
        parse_args(
            [
                "somethingv2",
                "RGB",
                "--num_focus_segments",
                "8",
                "--num_input_focus_segments",
                "24",
                "--patch_size",
                "96",
            ]
        ),
        174,
    )
    assert (tsm.preset, tsm.glance_arch, tsm.focus_arch, tsm.shift, tsm.num_glance_segments) == (
        "tsm",
        "mobilenetv2",
        "resnet50",
        True,
        8,
    )
    assert (tsm.num_input_focus_segments, tsm.num_focus_segments, tsm.patch_size, tsm.dropout) == (
        24,
        8,
        96,
        0.5,
    )
    an = ModelConfig.from_args(
        parse_args(["--dataset", "minik", "--data_dir", "/d", "--num_segments", "48"]), 200
    )
    assert (an.preset, an.num_input_focus_segments, an.fc_dropout, an.norm_ratio, an.shift) == (
        "an",
        48,
        0.1,
        0.75,
        False,
    )
    assert (an.classifier_lr_ratio, an.dropout) == (20.0, 0.2)
    x3d = ModelConfig.from_args(parse_args(["kinetics", "RGB", "--shift"]), 400)
    assert (x3d.glance_arch, x3d.focus_arch, x3d.glance_size, x3d.shift, x3d.stn_lr_ratio) == (
        "x3d_s",
        "x3d_l",
        160,
        False,
        0.4,
    )
    base = ModelConfig.from_args(parse_args(["jester", "RGB", "--model", "tsm", "--arch", "resnet18"]), 27)
    assert (base.model, base.focus_arch, base.num_segments, base.shift) == ("tsm", "resnet18", 8, True)
    assert config_from_dict(an.to_dict()) == an


def test_dilated_glance_gives_the_policies_a_finer_map():
    cfg = ModelConfig(
        preset="tsm",
        **dict(TINY["tsm"], glance_arch="resnet18", glance_base_width=8, glance_size=80, patch_size=64),
        glance_output_stride=16,
    )
    model = build_model(cfg).eval()
    assert (model.map_size, model.feat_patch) == (5, 2)  # ceil(80 / 16); P * h // S = 64 * 5 // 128
    assert model.spatial_policy.encoder[-2].kernel_size == (cfg.num_glance_segments, 5, 5)
    with torch.no_grad():
        out = model(tiny_input(cfg))
    assert out["logits"].shape == (2, cfg.num_classes) and out["policy_actions"].shape == (2, 4)


def test_invalid_config_and_input_are_rejected():
    with pytest.raises(ValueError, match="num_focus_segments"):
        ModelConfig(preset="tsm", num_focus_segments=40)
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(preset="tsm", focus_arch="vgg16")
    with pytest.raises(ValueError, match="num_segments 16 is the AN form's name of N"):
        ModelConfig(preset="an", num_segments=16)
    with pytest.raises(ValueError, match="only a ResNet glance"):
        ModelConfig(preset="tsm", glance_output_stride=16)  # the preset's glance is MobileNetV2
    model = build_model(ModelConfig(preset="tsm", **TINY["tsm"]))
    with pytest.raises(ValueError, match=r"expected frames \(B, 14, 3, S, S\)"):
        model(torch.zeros(1, 8, 3, 128, 128))


def test_load_pretrained_round_trip_and_errors(tmp_path):
    cfg = ModelConfig(
        preset="tsm",
        **TINY["tsm"],
        glance_weights=str(tmp_path / "g.pth"),
        focus_weights=str(tmp_path / "f.pth"),
    )
    # ImageNet-style files: plain backbones with their own classifier and no temporal shift.
    glance = create_backbone("mobilenetv2", width_mult=0.25, last_channel=32)
    focus = create_backbone("resnet50", base_width=8)
    torch.save(glance.state_dict(), tmp_path / "g.pth")
    torch.save(focus.state_dict(), tmp_path / "f.pth")
    model = build_model(cfg).load_pretrained()
    assert torch.equal(
        model.global_CNN.base_model.features[3].conv[0].net.weight, glance.features[3].conv[0].weight
    )
    assert torch.equal(model.local_CNN.base_model.layer4[2].conv3.weight, focus.layer4[2].conv3.weight)
    untouched = build_model(ModelConfig(preset="tsm", **TINY["tsm"], pretrain="none"))
    before = untouched.local_CNN.base_model.conv1.weight.clone()
    untouched.load_pretrained()
    assert torch.equal(untouched.local_CNN.base_model.conv1.weight, before)
    missing = ModelConfig(preset="tsm", **TINY["tsm"], glance_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsError, match="nope.pth"):
        build_model(missing).load_pretrained()
    wrong = ModelConfig(preset="tsm", **TINY["tsm"], glance_weights=str(tmp_path / "f.pth"))
    with pytest.raises(WeightsError, match="does not fit"):
        build_model(wrong).load_pretrained()


def test_eval_forward_is_deterministic_and_batch_independent():
    from tests.test_model_grads import tiny_model

    model, cfg = tiny_model("an")
    model.eval()
    x = tiny_input(cfg, batch=3)
    with torch.no_grad():
        both = model(x)
        one = model(x[1:2])
    torch.testing.assert_close(both["logits"][1:2], one["logits"], atol=1e-5, rtol=1e-4)
    assert torch.equal(both["focus_indices"][1:2], one["focus_indices"])
    assert both["glance_indices"].tolist() == [list(range(1, 12, 2))] * 3  # eval: 2nd frame of each group
