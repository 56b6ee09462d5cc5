"""Policies: reference fixtures (frame selection, MC temporal logits, interpolated actions), layouts, gradients."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from models.core.patches import deformable_patch_grid, random_actions
from models.uniadafocus.policies import (
    SpatialPolicy,
    TemporalPolicy,
    clip_layout,
    enforce_order,
    featmap_crop_logits,
    interpolate_actions,
    mc_keep_masks,
    mc_temporal_logits,
    norm_loss,
    offset_indices,
    quantile_positions,
    sample_indices,
)

FIX = Path(__file__).parent / "fixtures" / "official"


def _load(name):
    return json.loads((FIX / name).read_text())


SELECTION = _load("fn_policy_sample_indices.json")["cases"]


# ----------------------------------------------------------------------------------------- frame selection


@pytest.mark.parametrize("case", SELECTION, ids=lambda c: c["name"])
def test_sample_indices_eval_matches_reference(case):
    w = torch.tensor(case["weights"], dtype=torch.float32)
    idx, pos = sample_indices(w, case["N"], case["K"], False, return_positions=True)
    assert idx.tolist() == case["eval_indices"] == case["eval_indices_an_version"]
    assert offset_indices(idx, case["N"]).tolist() == case["eval_indices_flat_with_offset"]
    quantile = torch.tensor(case["eval_quantile"], dtype=torch.float32)
    torch.testing.assert_close(pos, quantile * case["N"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", SELECTION, ids=lambda c: c["name"])
def test_sample_indices_train_matches_reference_seeded(case):
    w = torch.tensor(case["weights"], dtype=torch.float32)
    for run in case["train_mode_torch_seeded"]:
        torch.manual_seed(run["torch_manual_seed"])
        idx, pos = sample_indices(w, case["N"], case["K"], True, return_positions=True)
        assert idx.tolist() == run["indices"]
        torch.testing.assert_close(pos / case["N"], torch.tensor(run["quantile"]), atol=1e-6, rtol=0)
        # An explicit generator with the same seed draws the same thresholds.
        g = torch.Generator().manual_seed(run["torch_manual_seed"])
        assert sample_indices(w, case["N"], case["K"], True, generator=g).tolist() == run["indices"]


def reference_selection(weights: list[float], n: int, k: int, thresholds: list[float]) -> list[int]:
    """The spec's frame selection (research notes 3.4), written out in float64 Python: a piecewise-constant
    density on T equal bins, CDF with a leading 0 and its last value forced to 1, the bin of threshold q is the
    first CDF knot >= q minus 1 (knot 0 stays in bin 0), linear inversion inside the bin, floor(x * N), then
    strictly increasing and capped at N - K + i."""
    t = len(weights)
    cdf = [0.0]
    for w in weights:
        cdf.append(cdf[-1] + w)
    cdf[-1] = 1.0
    out = []
    for i, q in enumerate(thresholds):
        knot = next(j for j, c in enumerate(cdf) if c >= q)
        b = max(knot, 1) - 1
        x = b / t + (q - cdf[b]) / (cdf[b + 1] - cdf[b]) / t
        idx = math.floor(x * n)
        if out and idx <= out[-1]:
            idx = out[-1] + 1
        out.append(min(idx, n - k + i))
    return out


def test_selection_covers_all_fixture_kinds():
    kinds = {c["kind"] for c in SELECTION}
    assert len(SELECTION) == 14 and {"uniform", "last_heavy", "first_heavy", "zeros_in_bins"} <= kinds


@pytest.mark.parametrize(
    "weights,n,k,expected",
    [
        # The threshold 0.5 sits on the knots 1, 2 and 3 of the CDF [0, .5, .5, .5, 1]: the first of them (the end of
        # bin 0) is taken, so x = 0.25 -> frame 3; the last knot (the start of bin 3) would give x = 0.75 -> frame 9.
        ([0.5, 0.0, 0.0, 0.5], 12, 1, [3]),
        # The threshold 1/4 ends bin 0 (empty bin 1 follows): x = 0.25 -> frame 8, not x = 0.5 -> frame 16.
        ([0.25, 0.0, 0.5, 0.25], 32, 2, [8, 24]),
        # every threshold ends a bin followed by an empty one: [2, 6, 10, 14], not [4, 8, 12, 14]
        ([0.125, 0.0, 0.25, 0.0, 0.25, 0.0, 0.25, 0.125], 16, 4, [2, 6, 10, 14]),
    ],
)
def test_a_threshold_on_a_cdf_knot_goes_to_the_lower_bin(weights, n, k, expected):
    """Ties (a threshold equal to a CDF knot, with empty bins after it) decide between distant frames. The fixture's
    tie cases have uniform weights, where both readings give the same frame; these do not."""
    w = torch.tensor([weights], dtype=torch.float32)  # dyadic values: the CDF is exact in float32
    thresholds = [(i + 0.5) / k for i in range(k)]
    assert reference_selection(weights, n, k, thresholds) == expected
    assert sample_indices(w, n, k, False).tolist() == [expected]
    # the same in training with the thresholds given (the stratified draw may land on a knot too)
    thr = torch.tensor([thresholds])
    assert sample_indices(w, n, k, True, thresholds=thr).tolist() == [expected]


@pytest.mark.parametrize("case", SELECTION, ids=lambda c: c["name"])
def test_reference_selection_agrees_with_the_fixture(case):
    """The written-out rule above reproduces the official code's eval indices (so it can stand in for it)."""
    for weights, expected in zip(case["weights"], case["eval_indices"], strict=True):
        k = case["K"]
        assert reference_selection(weights, case["N"], k, [(i + 0.5) / k for i in range(k)]) == expected


