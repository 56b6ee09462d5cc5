"""Patch geometry: reference fixtures (theta bitwise, crops to float32 rounding), exact integer crops, analytic
sampling positions, gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.core.patches import (
    deformable_patch_grid,
    deformable_theta,
    fixed_patch_grid,
    fixed_theta,
    random_actions,
)

FIX = Path(__file__).parent / "fixtures" / "official"
EPS32 = torch.finfo(torch.float32).eps


def _cases():
    return json.loads((FIX / "fn_patch_grid.json").read_text())["cases"]


@pytest.fixture(scope="module")
def arrays():
    out = {}
    for name in ("fn_patch_grid_inputs.npz", "fn_patch_grid_P96.npz", "fn_patch_grid_P128.npz"):
        with np.load(FIX / name) as z:
            out.update({k: z[k] for k in z.files})
    return out


def _grid_atol(images: torch.Tensor, image_size: int) -> float:
    """Returns the tolerance of a float32 bilinear crop of ``images`` (M, C, S, S) against another CPU's result.

    affine_grid and grid_sample compute each sampling position (up to S px) in float32, in an order and with or
    without FMA depending on the CPU's instruction set: a few eps * S px of position, which moves a sample by
    that times the largest step between neighbouring values, plus a few ulps of the values themselves. Scalar
    build (ATEN_CPU_CAPABILITY=default) vs the fixture, which AVX2 reproduces bit for bit: at most 0.74 eps *
    S * step (1.9e-5 at S = 224); the tolerance is 4 eps * (S * step + max |value|), about 1.1e-4 at S = 224
    for values in [0, 1], where half a pixel of shift moves samples by about half a step (test below).
    """
    step = max(images.diff(dim=-1).abs().max().item(), images.diff(dim=-2).abs().max().item())
    return 4 * EPS32 * (image_size * step + images.abs().max().item())


def _fixture_case(case: dict, arrays: dict) -> tuple[torch.Tensor, torch.Tensor, tuple, torch.Tensor]:
    """Returns (images, actions, (patch_size, image_size, input_patch_size), reference crops) of a fixture."""
    images = torch.from_numpy(arrays[case["input"]])
    actions = torch.tensor(case["actions"], dtype=torch.float32)
    args = (case["patch_size"], case["image_size"], case["input_patch_size"])
    return images, actions, args, torch.from_numpy(arrays[case["key"]])


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["key"])
def test_matches_reference_fixture(case, arrays):
    images, actions, args, ref = _fixture_case(case, arrays)
    theta = deformable_theta(actions, *args)
    # elementwise float32 arithmetic only (no sums), correctly rounded on every CPU: bit for bit
    assert torch.equal(theta, torch.tensor(case["theta"], dtype=torch.float32))
    out = deformable_patch_grid(images, actions, *args)
    assert list(out.shape) == case["out_shape"]
    atol = _grid_atol(images, case["image_size"])
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    flat = out.flatten()[case["probe_flat_index"]]
    torch.testing.assert_close(flat, torch.tensor(case["probe_values"]), atol=atol, rtol=0)


@pytest.mark.parametrize("case", _cases()[::5], ids=lambda c: c["key"])
def test_fixture_tolerance_rejects_a_half_pixel_shift_and_nearest_sampling(case, arrays):
    images, actions, args, ref = _fixture_case(case, arrays)
    atol = _grid_atol(images, case["image_size"])
    theta = deformable_theta(actions, *args)
    grid = F.affine_grid(theta, list(ref.shape), align_corners=False)
    half_pixel = torch.tensor([1.0, 0.0]) / case["image_size"]  # the map spans 2 normalised units
    shifted = F.grid_sample(images, grid + half_pixel, mode="bilinear", align_corners=False)
    nearest = F.grid_sample(images, grid, mode="nearest", align_corners=False)
    assert float((shifted - ref).abs().max()) > 100 * atol
    assert float((nearest - ref).abs().max()) > 100 * atol


def test_fixture_count():
    keys = {c["key"] for c in _cases()}
    assert len(keys) == 30 and sum(k.startswith("fm5") for k in keys) == 6


@pytest.mark.parametrize(
    "size,patch,tops,lefts",
    [
        (224, 128, (0, 24, 96), (96, 48, 0)),
        (224, 96, (0, 32, 128), (128, 1, 0)),
        (160, 112, (0, 12, 48), (48, 3, 0)),
    ],
)
def test_integer_aligned_crop_equals_slicing(size, patch, tops, lefts):
    # a_s = (P - 96) / 128 makes the region exactly P px (scale 1), and a = top / (S - P) puts its top-left on
    # an integer: bilinear sampling then reads pixel centres, i.e. plain slicing. float64 so that the grid's
    # own rounding (about 1e-5 px in float32 at S = 224) does not blur the comparison.
    images = torch.rand(3, 2, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    free = size - patch
    a_scale = (patch - 96) / 128
    actions = torch.tensor(
        [[t / free, lf / free, a_scale, a_scale] for t, lf in zip(tops, lefts)], dtype=torch.float64
    )
    out = deformable_patch_grid(images, actions, patch, size)
    for m, (t, lf) in enumerate(zip(tops, lefts)):
        torch.testing.assert_close(out[m], images[m, :, t : t + patch, lf : lf + patch], atol=1e-9, rtol=0)


def test_integer_aligned_feature_map_crop():
    # Feature-map form: map side 7, feature patch 4, pixel patch 128 with scale 1 (a_s = 0.25).
    fm = torch.randn(2, 5, 7, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    actions = torch.tensor([[0.0, 1.0, 0.25, 0.25], [1.0, 0.0, 0.25, 0.25]], dtype=torch.float64)
    out = deformable_patch_grid(fm, actions, 4, 7, 128)
    torch.testing.assert_close(out[0], fm[0, :, 0:4, 3:7], atol=1e-9, rtol=0)
    torch.testing.assert_close(out[1], fm[1, :, 3:7, 0:4], atol=1e-9, rtol=0)


def test_sampling_positions_follow_the_deformable_box():
    # On linear ramps (value = row / column coordinate) bilinear sampling is exact, so each output pixel reads
    # back its source coordinate: top + (i + 0.5) * side / P - 0.5 with side = 96 + 128 * a_s pixels.
    size, patch = 224, 64
    ramp = torch.arange(size, dtype=torch.float32)
    image = torch.stack([ramp[:, None].expand(size, size), ramp[None, :].expand(size, size)])
    actions = torch.rand(5, 4, generator=torch.Generator().manual_seed(2))
    out = deformable_patch_grid(image.expand(5, 2, size, size), actions, patch, size, 96)
    side = (96 + 128 * actions[:, 2:4]) * patch / 96  # patch * scale, in pixels
    top_left = actions[:, :2] * (size - side)
    grid = (torch.arange(patch) + 0.5) / patch
    exp_y = top_left[:, 0:1] + grid[None] * side[:, 0:1] - 0.5
    exp_x = top_left[:, 1:2] + grid[None] * side[:, 1:2] - 0.5
    torch.testing.assert_close(out[:, 0, :, 0], exp_y, atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, 1, 0, :], exp_x, atol=2e-3, rtol=0)


def test_batched_equals_per_sample_and_gradient_reaches_actions():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 32, 32, generator=g)
    actions = torch.rand(4, 4, generator=g).requires_grad_(True)
    out = deformable_patch_grid(images, actions, 12, 32, 96)
    for m in range(4):
        one = deformable_patch_grid(images[m : m + 1], actions[m : m + 1], 12, 32, 96)
        # affine_grid's bmm may take another kernel for a batch of 1 (rounding only); a mixed-up sample is
        # off by about the image's own size
        torch.testing.assert_close(out[m : m + 1], one, atol=_grid_atol(images, 32), rtol=0)
    out.square().sum().backward()
    assert actions.grad is not None and bool((actions.grad.abs().sum(dim=0) > 0).all())


def test_random_actions_rng_and_scale():
    torch.manual_seed(5)
    a = random_actions(6, 128)
    torch.manual_seed(5)
    ref = torch.rand(6, 4)  # the reference draws rand_like(actions) and then overwrites the scales
    assert torch.equal(a[:, :2], ref[:, :2])
    assert bool((a[:, 2:] == 0.25).all())
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(random_actions(3, 96, generator=g1), random_actions(3, 96, generator=g2))
    assert bool((random_actions(3, 96, generator=g1)[:, 2:] == 0).all())


def test_random_action_region_is_exactly_patch_size():
    # Random-patch branch: region exactly P px, so theta's scale is P / S.
    actions = random_actions(4, 160, generator=torch.Generator().manual_seed(0))
    theta = deformable_theta(actions, 160, 224)
    torch.testing.assert_close(theta[:, 0, 0], torch.full((4,), 160 / 224), atol=1e-7, rtol=0)


def test_fixed_patch_grid_slicing_and_consistency():
    g = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 56, 56, generator=g, dtype=torch.float64)
    actions = torch.tensor([[0.0, 1.0], [0.5, 0.25]], dtype=torch.float64)  # top-left (0, 32), (16, 8)
    out = fixed_patch_grid(images, actions, 24, 56)
    torch.testing.assert_close(out[0], images[0, :, 0:24, 32:56], atol=1e-9, rtol=0)
    torch.testing.assert_close(out[1], images[1, :, 16:40, 8:32], atol=1e-9, rtol=0)
    actions = actions.float()
    theta = fixed_theta(actions, 24, 56)
    assert torch.equal(theta[:, 0, 1], torch.zeros(2)) and torch.equal(
        theta[:, 0, 0], torch.full((2,), 24 / 56)
    )
    # Same box as the deformable patch whose region is exactly P (a_s = (P - 96) / 128 with Pin = P).
    four = torch.cat([actions, torch.full((2, 2), (128 - 96) / 128)], dim=1)
    torch.testing.assert_close(
        fixed_theta(actions, 128, 224), deformable_theta(four, 128, 224), atol=1e-6, rtol=0
    )


def test_shape_errors():
    with pytest.raises(ValueError):
        deformable_patch_grid(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4), 4, 8)
    with pytest.raises(ValueError):
        fixed_patch_grid(torch.zeros(2, 3, 8, 8), torch.zeros(2, 4), 4, 8)


def test_frame_size_scales_the_region_range_with_the_frame():
    # At S = 112 the region side spans [48, 112] px: scale 1 covers the whole frame, scale 0 is 48 px,
    # and a random action keeps a region of exactly P px.
    from models.core.patches import deformable_theta, random_actions

    full = deformable_theta(torch.tensor([[0.3, 0.7, 1.0, 1.0]]), 64, 112, frame_size=112)
    assert torch.allclose(full, torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), atol=1e-6)
    small = deformable_theta(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), 64, 112, frame_size=112)
    assert torch.allclose(small[0, :, :2], torch.eye(2) * 48 / 112, atol=1e-6)
    rand = random_actions(5, 64, frame_size=112)
    side = deformable_theta(rand, 64, 112, frame_size=112)[:, 0, 0] * 112
    assert torch.allclose(side, torch.full((5,), 64.0), atol=1e-4)
