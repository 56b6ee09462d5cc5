"""Backbones: key lists equal the official ones, shapes, TSM shift vs a naive loop, numerical agreement with the
official outputs (fixture weight contract), and weight loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archs import (
    LoadResult,
    WeightsError,
    create_backbone,
    load_weights,
    make_temporal_shift,
    pretrained_path,
    temporal_shift,
)
from archs.mobilenet_v2 import MobileNetV2
from archs.resnet import resnet18, resnet50
from archs.temporal_shift import TemporalShift
from archs.x3d import X3D, round_width, x3d_s
from tests.official import contract_tensor, contract_tolerances, fixture_frame  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "official"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _entries(name: str) -> list[dict]:
    return json.loads((FIX / f"state_dict_keys_{name}.json").read_text())["entries"]


def _official_keys(name: str, prefix: str) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (e["key"][len(prefix) :], tuple(e["shape"])) for e in _entries(name) if e["key"].startswith(prefix)
    ]


def _keys(module: torch.nn.Module, drop: tuple[str, ...] = ()) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items() if not k.startswith(drop)]


def _contract(name: str, prefix: str) -> dict[str, torch.Tensor]:
    return {
        e["key"][len(prefix) :]: contract_tensor(e["key"], e["shape"])
        for e in _entries(name)
        if e["key"].startswith(prefix)
    }


def _frame(v: int, t: int) -> torch.Tensor:
    """Fixture frame (README section 2), centre crop 224 of the 320x256 frame, normalised: (3, 224, 224)."""
    x = torch.from_numpy(np.ascontiguousarray(fixture_frame(v, t)[16:240, 48:272])).permute(2, 0, 1)
    return (x.float() / 255 - MEAN) / STD


def _video(name: str) -> dict:
    return json.loads((FIX / f"{name}.json").read_text())["videos"][0]


# ---------------------------------------------------------------- key lists


def test_contract_generator_matches_fixture_checksums():
    picked = [x for x in _entries("an") if x["key"].startswith("global_CNN.features.0.")][:5]
    for e in picked + _entries("x3d")[-3:]:
        v = contract_tensor(e["key"], e["shape"])
        assert float(v.double().sum()) == pytest.approx(e["sum"], rel=0, abs=contract_tolerances(e)[0])


@pytest.mark.parametrize(
    "fixture,prefix,name,kw,drop",
    [
        ("an", "global_CNN.", "mobilenetv2", {}, ()),
        ("an", "local_CNN.", "resnet50", {}, ()),
        ("tsm", "global_CNN.base_model.", "mobilenetv2", {"shift": True, "n_segment": 8}, ("classifier.",)),
        ("tsm", "local_CNN.base_model.", "resnet50", {"shift": True, "n_segment": 12}, ("fc.",)),
        ("x3d", "global_CNN.", "x3d_s", {"num_frames": 16, "crop_size": 160}, ()),
        ("x3d", "local_CNN.", "x3d_l", {"num_frames": 32, "crop_size": 128}, ()),
    ],
)
def test_state_dict_keys_equal_official(fixture, prefix, name, kw, drop):
    # TSN replaces the backbone classifier by Dropout, hence no classifier keys under `base_model.`.
    official = _official_keys(fixture, prefix)
    assert len(official) > 300
    assert _keys(create_backbone(name, **kw), drop) == official


def test_tsm_wrapped_key_names():
    m = make_temporal_shift(resnet50(), 8)
    keys = m.state_dict().keys()
    assert "layer1.0.conv1.net.weight" in keys and "layer1.0.conv2.weight" in keys
    mb = make_temporal_shift(MobileNetV2(), 8)
    shifted = sorted(int(k.split(".")[1]) for k in mb.state_dict() if k.endswith("conv.0.net.weight"))
    assert shifted == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]
    make_temporal_shift(mb, 8)  # idempotent: no double wrapping
    assert "features.3.conv.0.net.net.weight" not in mb.state_dict()


def test_x3d_widths_and_depths():
    m = x3d_s()
    assert m.stage_depths == [3, 5, 11, 7] and m.feature_dim == 432
    assert create_backbone("x3d_l").stage_depths == [5, 10, 25, 15]
    assert [round_width(c, 0.0625, 8, 8) for c in (54, 108, 216, 432)] == [8, 8, 16, 32]
    se_blocks = [n for n, mod in m.s4.named_children() if hasattr(mod.branch2, "se")]
    assert se_blocks == [f"pathway0_res{i}" for i in range(0, 11, 2)]
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm3d)]
    assert all(b.eps == 1e-5 and b.momentum == 0.1 for b in bns)


# ---------------------------------------------------------------- shapes


def test_output_shapes():
    torch.manual_seed(0)
    with torch.no_grad():
        mb = MobileNetV2(num_classes=7).eval()
        assert mb.features(torch.randn(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
        r = resnet18(num_classes=5, base_width=8).eval()
        assert r.features(torch.randn(2, 3, 96, 96)).shape == (2, 64, 3, 3)
        assert r(torch.randn(2, 3, 96, 96)).shape == (2, 5)
        xs = x3d_s(num_classes=11).eval()
        fm = xs.featmap(torch.randn(1, 3, 4, 160, 160))
        assert fm.shape == (1, 432, 4, 5, 5)
        logits = xs.head_from_featmap(fm)
        assert logits.shape == (1, 11)
        xl = create_backbone("x3d_l").eval()
        assert xl.featmap(torch.randn(1, 3, 2, 128, 128)).shape == (1, 432, 2, 4, 4)


@pytest.mark.parametrize("output_stride, side, dilations", [(16, 5, [1, 1, 1, 2]), (8, 10, [1, 1, 2, 4])])
def test_resnet_output_stride_dilates_the_last_stages(output_stride, side, dilations):
    plain = resnet18(base_width=8).eval()
    fine = resnet18(base_width=8, output_stride=output_stride).eval()
    fine.load_state_dict(plain.state_dict())  # same keys and shapes: ImageNet files load unchanged
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        assert plain.features(x).shape == (2, 64, 3, 3)
        assert fine.features(x).shape == (2, 64, side, side)
        # the stages before the first dilated one are untouched
        stem = lambda m: m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))  # noqa: E731
        assert torch.equal(stem(plain), stem(fine))
    # torchvision's rule: a dilated stage's first block keeps the previous dilation, the others take the new one
    assert [
        layer[1].conv1.dilation[0] for layer in (fine.layer1, fine.layer2, fine.layer3, fine.layer4)
    ] == dilations
    assert fine.layer4[0].conv1.stride == (1, 1)
    assert fine.layer3[0].conv1.stride == ((1, 1) if output_stride == 8 else (2, 2))
    with pytest.raises(ValueError, match="output_stride"):
        resnet18(output_stride=4)


def test_x3d_head_is_raw_logits_of_mean_pooled_map():
    torch.manual_seed(0)
    m = create_backbone("x3d_s", depth_factor=0.34, dim_c1=4, dim_c5=32, num_classes=6).eval()
    assert isinstance(m, X3D)
    assert m.stage_depths == [1, 1, 2, 2] and m.feature_dim == 144
    fm = torch.rand(2, m.feature_dim, 3, 4, 4)
    pooled = fm.mean((2, 3, 4))
    w5 = m.head.lin_5.weight.flatten(1)
    ref = F.linear(F.relu(F.linear(pooled, w5)), m.head.projection.weight, m.head.projection.bias)
    assert torch.allclose(m.head_from_featmap(fm), ref, atol=1e-6)
    assert (m.head_from_featmap(fm).sum(1) - 1).abs().max() > 1e-3  # no softmax in eval


# ---------------------------------------------------------------- temporal shift


def _naive_shift(x: torch.Tensor, t: int, div: int) -> torch.Tensor:
    nt, c, _, _ = x.shape
    fold = c // div
    out = torch.zeros_like(x)
    for b in range(nt // t):
        for i in range(t):
            for ch in range(c):
                if ch < fold:
                    src = i + 1
                elif ch < 2 * fold:
                    src = i - 1
                else:
                    src = i
                if 0 <= src < t:
                    out[b * t + i, ch] = x[b * t + src, ch]
    return out


@pytest.mark.parametrize("t,c,div", [(4, 16, 8), (3, 10, 4), (5, 7, 8), (1, 16, 8)])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_shift_matches_naive_loops(t, c, div, fmt, monkeypatch):
    # the shift writes into uninitialised memory: make it NaN, so a place left unwritten shows
    monkeypatch.setattr(torch, "empty_like", lambda v: torch.full_like(v, float("nan")))
    x = torch.randn(2 * t, c, 3, 2, generator=torch.Generator().manual_seed(t * c))
    y = temporal_shift(x.contiguous(memory_format=fmt), t, div)
    assert torch.equal(y, _naive_shift(x, t, div))


def test_temporal_shift_module_and_gradient():
    conv = torch.nn.Conv2d(8, 8, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
    ts = TemporalShift(conv, n_segment=3, n_div=8)
    x = torch.arange(6 * 8, dtype=torch.float32).view(6, 8, 1, 1).requires_grad_()
    y = ts(x)
    assert y[0, 0, 0, 0] == x[1, 0, 0, 0] and y[2, 0, 0, 0] == 0 and y[1, 1, 0, 0] == x[0, 1, 0, 0]
    y[0, 0].sum().backward()
    assert x.grad[1, 0, 0, 0] == 1 and x.grad.sum() == 1
    with pytest.raises(ValueError, match="multiple of n_segment"):
        ts(torch.zeros(4, 8, 1, 1))


# ---------------------------------------------------------------- numbers vs the official code


def test_an_mobilenetv2_glance_logits_match_official():
    v = _video("an_gain1")
    net = MobileNetV2().eval()
    load_weights(net, _contract("an", "global_CNN."))
    fc = _contract("an", "global_CNN_fc.1.")
    x = torch.stack([_frame(0, t) for t in v["frames"]["glance"][:2]])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            feat = net.features(x).mean((2, 3))
    finally:
        torch.set_num_threads(threads)  # the thread count is process-wide: later tests get theirs back
    logits = F.linear(feat, fc["weight"], fc["bias"])
    ref = torch.tensor(v["global_logits_per_glance_frame"][:2])
    assert torch.allclose(logits, ref, atol=1e-5, rtol=1e-4)


def test_an_resnet50_focus_logits_match_official():
    v = _video("an_gain1")
    net = resnet50().eval()
    load_weights(net, _contract("an", "local_CNN."))
    fc = _contract("an", "local_CNN_fc.1.")
    a = torch.tensor(v["focus_actions"][0]).view(1, 4)
    p, s = 128, 224
    scale = a[:, 2:4] * (224 - 96) / p + 96 / p  # spec 3.2 deformable patch
    y1 = a[:, 0] * (s - p * scale[:, 0])
    x1 = a[:, 1] * (s - p * scale[:, 1])
    y2, x2 = y1 + p * scale[:, 0], x1 + p * scale[:, 1]
    zero = torch.zeros_like(y1)
    theta = torch.stack(
        [
            torch.stack([p * scale[:, 1] / s, zero, -1 + (x1 + x2) / s], 1),
            torch.stack([zero, p * scale[:, 0] / s, -1 + (y1 + y2) / s], 1),
        ],
        1,
    )
    frame = _frame(0, v["focus_frame_numbers"][0]).unsqueeze(0)
    patch = F.grid_sample(frame, F.affine_grid(theta, [1, 3, p, p], align_corners=False), align_corners=False)
    with torch.no_grad():
        logits = F.linear(net.featvec(patch), fc["weight"], fc["bias"])
    assert torch.allclose(logits, torch.tensor(v["local_logits_per_focus_frame"][:1]), atol=1e-5, rtol=1e-4)


def test_tsm_mobilenetv2_glance_logits_match_official():
    v = _video("tsm_gain1")
    net = make_temporal_shift(MobileNetV2(num_classes=1000).eval(), n_segment=8)
    sd = _contract("tsm", "global_CNN.base_model.")
    result = load_weights(net, sd, strict=False)
    assert result.missing == ["classifier.weight", "classifier.bias"] and not result.unexpected
    fc = _contract("tsm", "global_CNN.new_new_fc.")
    x = torch.stack([_frame(0, t) for t in v["frames"]["glance"]])
    with torch.no_grad():
        feat = net.features(x).mean((2, 3))
    logits = F.linear(feat, fc["weight"], fc["bias"])
    assert torch.allclose(logits, torch.tensor(v["glance_reg_logits_per_frame"][0]), atol=1e-5, rtol=1e-4)
    assert float(feat.double().sum()) == pytest.approx(v["global_featvec_stats"]["sum"], rel=1e-5)


# ---------------------------------------------------------------- weight loading


def _tiny() -> torch.nn.Module:
    return resnet18(num_classes=3, base_width=4)


def test_load_weights_module_prefix_and_model_state(tmp_path):
    src = _tiny()
    sd = src.state_dict()
    f1 = tmp_path / "ddp.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3}, f1)
    dst = _tiny()
    assert load_weights(dst, f1) == LoadResult([], [], [])
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), sd.values()))
    f2 = tmp_path / "x.pyth"
    torch.save({"model_state": sd, "cfg": "yaml text", "epoch": 1}, f2)
    dst2 = _tiny()
    load_weights(dst2, f2)
    assert torch.equal(dst2.fc.weight, src.fc.weight)
    f3 = tmp_path / "full.pth.tar"
    torch.save({"state_dict": {"global_CNN." + k: v for k, v in sd.items()}}, f3)
    dst3 = _tiny()
    load_weights(dst3, f3, prefix="global_CNN.")
    assert torch.equal(dst3.conv1.weight, src.conv1.weight)
    dst4 = _tiny()
    load_weights(dst4, f3, prefix_map={"global_CNN.": ""})
    assert torch.equal(dst4.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var)
    with pytest.raises(WeightsError, match="no key starts with prefix 'local_CNN.'"):
        load_weights(_tiny(), f3, prefix="local_CNN.")


def test_load_weights_plain_into_tsm_wrapped(tmp_path):
    src = _tiny()
    f = tmp_path / "plain.pth"
    torch.save(src.state_dict(), f)
    dst = make_temporal_shift(_tiny(), 4)
    load_weights(dst, f)
    assert torch.equal(dst.layer2[1].conv1.net.weight, src.layer2[1].conv1.weight)


def test_load_weights_errors_name_file_and_keys(tmp_path):
    sd = _tiny().state_dict()
    sd.pop("layer1.0.bn1.running_mean")
    sd["extra.weight"] = torch.zeros(1)
    sd["fc.weight"] = torch.zeros(9, 32)
    f = tmp_path / "bad.pth"
    torch.save(sd, f)
    with pytest.raises(WeightsError) as err:
        load_weights(_tiny(), f)
    msg = str(err.value)
    assert str(f) in msg
    assert "missing keys (1):\n    layer1.0.bn1.running_mean" in msg
    assert "unexpected keys (1):\n    extra.weight" in msg
    assert "fc.weight: file (9, 32) vs module (3, 32)" in msg
    dst = _tiny()
    before = dst.fc.weight.clone()
    res = load_weights(dst, f, strict=False)
    assert res.missing == ["layer1.0.bn1.running_mean"] and res.unexpected == ["extra.weight"]
    assert torch.equal(dst.fc.weight, before) and torch.equal(dst.conv1.weight, sd["conv1.weight"])
    with pytest.raises(WeightsError, match="not found"):
        load_weights(_tiny(), tmp_path / "nope.pth")


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_weights_file_that_runs_code_or_is_damaged_is_refused_by_name(tmp_path):
    marker = tmp_path / "MARKER"
    sd = _tiny().state_dict()
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": sd, "note": _RunsShell(marker)}, evil)
    with pytest.raises(WeightsError) as err:
        load_weights(_tiny(), evil)
    msg = str(err.value)
    assert str(evil) in msg and "would run code from the file" in msg and "plain state_dict" in msg
    assert not marker.exists()
    good = tmp_path / "good.pth"
    torch.save(sd, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError) as err:
        load_weights(_tiny(), cut)
    assert str(cut) in str(err.value) and "not a readable torch.save file" in str(err.value)
    dst = _tiny()
    load_weights(dst, good)
    assert torch.equal(dst.conv1.weight, sd["conv1.weight"])


def test_pretrained_path_missing_file_says_where(tmp_path):
    with pytest.raises(WeightsError) as err:
        pretrained_path("resnet50", root=tmp_path)
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in msg
    assert str(tmp_path / "ckpt" / "resnet50-0676ba61.pth") in msg
    with pytest.raises(WeightsError, match="x3d_models/x3d_l.pyth"):
        pretrained_path("x3d_l", root=tmp_path)
    assert (
        pretrained_path("mobilenetv2", root=tmp_path, must_exist=False).name
        == "mobilenetv2_1.0-f2a8633.pth.tar"
    )
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("vgg16")
