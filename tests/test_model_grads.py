"""Stop-gradients of Uni-AdaFocus (spec 3.7) and the training forward/loss, on tiny models of each preset.

Each loss part is back-propagated alone; the set of parameters with a non-zero gradient must be exactly the
expected modules (prefixes). Weights follow the fixtures' deterministic contract, so no zero-initialised layer
hides a gradient.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from models import ModelConfig, build_model
from models.core.losses import repeated_ce
from tests.official import contract_state_dict

TINY_X3D = dict(width_factor=1.0, dim_c1=4, dim_c5=16, bottleneck_factor=1.0)
TINY = {
    "an": dict(
        num_classes=5,
        num_glance_segments=6,
        num_input_focus_segments=12,
        num_focus_segments=4,
        input_size=128,
        patch_size=96,
        glance_width_mult=0.25,
        glance_last_channel=32,
        focus_base_width=4,
        stn_hidden_dim=8,
        temporal_hidden_dim=8,
        mc_samples=4,
        KL_ratio=0.5,
    ),
    "tsm": dict(
        num_classes=5,
        num_glance_segments=6,
        num_input_focus_segments=8,
        num_focus_segments=4,
        input_size=128,
        patch_size=96,
        glance_width_mult=0.25,
        glance_last_channel=32,
        focus_base_width=8,
        stn_hidden_dim=8,
        temporal_hidden_dim=8,
        mc_samples=4,
    ),
    "x3d": dict(
        num_classes=5,
        num_glance_segments=6,
        num_input_focus_segments=8,
        num_focus_segments=2,
        input_size=128,
        glance_size=64,
        patch_size=96,
        stn_hidden_dim=8,
        temporal_hidden_dim=8,
        mc_samples=4,
        x3d_overrides=TINY_X3D,
    ),
}

# loss part -> parameter-name prefixes that (and only that) receive a gradient
EXPECTED = {
    "an": {
        "spatial": ("spatial_policy.", "aux_fc."),
        "norm": ("spatial_policy.",),
        "temporal": ("temporal_policy.", "global_CNN.features.", "global_CNN_fc."),
        "fused_policy": ("classifier.", "global_CNN.features.", "local_CNN."),
        "fused_random": ("classifier.", "global_CNN.features.", "local_CNN."),
        "glance": ("global_CNN.features.", "global_CNN_fc."),
        "focus_policy": ("local_CNN.", "local_CNN_fc."),
    },
    "tsm": {
        "spatial": ("spatial_policy.", "aux_fc."),
        "norm": ("spatial_policy.",),
        "temporal": ("temporal_policy.",),
        "fused_policy": ("global_CNN.new_fc.", "local_CNN.new_fc."),
        "fused_random": ("global_CNN.new_fc.", "local_CNN.new_fc."),
        "glance": ("global_CNN.base_model.", "global_CNN.new_new_fc."),
        "focus_policy": ("local_CNN.base_model.", "local_CNN.new_new_fc."),
    },
    "x3d": {
        "spatial": ("spatial_policy.", "aux_head."),
        "norm": ("spatial_policy.",),
        "temporal": ("temporal_policy.",),
        "fused_policy": (
            "global_CNN.head.lin_5.",
            "global_CNN.head.projection.",
            "local_CNN.head.lin_5.",
            "local_CNN.head.projection.",
        ),
        "fused_random": (
            "global_CNN.head.lin_5.",
            "global_CNN.head.projection.",
            "local_CNN.head.lin_5.",
            "local_CNN.head.projection.",
        ),
        "glance": ("global_CNN.s", "global_CNN.head.conv_5", "global_CNN_head."),
        "focus_policy": ("local_CNN.s", "local_CNN.head.conv_5", "local_CNN_head."),
    },
}


def tiny_model(preset: str, **overrides):
    torch.manual_seed(0)
    cfg = ModelConfig(preset=preset, **{**TINY[preset], **overrides})
    model = build_model(cfg)
    model.load_state_dict(contract_state_dict(model))
    return model, cfg


def tiny_input(cfg: ModelConfig, batch: int = 2) -> torch.Tensor:
    t = cfg.num_input_focus_segments + (0 if cfg.preset == "an" else cfg.num_glance_segments)
    return torch.randn(
        batch, t, 3, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture(scope="module", params=["an", "tsm", "x3d"])
def trained_forward(request):
    model, cfg = tiny_model(request.param)
    model.train()
    torch.manual_seed(0)
    out = model(tiny_input(cfg))
    return request.param, model, cfg, out


def _part_losses(out: dict, y: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "spatial": F.cross_entropy(out["spatial_logits"], y),
        "norm": ((out["policy_actions"][..., 2:4] - 1) ** 2).mean(),  # [..., 4] = (y, x, scale_h, scale_w)
        "temporal": F.cross_entropy(out["temporal_logits"], y),
        "fused_policy": repeated_ce(out["fused_branches"][0], y),
        "fused_random": repeated_ce(out["fused_branches"][1], y),
        "glance": repeated_ce(out["glance_aux"], y),
        "focus_policy": repeated_ce(out["focus_branches"][0], y),
    }


def test_each_loss_part_reaches_exactly_its_modules(trained_forward):
    preset, model, cfg, out = trained_forward
    y = torch.tensor([1, 3])
    for part, loss in _part_losses(out, y).items():
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        nonzero = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        allowed = EXPECTED[preset][part]
        stray = sorted(n for n in nonzero if not n.startswith(allowed))
        assert not stray, f"{preset} {part}: unexpected gradient in {stray[:5]}"
        for prefix in allowed:
            assert any(n.startswith(prefix) for n in nonzero), (
                f"{preset} {part}: no gradient reaches {prefix}"
            )


def test_training_forward_layout_and_full_loss(trained_forward):
    preset, model, cfg, out = trained_forward
    b, k, n, c = 2, cfg.num_focus_segments, cfg.num_input_focus_segments, cfg.num_classes
    assert len(out["fused_branches"]) == len(out["focus_branches"]) == 2
    idx = out["focus_indices"]
    assert (
        idx.shape == (b, k)
        and bool((idx[:, 1:] > idx[:, :-1]).all())
        and 0 <= int(idx.min()) <= int(idx.max()) < n
    )
    if preset == "an":
        tg = cfg.num_glance_segments
        assert out["step_logits"].shape == (b, tg + k, c) and out["exit_logits"].shape == (b, k + 1, c)
        group = out["glance_indices"] // (n // tg)
        assert group.tolist() == [list(range(tg))] * b  # one random glance frame per group of N/T_g
        assert out["actions"].shape == (b, k, 4)
    else:
        assert out["exit_logits"].shape == (b, 2, c) and out["actions"].shape == (b, 4)
    # random branch: scales fixed to a P-pixel region
    y = torch.tensor([[1, -1, -1], [3, 0, -1]]) if preset == "an" else torch.tensor([1, 3])
    loss, parts = model.criterion()(out, y)
    yy = torch.tensor([1, 3])
    p = _part_losses(out, yy)
    expected = (
        p["fused_policy"]
        + p["fused_random"]
        + repeated_ce(out["focus_branches"][1], yy)
        + p["focus_policy"]
        + 2 * (p["glance"] + p["temporal"] + p["spatial"])
    ) / 2 + cfg.norm_ratio * p["norm"]
    if cfg.KL_ratio:
        w = out["weights"]
        expected = expected + cfg.KL_ratio * (w * (w * w.shape[1]).log()).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert parts["loss"] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert set(parts) >= {"fused", "glance", "local", "temporal", "spatial", "norm", "loss"}
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    assert model.find_unused_parameters is False  # what the engine tells DDP
    unused = [n for n, q in model.named_parameters() if q.requires_grad and q.grad is None]
    assert not unused, (
        f"trainable parameters without gradient (DDP would need find_unused_parameters): {unused[:5]}"
    )


def test_param_groups_cover_every_trainable_parameter_once(trained_forward):
    preset, model, cfg, _ = trained_forward
    groups = model.param_groups()
    seen = [id(q) for g in groups for q in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(q) for q in model.parameters() if q.requires_grad}
    mult = {g["name"]: g["lr_mult"] for g in groups}
    assert mult["temporal_policy"] == cfg.temporal_lr_ratio and mult["spatial_policy"] == cfg.stn_lr_ratio
    assert mult["global_CNN"] == cfg.global_lr_ratio and mult["local_CNN"] == 1.0
    extra = {
        "an": {"classifier": 20.0, "global_CNN_fc": 0.5, "aux_fc": 0.5, "local_CNN_fc": 1.0},
        "tsm": {"aux_fc": 0.5},
        "x3d": {"aux_head": 0.5, "global_CNN_head": 0.5, "local_CNN_head": 1.0},
    }[preset]
    assert {k: mult[k] for k in extra} == extra
    assert len(mult) == 4 + len(extra)
    slow_focus = type(model)(dataclasses.replace(cfg, local_lr_ratio=0.1))  # the demo's: --local_lr_ratio 0.1
    assert {g["name"]: g["lr_mult"] for g in slow_focus.param_groups()} == {**mult, "local_CNN": 0.1}


def test_random_patch_branch_uses_patch_sized_regions():
    model, cfg = tiny_model("tsm")
    model.train()
    seen = []
    handle = model.local_CNN.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    try:
        model(tiny_input(cfg))
    finally:
        handle.remove()
    assert seen == [torch.Size([2 * 2 * cfg.num_focus_segments, 3, cfg.patch_size, cfg.patch_size])]
