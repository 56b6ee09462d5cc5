"""Patch geometry: differentiable crops of frames or feature maps by an affine sampling grid.

Two parametrisations are supported:

* the Uni-AdaFocus "deformable" patch (4-D action ``[y, x, scale_h, scale_w]`` in [0, 1]): the region side in
  input pixels is ``96 + 128 * a_s`` (independently for height and width) and it is always resampled to a
  square output;
* the AdaFocusV2 fixed-size patch (2-D action ``[y, x]``): a ``P x P`` window whose top-left is ``a * (S - P)``.

Both build ``theta`` for :func:`torch.nn.functional.affine_grid` and sample bilinearly with zero padding
(``align_corners=False``), so the crops are differentiable w.r.t. the action.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Region side range of the deformable patch, in input pixels of a 224 frame (fixed by the method, not by the
# patch size). Other frame sizes scale the range with the frame: [96 S / 224, S] (identical values at S = 224).
MIN_REGION = 96
MAX_REGION = 224


def region_range(frame_size: int = MAX_REGION) -> tuple[float, float]:
    """Returns the (smallest, largest) region side in pixels for frames of side `frame_size`."""
    return MIN_REGION * frame_size / MAX_REGION, frame_size


def scale_action(side: torch.Tensor | float, frame_size: int = MAX_REGION) -> torch.Tensor | float:
    """Returns the scale action in [0, 1] whose region side is `side` pixels (the inverse of the scale rule)."""
    lo, hi = region_range(frame_size)
    return (side - lo) / (hi - lo)


def _sample(images: torch.Tensor, theta: torch.Tensor, out_size: int) -> torch.Tensor:
    """Bilinear crops of ``images`` (M, C, H, W) by ``theta`` (M, 2, 3); returns (M, C, out_size, out_size)."""
    m, c = images.shape[:2]
    grid = F.affine_grid(theta.to(images.dtype), [m, c, out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _check_shapes(images: torch.Tensor, actions: torch.Tensor, action_dim: int) -> None:
    """Raises ValueError unless images is (M, C, S, S) and actions (M, action_dim)."""
    if images.dim() != 4 or actions.dim() != 2 or actions.shape != (images.shape[0], action_dim):
        raise ValueError(
            f"expected images (M, C, S, S) and actions (M, {action_dim}), got {tuple(images.shape)} "
            f"and {tuple(actions.shape)}"
        )


def _theta(
    side_h: torch.Tensor, side_w: torch.Tensor, top: torch.Tensor, left: torch.Tensor, image_size: int
) -> torch.Tensor:
    """Affine matrices (M, 2, 3) mapping the output grid onto the box [top, top+side_h) x [left, left+side_w)."""
    zero = torch.zeros_like(side_w)
    # Same arithmetic as the reference (centre = (x1 + x2) / S - 1), so theta matches it bit for bit.
    row_x = torch.stack([side_w / image_size, zero, -1 + (left + (left + side_w)) / image_size], dim=-1)
    row_y = torch.stack([zero, side_h / image_size, -1 + (top + (top + side_h)) / image_size], dim=-1)
    return torch.stack([row_x, row_y], dim=1)


def deformable_theta(
    actions: torch.Tensor,
    patch_size: int,
    image_size: int,
    input_patch_size: int | None = None,
    frame_size: int = MAX_REGION,
) -> torch.Tensor:
    """Returns theta (M, 2, 3) of the deformable patch for ``actions`` (M, 4) = [y, x, scale_h, scale_w].

    ``image_size`` is the side of the sampled map and ``patch_size`` the output side in that map's units; for
    feature maps ``input_patch_size`` is the pixel patch side P that defines the scale (default: patch_size).
    ``frame_size`` is the pixel side of the frames the policy looks at (224 in every published setting).
    """
    pin = patch_size if input_patch_size is None else input_patch_size
    lo, hi = region_range(frame_size)
    # scale relative to the pixel patch: region side in pixels = pin * scale = 96 + 128 * a_s (at 224)
    scale = actions[:, 2:4] * (hi - lo) / pin + lo / pin
    side = patch_size * scale  # (M, 2): [h, w] in map units
    top_left = actions[:, :2] * (image_size - side)  # position relative to the free range: box stays inside
    return _theta(side[:, 0], side[:, 1], top_left[:, 0], top_left[:, 1], image_size)


def deformable_regions(actions: torch.Tensor, patch_size: int, frame_size: int) -> torch.Tensor:
    """Returns the regions (M, 4) [x, y, w, h], in pixels of the S = ``frame_size`` frame, that the deformable
    patches of ``actions`` (M, 4) = [y, x, scale_h, scale_w] crop (what the focus network sees of the frame)."""
    theta = deformable_theta(actions, patch_size, frame_size, patch_size, frame_size)
    w, h = theta[:, 0, 0] * frame_size, theta[:, 1, 1] * frame_size
    cx, cy = (theta[:, 0, 2] + 1) * frame_size / 2, (theta[:, 1, 2] + 1) * frame_size / 2
    return torch.stack([cx - w / 2, cy - h / 2, w, h], dim=1)


def square_regions(top_left: torch.Tensor, side: int) -> torch.Tensor:
    """Returns the regions (..., 4) [x, y, side, side] (pixels) of side x side patches at top-left corners
    (..., 2) [y, x] (AdaFocus V1's integer crops, V2's fixed-size patches)."""
    corners = top_left.float()
    sides = torch.full_like(corners[..., :1], float(side))
    return torch.cat([corners.flip(-1), sides, sides], dim=-1)


def deformable_patch_grid(
    images: torch.Tensor,
    actions: torch.Tensor,
    patch_size: int,
    image_size: int,
    input_patch_size: int | None = None,
    frame_size: int = MAX_REGION,
) -> torch.Tensor:
    """Returns deformable crops (M, C, patch_size, patch_size) of ``images`` (M, C, S, S), S = image_size.

    ``actions`` (M, 4) in [0, 1] = [y, x, scale_h, scale_w] (one action per image; C may hold several frames
    stacked along channels to crop them identically). Differentiable w.r.t. ``actions`` and ``images``;
    callers detach the action where the method stops the gradient.
    """
    _check_shapes(images, actions, 4)
    theta = deformable_theta(actions, patch_size, image_size, input_patch_size, frame_size)
    return _sample(images, theta, patch_size)


def random_actions(
    m: int,
    patch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    frame_size: int = MAX_REGION,
) -> torch.Tensor:
    """Returns random deformable actions (m, 4): position ~ U(0, 1), scale fixed so the region is exactly P px.

    Draws a full (m, 4) uniform tensor and then overwrites the scales, like ``torch.rand_like`` on the policy
    output followed by assignment, so the RNG stream advances identically to the reference.
    """
    actions = torch.rand(m, 4, generator=generator, device=device)
    actions[:, 2:] = scale_action(patch_size, frame_size)
    return actions


def fixed_theta(actions: torch.Tensor, patch_size: int, image_size: int) -> torch.Tensor:
    """Returns theta (M, 2, 3) of the AdaFocusV2 fixed-size patch for ``actions`` (M, 2) = [y, x]."""
    top_left = actions * (image_size - patch_size)
    side = torch.full_like(top_left[:, 0], float(patch_size))
    return _theta(side, side, top_left[:, 0], top_left[:, 1], image_size)


def fixed_patch_grid(
    images: torch.Tensor, actions: torch.Tensor, patch_size: int, image_size: int
) -> torch.Tensor:
    """Returns V2-style crops (M, C, P, P) of ``images`` (M, C, S, S): a P x P window at top-left a * (S - P).

    ``actions`` (M, 2) in [0, 1] = [y, x]. V2 does not detach the action here (end-to-end gradient).
    """
    _check_shapes(images, actions, 2)
    return _sample(images, fixed_theta(actions, patch_size, image_size), patch_size)