@pytest.mark.parametrize(
    "fname,n,k", [("tsm_gain1.json", 36, 12), ("tsm_gain25.json", 36, 12), ("an_gain1.json", 48, 16)]
)
def test_model_fixture_focus_indices(fname, n, k):
    for video in _load(fname)["videos"]:
        w = torch.tensor(video["temporal_weights"], dtype=torch.float32)
        idx, pos = sample_indices(w, n, k, False, return_positions=True)
        assert idx.tolist() == video["focus_indices"]
        torch.testing.assert_close(pos, torch.tensor(video["focus_real_positions"]), atol=1e-5, rtol=0)
        # the same computation (quantile_positions calls sample_indices): bit for bit
        torch.testing.assert_close(quantile_positions(w, n, k), pos, atol=0, rtol=0)


def test_enforce_order_equals_sequential_rule():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        n, k = 40, int(torch.randint(2, 16, (1,), generator=g))
        raw = torch.randint(0, n, (3, k), generator=g).sort(dim=1)[0]
        raw[:, 1:] -= torch.randint(0, 3, (3, k - 1), generator=g)  # break the order here and there
        ref = raw.clone()
        for i in range(1, k):  # the reference's loop and cap, written out
            ref[:, i] = torch.where(ref[:, i] > ref[:, i - 1], ref[:, i], ref[:, i - 1] + 1)
        ref = torch.minimum(ref, n - k + torch.arange(k))
        assert torch.equal(enforce_order(raw, n), ref)


def test_zero_threshold_is_clamped_to_first_bin():
    # q = 0 can be drawn in training; the AN clamp keeps bin 0 instead of indexing knot -1.
    w = torch.full((1, 8), 1 / 8)
    thr = torch.tensor([[0.0, 0.5]])
    idx, pos = sample_indices(w, 24, 2, thresholds=thr, return_positions=True)
    assert idx.tolist() == [[0, 12]] and pos.tolist() == [[0.0, 12.0]]  # dyadic values throughout: exact


def test_train_indices_distinct_sorted_in_range():
    torch.manual_seed(3)
    w = torch.softmax(3 * torch.randn(5, 16), dim=1)
    for _ in range(20):
        idx = sample_indices(w, 48, 16, True)
        assert bool((idx.diff(dim=1) > 0).all()) and int(idx.min()) >= 0 and int(idx.max()) <= 47


# --------------------------------------------------------------------------------------- MC temporal logits

MC_CASES = [
    ("tsm_gain1.json", "glance_reg_logits_per_frame", 2, 0),
    ("tsm_gain25.json", "glance_reg_logits_per_frame", 2, 0),
    ("an_gain1.json", "global_logits_per_glance_frame", 5, 48),
]


