"""ResKD (models/reskd/distill.py): the KD and classification terms against the official loss code's outputs
(tests/fixtures/reskd/reskd.json), the in-model resize, the frozen teacher and ResKD's optimizer groups."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.core.losses import multi_hot_ce
from models.reskd.distill import feature_mse, position_kl, position_logits, resize_frames, upsample_map
from ops.engine.optim import rkd_param_groups
from tests.official import contract_tensor

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "reskd" / "reskd.json").read_text())
# The inputs are regenerated from their seeds: torch.randn may differ by a few float32 ulps across CPU
# instruction sets (tests/official.py), so losses are compared at rtol 1e-5 (a wrong reduction or weight moves
# them by a factor, a wrong label by ~1e-2).
RTOL = 1e-5


def _randn(case: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Returns the fixture's input `name` of `case` (its README section 3: randn seeded by crc32 of the path)."""
    g = torch.Generator().manual_seed(zlib.crc32(f"reskd/{case}/{name}".encode()))
    return torch.randn(shape, generator=g)


def _fc(prefix: str, out_features: int, in_features: int) -> nn.Linear:
    fc = nn.Linear(in_features, out_features)
    with torch.no_grad():
        fc.weight.copy_(contract_tensor(f"{prefix}.weight", (out_features, in_features)))
        fc.bias.copy_(contract_tensor(f"{prefix}.bias", (out_features,)))
    return fc


def test_a1_multi_hot_ce_and_feature_mse_equal_the_official_head():
    """RKD2DHead on ActivityNet-like data: multi-hot CE sums a video's labels' CE; MSE over all elements x 100."""
    case = FIXTURE["A1_rkd2d_actnet_multihot"]
    n, t, c = 3, 16, 64
    x = _randn("A1", "x", (n * t, c, 4, 4))
    ori = _randn("A1", "ori", (n * t, c, 7, 7))
    # the 2-D head: average pool, average over T (consensus), fc (eval: no dropout)
    with torch.no_grad():
        score = _fc("cls_head.fc_cls", 200, c)(x.mean((2, 3)).view(n, t, c).mean(1))
    assert float(score.detach().sum()) == pytest.approx(case["cls_score_checksum"]["sum"], abs=1e-4)
    labels = torch.tensor([[3, 17], [5, -1], [199, -1]])  # padded multi-label targets of the framework
    loss_cls = multi_hot_ce(score, labels)
    assert float(loss_cls) == pytest.approx(case["losses"]["loss_cls"], rel=RTOL)
    # a video with two labels adds both CEs (not their mean)
    log_p = F.log_softmax(score.detach(), -1)
    by_hand = -(log_p[0, 3] + log_p[0, 17] + log_p[1, 5] + log_p[2, 199]) / 3
    assert float(loss_cls) == pytest.approx(float(by_hand), rel=1e-6)

    # the head receives the up-sampled student map ("rebuild", an input of its own in the fixture) and the teacher's
    rebuild = _randn("A1", "rebuild", (n, t, c, 7, 7)).requires_grad_(True)
    loss_kd = feature_mse(rebuild, ori.view(n, t, c, 7, 7), 100.0)
    assert loss_kd.item() == pytest.approx(case["losses"]["loss_kd"], rel=RTOL)
    loss_kd.backward()
    # d/d(rebuild) of w * mean((rebuild - ori)^2) = 2 w (rebuild - ori) / numel
    expected = 200.0 * (rebuild.detach() - ori.view(n, t, c, 7, 7)) / ori.numel()
    torch.testing.assert_close(rebuild.grad, expected, rtol=1e-5, atol=1e-9)


def test_feature_upsampling_equals_the_official_backbone_wrapper():
    """RKD.forward_train's f_s -> 7x7 (D2: 2-D maps (N*T, C, 4, 4); D3: 3-D (N, C, T, 4, 4), T kept)."""
    arrays = np.load(Path(__file__).parent / "fixtures" / "reskd" / "reskd_upsample.npz")
    low, rebuild = torch.from_numpy(arrays["D2_low"]), torch.from_numpy(arrays["D2_rebuild"])
    ours = upsample_map(low.unsqueeze(1), (7, 7)).squeeze(1)  # (B, T=1, C, h, w)
    torch.testing.assert_close(ours, rebuild, rtol=1e-6, atol=1e-6)
    low, rebuild = torch.from_numpy(arrays["D3_low"]), torch.from_numpy(arrays["D3_rebuild"])
    ours = upsample_map(low.transpose(1, 2), (7, 7)).transpose(1, 2)
    torch.testing.assert_close(ours, rebuild, rtol=1e-6, atol=1e-6)


def test_b_5d_features_hard_ce_equal_the_official_3d_head():
    """RKD3DHead (SlowOnly-like, (N, C, T, h, w) features): T is kept, only h, w are up-sampled."""
    case = FIXTURE["B_rkd3d_k400"]
    x = _randn("B", "x", (2, 64, 8, 4, 4))
    ori = _randn("B", "ori", (2, 64, 8, 7, 7))
    with torch.no_grad():
        score = _fc("cls_head.fc_cls", 400, 64)(x.mean((2, 3, 4)))
    assert float(score.sum()) == pytest.approx(case["cls_score_checksum"]["sum"], abs=1e-4)
    assert float(multi_hot_ce(score, torch.tensor([7, 399]))) == pytest.approx(
        case["losses"]["loss_cls"], rel=RTOL
    )
    assert float(F.cross_entropy(score, torch.tensor([7, 399]))) == pytest.approx(
        case["losses"]["loss_cls"], rel=RTOL
    )
    # ours is per frame (B, T, C, h, w)
    rebuild = _randn("B", "rebuild", (2, 64, 8, 7, 7))
    loss_kd = feature_mse(rebuild.transpose(1, 2), ori.transpose(1, 2), 100.0)
    assert float(loss_kd) == pytest.approx(case["losses"]["loss_kd"], rel=RTOL)


