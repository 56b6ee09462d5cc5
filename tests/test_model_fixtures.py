"""Equivalence with the official implementation's eval forward (tests/fixtures/official, README sections 2-7).

Each model is built at the published size, filled with the fixtures' deterministic weights, fed the fixture
videos' frames and run under torch.manual_seed(0) (only the Monte-Carlo temporal logits use the RNG).
"""

from __future__ import annotations

import pytest
import torch

from models import ModelConfig, build_model
from models.uniadafocus.policies import quantile_positions
from tests.official import contract_state_dict, fixture_clip, load_fixture

ATOL, RTOL = 1e-5, 1e-4


def _model(preset: str, gain: int):
    fixture = load_fixture(f"{preset}_gain{gain}.json")
    cfg = ModelConfig(preset=preset, num_classes=fixture["meta"]["num_class"])
    model = build_model(cfg)
    model.load_state_dict(contract_state_dict(model, gain), strict=True)
    return model.eval(), fixture


@pytest.fixture(scope="module")
def models():
    return {}


def _run(models: dict, preset: str, gain: int, video: int) -> tuple[dict, dict]:
    if (preset, gain) not in models:
        models[(preset, gain)] = _model(preset, gain)
    model, fixture = models[(preset, gain)]
    frames = load_fixture("frame_indices.json")["frames"][preset][video]
    clip = fixture_clip(video, frames["candidates"])
    if preset != "an":
        clip = torch.cat([fixture_clip(video, frames["glance"]), clip])
    with torch.no_grad():
        torch.manual_seed(0)
        out = model(clip.unsqueeze(0))
    return out, fixture["videos"][video]


def _close(actual: torch.Tensor, expected) -> None:
    expected = torch.tensor(expected, dtype=torch.float64).reshape(actual.shape)
    torch.testing.assert_close(actual.double(), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("gain,video", [(25, 0), (25, 1), (25, 2), (1, 1)])
def test_tsm_eval_forward_matches_official(models, gain, video):
    out, ref = _run(models, "tsm", gain, video)
    assert out["focus_indices"].tolist() == ref["focus_indices"]
    _close(out["logits"], ref["fused_logits"])
    _close(out["exit_logits"][:, 1], ref["fused_logits"])
    _close(out["glance_logits"], ref["glance_logits"])
    _close(out["exit_logits"][:, 0], ref["glance_logits"])
    _close(out["glance_final_logits"], ref["global_final_logit"])
    _close(out["focus_final_logits"], ref["local_final_logit"])
    _close(out["focus_avg_logits"], ref["local_avg_logit"])
    _close(out["glance_frame_logits"], ref["glance_reg_logits_per_frame"])
    _close(out["spatial_logits"], ref["spatial_aux_logits"])
    _close(out["temporal_logits"], ref["temporal_mc_logits_seed0"])
    _close(out["actions"], ref["action"])
    _close(out["policy_actions"], ref["action_3"])
    _close(out["weights"], ref["temporal_weights"])
    _close(out["weights_T"], ref["temporal_weights_T"])
    positions = quantile_positions(out["weights_T"], 36, 12)
    torch.testing.assert_close(
        positions.double(), torch.tensor(ref["focus_real_positions"], dtype=torch.float64), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("video", [0, 1, 2])
def test_an_eval_forward_matches_official(models, video):
    out, ref = _run(models, "an", 1, video)
    assert out["focus_indices"].tolist() == ref["focus_indices"]
    assert out["glance_indices"].tolist() == [ref["glance_candidate_positions"]]
    _close(out["logits"], ref["final_logits"])
    _close(out["exit_logits"], ref["exit_logits_17"])
    _close(out["step_logits"], ref["step_logits_all_32"])
    _close(out["glance_logits"], ref["glance_logits"])
    _close(out["glance_frame_logits"], ref["global_logits_per_glance_frame"])
    _close(out["focus_frame_logits"], ref["local_logits_per_focus_frame"])
    _close(out["spatial_logits"], ref["spatial_aux_logits"])
    _close(out["temporal_logits"], ref["temporal_mc_logits_seed0"])
    _close(out["weights"], ref["temporal_weights"])
    _close(out["policy_actions"], ref["spatial_actions_per_glance_frame"])
    _close(out["policy_actions"], ref["aux_featmap_crop_actions"])
    _close(out["actions"], ref["focus_actions"])
    positions = quantile_positions(out["weights_T"], 48, 16)
    torch.testing.assert_close(
        positions.double(), torch.tensor(ref["focus_real_positions"], dtype=torch.float64), atol=1e-4, rtol=0
    )