@pytest.mark.parametrize("fname,key,num_drop,an_rand_rows", MC_CASES)
def test_mc_temporal_logits_match_reference(fname, key, num_drop, an_rand_rows):
    for video in _load(fname)["videos"]:
        logits = torch.tensor(video[key], dtype=torch.float32)
        logits = logits.reshape(1, -1, logits.shape[-1])
        w = torch.tensor(video["temporal_weights"], dtype=torch.float32)
        torch.manual_seed(0)
        if an_rand_rows:
            # The AN forward draws the random-patch actions (rand_like of the (B*N, 4) actions) before the
            # MC sampling, even in eval; replay that draw to stay on the same RNG stream.
            random_actions(an_rand_rows, 128)
        out = mc_temporal_logits(logits, w, num_drop, 128)
        ref = torch.tensor(video["temporal_mc_logits_seed0"])
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_mc_fixture_is_sensitive_to_the_draws():
    # With gain 25 the weights are far from uniform: another RNG stream lands clearly outside the tolerance.
    video = _load("tsm_gain25.json")["videos"][0]
    logits = torch.tensor(video["glance_reg_logits_per_frame"]).reshape(1, 8, -1)
    w = torch.tensor(video["temporal_weights"])
    torch.manual_seed(1)
    out = mc_temporal_logits(logits, w, 2, 128)
    assert float((out - torch.tensor(video["temporal_mc_logits_seed0"])).abs().max()) > 1e-5


def test_mc_masks_drop_i_frames_per_level():
    w = torch.softmax(torch.randn(2, 9, generator=torch.Generator().manual_seed(0)), dim=1)
    masks = mc_keep_masks(w, 3, 16, generator=torch.Generator().manual_seed(1))
    assert masks.shape == (3, 2, 16, 9)
    assert masks.sum(dim=-1).tolist() == [[[9.0] * 16] * 2, [[8.0] * 16] * 2, [[7.0] * 16] * 2]


def test_mc_gradient_matches_analytic_stopgrad_denominator():
    g = torch.Generator().manual_seed(0)
    b, t, c, s, levels = 2, 6, 5, 16, 3
    logits = torch.randn(b, t, c, generator=g, requires_grad=True)
    w = torch.softmax(torch.randn(b, t, generator=g), dim=1).detach().requires_grad_(True)
    probe = torch.randn(b, c, generator=g)
    out = mc_temporal_logits(logits, w, levels, s, generator=torch.Generator().manual_seed(7))
    (out * probe).sum().backward()
    wd = w.detach()
    masks = mc_keep_masks(wd, levels, s, generator=torch.Generator().manual_seed(7))  # same draws
    den = (masks * wd[None, :, None, :]).sum(-1, keepdim=True)  # (L, B, S, 1)
    coef = (masks / den).sum(dim=(0, 2)) / (levels * s)  # (B, T): d out / d (w_t G_t) with den constant
    proj = (logits.detach() * probe[:, None, :]).sum(-1)  # G_t . probe
    torch.testing.assert_close(w.grad, coef * proj, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logits.grad, (coef * wd)[..., None] * probe[:, None, :], atol=1e-6, rtol=1e-5)
    # The full derivative (denominator differentiated too) is different: the stop-gradient matters.
    full = coef * proj - (
        (masks / den**2) * (masks * wd[None, :, None, :] * proj[None, :, None, :]).sum(-1, keepdim=True)
    ).sum(dim=(0, 2)) / (levels * s)
    assert float((full - w.grad).abs().max()) > 1e-3


# ------------------------------------------------------------------------------------------ policy modules


def _policy_keys(fname):
    entries = _load(fname)["entries"]
    return {
        e["key"]: e["shape"]
        for e in entries
        if e["key"].split(".")[0] in ("spatial_policy", "temporal_policy")
    }


@pytest.mark.parametrize(
    "fname,channels,glance,size,per_frame",
    [
        ("state_dict_keys_an.json", 1280, 16, 7, True),
        ("state_dict_keys_tsm.json", 1280, 8, 7, False),
        ("state_dict_keys_x3d.json", 432, 16, 5, False),
    ],
)
def test_policy_state_dict_keys_and_shapes(fname, channels, glance, size, per_frame):
    wrapper = nn.Module()
    wrapper.spatial_policy = SpatialPolicy(channels, 128, glance, size, per_frame)
    wrapper.temporal_policy = TemporalPolicy(channels, 64, glance)
    ours = {k: list(v.shape) for k, v in wrapper.state_dict().items()}
    assert ours == _policy_keys(fname)
    assert list(ours) == list(_policy_keys(fname))  # same order too