def test_c_position_kl_equals_the_official_swin_head_and_its_gradient():
    """GeneralRKD3DHead: KLDivLoss(reduction='mean') divides by positions x classes; weight 200, T = 2."""
    case = FIXTURE["C_grkd3d_swin"]
    x = _randn("C", "x", (2, 768, 2, 4, 4))
    ori = _randn("C", "ori", (2, 1024, 2, 7, 7))
    fc_s, fc_t = _fc("cls_head.fc_cls", 400, 768), _fc("teacher.cls_head.fc_cls", 400, 1024)
    with torch.no_grad():
        score = fc_s(x.mean((2, 3, 4)))
    assert float(F.cross_entropy(score, torch.tensor([11, 222]))) == pytest.approx(
        case["losses"]["loss_cls"], rel=RTOL
    )
    rebuild = _randn("C", "rebuild", (2, 768, 2, 7, 7))
    z_s = position_logits(rebuild.transpose(1, 2), fc_s).detach().requires_grad_(True)
    with torch.no_grad():
        z_t = position_logits(ori.transpose(1, 2), fc_t)
    assert z_s.shape == (case["derived_not_official"]["positions"], 400)
    loss = position_kl(z_s, z_t, 200.0, 2.0)
    assert loss.item() == pytest.approx(case["losses"]["loss_kd"], rel=RTOL)
    loss.backward()
    # d/dz_s of w T^2 sum KL / (P K) = w T (softmax(z_s/T) - softmax(z_t/T)) / (P K)
    expected = 200.0 * 2.0 * (F.softmax(z_s.detach() / 2, -1) - F.softmax(z_t / 2, -1)) / z_t.numel()
    torch.testing.assert_close(z_s.grad, expected, rtol=1e-4, atol=1e-10)
    assert fc_t.weight.grad is None


def test_student_resize_is_bilinear_without_align_corners():
    x = torch.randn(2, 3, 3, 16, 20)
    y = resize_frames(x, 8)
    ref = F.interpolate(x.flatten(0, 1), size=(8, 8), mode="bilinear", align_corners=False).view(
        2, 3, 3, 8, 8
    )
    assert torch.equal(y, ref)
    # at a factor of 2 this is 2x2 average pooling (the original's 224 -> 112)
    sq = torch.randn(1, 2, 3, 16, 16)
    torch.testing.assert_close(resize_frames(sq, 8), F.avg_pool2d(sq.flatten(0, 1), 2).view(1, 2, 3, 8, 8))
    assert resize_frames(sq, 16) is sq


class _Tiny(nn.Module):
    """The fixture's E-case modules: conv without bias, conv with bias, BN, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc = nn.Linear(16, 4)


def test_rkd_param_groups_match_the_official_constructor():
    case = FIXTURE["E_optimizer_groups"]  # lr 0.01 / wd 1e-4 | 2 x lr, wd 0 (biases) | lr, wd 0 (BN)
    m = _Tiny()
    groups = rkd_param_groups(m, [{"params": list(m.parameters()), "lr_mult": 1.0, "name": "all"}])
    names = {id(p): n for n, p in m.named_parameters()}
    got = [
        (g["lr_mult"] * 0.01, g["decay_mult"] * 1e-4, sorted(names[id(p)] for p in g["params"]))
        for g in groups
    ]
    ours = {"backbone.low_res_path.conv1": "conv1", "backbone.low_res_path.conv2": "conv2"}
    ours |= {"backbone.low_res_path.bn1": "bn1", "cls_head.fc_cls": "fc"}
    want = []
    for g in case:
        mapped = []
        for key in g["params"]:
            mod, _, leaf = key.rpartition(".")
            mapped.append(f"{ours[mod]}.{leaf}")
        want.append((g["lr"], g["weight_decay"], sorted(mapped)))
    for (lr, wd, params), (lr_w, wd_w, params_w) in zip(got, want, strict=True):
        assert lr == pytest.approx(lr_w) and wd == pytest.approx(wd_w) and params == params_w
    m.gru = nn.GRU(4, 4)
    with pytest.raises(ValueError, match=r"--paramwise rkd: GRU \(gru.weight_ih_l0\)"):
        rkd_param_groups(m, [{"params": list(m.parameters())}])


def test_the_student_is_counted_at_its_own_resolution():
    """scripts/flops.py reskd_r50:8@112: TSN-R50 on 8 frames of 224 resized to 112 in the model, one classifier call
    (mmaction head) = the fvcore count of the official student network (8.607 GFLOPs, 1.0759 per frame)."""
    from scripts.flops import collect

    ref = json.loads((Path(__file__).parent / "fixtures" / "reskd" / "gflops_v1_reskd.json").read_text())
    row = collect({"reskd_r50:8@112"})["reskd_r50:8@112"]
    frame = ref["reskd_per_frame_macs"]["resnet50@112"] / 1e9
    assert row["backbone"] == pytest.approx(8 * frame, rel=1e-9)
    assert row["heads"] == pytest.approx(2048 * 200 / 1e9, rel=1e-9)
    assert (
        round(row["total"], 2)
        == 8.61
        == round(ref["reskd_gflops_per_video"]["TSN-R50@112 x8 (Mini-K student)"], 2)
    )
