"""Inference helpers (ops/tools/inference.py) and the split forward: BN folding and channels-last keep the outputs,
the early-exit deployment path equals the standard eval forward (non-exiting videos) or the glance logits
(exiting videos), including batches where all or none exit. Tiny models of each preset, contract weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archs import RouteFuncMLP, TAdaConv2d
from ops.data.transforms import normalize
from ops.tools.inference import deploy_model, fold_batchnorm, normalize_frames, predict_with_exit
from tests.test_model_grads import tiny_input, tiny_model

ATOL = 1e-5
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@pytest.fixture(scope="module", params=["an", "tsm", "x3d"])
def tiny(request):
    model, cfg = tiny_model(request.param)
    model.eval()
    x = tiny_input(cfg, batch=4)
    with torch.no_grad():
        torch.manual_seed(0)
        ref = model(x)
    return request.param, model, cfg, x, ref


def _never(ref: dict) -> list[float]:
    return [1e8] * (ref["exit_logits"].shape[1] - 1) + [-1e8]


def test_fold_batchnorm_and_channels_last_keep_outputs(tiny):
    preset, model, _, x, ref = tiny
    n_bn = sum(isinstance(m, _BN) for m in model.modules())
    folded = deploy_model(model, fold_bn=False, channels_last=False)
    assert fold_batchnorm(folded) == n_bn  # every BN of the model sits right after a conv / linear
    assert not any(isinstance(m, _BN) for m in folded.modules())
    assert any(isinstance(m, _BN) for m in model.modules())  # the original is untouched
    dep = deploy_model(model, channels_last_3d=True)
    convs = [m for m in dep.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    with torch.no_grad():
        for candidate in (folded, dep):
            torch.manual_seed(0)
            out = candidate(x)
            for key in ("logits", "exit_logits", "temporal_logits", "spatial_logits"):
                torch.testing.assert_close(out[key], ref[key], atol=ATOL, rtol=1e-4)
            assert torch.equal(out["focus_indices"], ref["focus_indices"])


class _TAdaBlock(nn.Module):
    """A route function calibrating a TAdaConv2d, with alphas away from one (the route's last layer starts at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.route = RouteFuncMLP(c_in=8, ratio=2, kernels=[3, 3])
        self.conv = TAdaConv2d(8, 6, [1, 3, 3], [1, 1, 1], [0, 1, 1], bias=True)
        torch.manual_seed(0)
        for p in self.route.parameters():
            nn.init.normal_(p, std=0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.route(x))


def test_deploy_calibrates_tada_activations_instead_of_building_per_frame_weights():
    block, x = _TAdaBlock().eval(), torch.randn(2, 8, 4, 7, 7)
    with torch.no_grad():
        ref = block(x)
        assert (block.route(x) - 1).abs().max() > 0.1
        dep = deploy_model(block, channels_last=False)
        grouped = deploy_model(block, channels_last=False, tada_activations=False)
        assert dep.conv.calibrate_activations and not grouped.conv.calibrate_activations
        assert not block.conv.calibrate_activations  # the original is untouched
        torch.testing.assert_close(dep(x), ref, atol=ATOL, rtol=1e-4)
        assert torch.equal(grouped(x), ref)


def test_focus_stage_on_a_subset_equals_the_full_forward(tiny):
    _, model, _, x, ref = tiny
    rows = torch.tensor([3, 1])
    with torch.no_grad():
        out = model.focus_stage(model.glance_stage(x), rows, aux=False)
    assert "temporal_logits" not in out and "spatial_logits" not in out
    torch.testing.assert_close(out["logits"], ref["logits"][rows], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(out["exit_logits"], ref["exit_logits"][rows], atol=ATOL, rtol=1e-4)
    assert torch.equal(out["focus_indices"], ref["focus_indices"][rows])


def test_exit_path_splits_the_batch(tiny):
    preset, model, _, x, ref = tiny
    scores = ref["glance_logits"].max(dim=1).values
    assert len(set(scores.tolist())) == 4  # distinct scores, so the median threshold splits 2 / 2
    threshold = scores.sort(descending=True).values[1].item()
    thresholds = [threshold] + _never(ref)[1:]
    calls = []
    first_conv = next(m for m in model.local_CNN.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    hook = first_conv.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        logits, exit_index = predict_with_exit(model, x, thresholds)
    finally:
        hook.remove()
    exits = scores >= threshold
    assert exit_index.tolist() == [0 if e else ref["exit_logits"].shape[1] - 1 for e in exits.tolist()]
    assert exits.sum().item() == 2
    # forward is focus_stage(glance_stage(x)): the exiting rows are the same glance computation, bit for bit
    torch.testing.assert_close(logits[exits], ref["glance_logits"][exits], atol=0, rtol=0)
    torch.testing.assert_close(logits[~exits], ref["logits"][~exits], atol=ATOL, rtol=1e-4)
    # The focus net saw only the 2 staying videos (2-D nets: 2 x K frames; X3D: 2 clips).
    assert calls == [2 if preset == "x3d" else 2 * model.cfg.num_focus_segments]


def test_exit_path_all_and_none_exit(tiny):
    _, model, _, x, ref = tiny
    logits, exit_index = predict_with_exit(model, x, [-1e8] * ref["exit_logits"].shape[1])
    assert exit_index.tolist() == [0, 0, 0, 0]
    assert torch.equal(logits, ref["glance_logits"])
    logits, exit_index = predict_with_exit(model, x, _never(ref))
    assert exit_index.tolist() == [ref["exit_logits"].shape[1] - 1] * 4
    torch.testing.assert_close(logits, ref["logits"], atol=ATOL, rtol=1e-4)


def test_an_intermediate_exits_report_their_logits():
    model, cfg = tiny_model("an")
    model.eval()
    x = tiny_input(cfg, batch=3)
    with torch.no_grad():
        ref = model(x)
    k = cfg.num_focus_segments
    scores = ref["exit_logits"].max(dim=-1).values  # (3, K + 1)
    # Nobody exits at the glance; exit 2 takes the videos whose score reaches video 0's; the rest go to K.
    thresholds = [1e8, 1e8, scores[0, 2].item()] + [1e8] * (k - 3) + [-1e8]
    logits, exit_index = predict_with_exit(model, x, thresholds)
    expected = [2 if s >= scores[0, 2] else k for s in scores[:, 2].tolist()]
    assert exit_index.tolist() == expected and expected[0] == 2
    for i, e in enumerate(expected):
        torch.testing.assert_close(logits[i], ref["exit_logits"][i, e], atol=ATOL, rtol=1e-4)


def test_uint8_input_with_lazy_normalisation_equals_the_float_forward():
    model, cfg = tiny_model("tsm")
    model.eval()
    t = cfg.num_glance_segments + cfg.num_input_focus_segments
    gen = torch.Generator().manual_seed(3)
    frames = torch.randint(
        0, 256, (2, t, 3, cfg.input_size, cfg.input_size), dtype=torch.uint8, generator=gen
    )
    assert torch.equal(normalize_frames(frames), normalize(frames))  # bit for bit
    floats = normalize(frames)
    before = floats.clone()
    normalize_frames(floats)  # a float input is copied, never normalised in place
    assert torch.equal(floats, before)
    with torch.no_grad():
        ref = model(floats)
    logits, _ = predict_with_exit(model, frames, [1e8, -1e8], prepare=normalize_frames)
    assert torch.equal(logits, ref["logits"])  # the same frames through the same full-batch forward