def test_spatial_policy_receptive_fields():
    torch.manual_seed(0)
    per_frame = SpatialPolicy(6, 8, 7, 3, per_frame=True).eval()
    per_video = SpatialPolicy(6, 8, 7, 3, per_frame=False).eval()
    x = torch.randn(2, 6, 7, 3, 3)
    y = x.clone()
    y[:, :, 0] += 1.0  # change glance frame 0 only
    a, b = per_frame(x), per_frame(y)
    assert a.shape == (2, 4, 7) and bool(((a > 0) & (a < 1)).all())
    # Two 3x3x3 convs see frames t-2..t+2: frames 0..2 change, 3..6 do not (bit for bit: the same kernels on
    # the same shapes add up identical inputs in the same order).
    assert bool((a - b)[:, :, :3].abs().amax(dim=(0, 1)).gt(0).all())
    assert torch.equal(a[:, :, 3:], b[:, :, 3:])
    assert per_video(x).shape == (2, 4) and not torch.equal(per_video(x), per_video(y))
    with pytest.raises(ValueError):
        per_video(torch.randn(2, 6, 5, 3, 3))


def test_clip_layout_from_frame_major_and_channel_stacked():
    b, t, c = 2, 3, 4
    frames = torch.arange(b * t * c, dtype=torch.float32).reshape(b * t, c, 1, 1).expand(b * t, c, 2, 2)
    clip = clip_layout(frames, t, c)
    assert clip.shape == (b, c, t, 2, 2)
    assert torch.equal(clip[1, :, 2], frames[1 * t + 2])  # video 1, frame 2
    stacked = frames.reshape(b, t * c, 2, 2)  # TSM layout: frame-major channels
    assert torch.equal(clip_layout(stacked, t, c), clip)


def test_temporal_policy_layout_and_softmax():
    torch.manual_seed(0)
    policy = TemporalPolicy(5, 4, 6, temperature=2.0).eval()
    with torch.no_grad():
        for bn in (policy.Tconv[1], policy.Tconv[4]):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    feat = torch.randn(2 * 6, 5)
    w, w_t = policy(feat)
    w2, _ = policy(feat.reshape(2, 6, 5))
    assert torch.equal(w, w2) and w.shape == (2, 6)
    # Independent formulation: temporal conv1d over the frames of each video, BN in eval form.
    x = feat.reshape(2, 6, 5).transpose(1, 2)
    for conv, bn in ((policy.Tconv[0], policy.Tconv[1]), (policy.Tconv[3], policy.Tconv[4])):
        x = nn.functional.conv1d(x, conv.weight.squeeze(-1), padding=1)
        x = (x - bn.running_mean[:, None]) / (bn.running_var[:, None] + bn.eps).sqrt() * bn.weight[
            :, None
        ] + bn.bias[:, None]
        x = x.relu()
    logits = (policy.Tconv[6].weight.reshape(1, -1, 1) * x).sum(1)
    torch.testing.assert_close(w, logits.softmax(1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w_t, (logits / 2).softmax(1), atol=1e-6, rtol=1e-5)


def test_interpolated_actions_match_an_fixture():
    for video in _load("an_gain1.json")["videos"]:
        per_glance = torch.tensor(video["spatial_actions_per_glance_frame"]).T.unsqueeze(0)  # (1, 4, 16)
        per_candidate = interpolate_actions(per_glance, 48)
        assert per_candidate.shape == (1, 48, 4)
        picked = per_candidate[0, video["focus_indices"][0]]
        torch.testing.assert_close(picked, torch.tensor(video["focus_actions"]), atol=1e-6, rtol=0)
        # align_corners=False: candidates 3g+1 sit exactly on glance frame g.
        torch.testing.assert_close(per_candidate[0, 1::3], per_glance[0].T, atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------- spatial auxiliary pieces


def test_norm_loss_value():
    a = torch.tensor([[0.3, 0.7, 0.5, 1.0], [0.1, 0.2, 0.0, 0.75]])
    torch.testing.assert_close(norm_loss(a), torch.tensor((0.25 + 0 + 1 + 0.0625) / 4))
    # a mean over 24 values instead of 8 (each 3 times) may round differently in the last bit
    torch.testing.assert_close(norm_loss(a.unsqueeze(-1).expand(2, 4, 3)), norm_loss(a), atol=0, rtol=1e-6)


def test_featmap_crop_per_video_equals_channel_stacked_reference():
    g = torch.Generator().manual_seed(0)
    b, c, t = 2, 3, 4
    fm = torch.randn(b, c, t, 5, 5, generator=g)
    actions = torch.rand(b, 4, generator=g)
    head = nn.Linear(c, 7)
    out = featmap_crop_logits(fm, actions, 3, 128, head)
    # Reference arrangement (TSM/X3D): all frames stacked on channels, one crop per video.
    stacked = fm.permute(0, 2, 1, 3, 4).reshape(b, t * c, 5, 5)
    ref = deformable_patch_grid(stacked, actions, 3, 5, 128).reshape(b, t, c, 3, 3).mean(dim=(1, 3, 4))
    torch.testing.assert_close(out, head(ref), atol=1e-6, rtol=1e-5)


def test_featmap_crop_per_frame_uses_each_frames_action():
    g = torch.Generator().manual_seed(1)
    b, c, t = 2, 3, 4
    fm = torch.randn(b, c, t, 7, 7, generator=g)
    actions = torch.rand(b, 4, t, generator=g)
    out = featmap_crop_logits(fm, actions, 4, 128, nn.Identity())
    ref = torch.stack(
        [
            torch.stack(
                [
                    deformable_patch_grid(fm[i, :, j][None], actions[i, :, j][None], 4, 7, 128)[0]
                    for j in range(t)
                ]
            ).mean(dim=(0, 2, 3))
            for i in range(b)
        ]
    )
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_spatial_aux_gradient_reaches_policy_not_featmap():
    torch.manual_seed(0)
    policy = SpatialPolicy(6, 8, 4, 5, per_frame=False)
    head = nn.Linear(6, 3)
    fm = torch.randn(2, 6, 4, 5, 5, requires_grad=True)
    actions = policy(fm.detach())
    logits = featmap_crop_logits(fm, actions, 3, 128, head)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 2])) + norm_loss(actions)
    loss.backward()
    assert fm.grad is None
    assert float(policy.encoder[9].weight.grad.abs().sum()) > 0 and float(head.weight.grad.abs().sum()) > 0
    # Without the norm loss the classification signal alone still reaches the policy (through the grid).
    policy.zero_grad()
    actions = policy(fm.detach())
    nn.functional.cross_entropy(
        featmap_crop_logits(fm, actions, 3, 128, head), torch.tensor([0, 2])
    ).backward()
    assert float(policy.encoder[0].weight.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------- the policy inside the model


@pytest.mark.parametrize("temperature", [0.25, 4.0])
def test_the_model_selects_frames_from_the_temperature_scaled_weights(temperature):
    """`--temperature` T: the frames come from softmax(logits / T), not from the weights w = softmax(logits) that the
    losses use. The scaled weights are rebuilt here from w alone: softmax(log(w) / T) = softmax(logits / T)."""
    from tests.test_model_grads import tiny_input, tiny_model

    model, cfg = tiny_model("tsm", temperature=temperature)
    # the policy output layer at 100x the contract scale: weights far from uniform (one bin holds about half)
    with torch.no_grad():
        model.temporal_policy.Tconv[6].weight.mul_(100.0)
    model.eval()
    with torch.no_grad():
        out = model(tiny_input(cfg, batch=3))
    w = out["weights"].double()
    scaled = torch.softmax(w.log() / temperature, dim=1)
    torch.testing.assert_close(out["weights_T"].double(), scaled, atol=1e-6, rtol=1e-5)
    n, k = cfg.num_input_focus_segments, cfg.num_focus_segments
    thresholds = [(i + 0.5) / k for i in range(k)]
    expected = [reference_selection(row, n, k, thresholds) for row in scaled.tolist()]
    unscaled = [reference_selection(row, n, k, thresholds) for row in w.tolist()]
    assert expected != unscaled  # the temperature matters for these weights
    assert out["focus_indices"].tolist() == expected
