"""Integer patch crops (AdaFocus V1): a P x P slice of the frame at a whole-pixel top-left, not differentiable in
the position (the policy learns by reinforcement, not through the crop).

A position action a = [y, x] in [0, 1]^2 places the top-left at floor(a * (S - P)) (float32, as the original), so
the patch always lies inside the frame. A random patch draws y, x = numpy.random.randint(0, S - P) (upper bound
exclusive, so the last offset S - P is never drawn, as the original's `random_crop`), y then x per image, from
numpy's global generator: the original's RNG stream, so a seeded run draws the same patches.
"""

from __future__ import annotations

import numpy as np
import torch


def grid_top_left(actions: torch.Tensor, patch_size: int, image_size: int) -> torch.Tensor:
    """Returns top-left corners (M, 2) long [y, x] = floor(a * (S - P)) for position actions (M, 2) in [0, 1]."""
    return torch.floor(actions.float() * (image_size - patch_size)).long()


def random_top_left(count: int, patch_size: int, image_size: int) -> torch.Tensor:
    """Returns `count` random top-left corners (count, 2) long, each [y, x] ~ randint(0, S - P) (S == P: 0)."""
    if patch_size > image_size:
        raise ValueError(f"patch_size {patch_size} exceeds the frame side {image_size}")
    if patch_size == image_size:  # the original returns the whole frame without drawing
        return torch.zeros(count, 2, dtype=torch.long)
    corners = [
        [np.random.randint(0, image_size - patch_size), np.random.randint(0, image_size - patch_size)]
        for _ in range(count)
    ]
    return torch.tensor(corners, dtype=torch.long).view(count, 2)


def integer_crop(images: torch.Tensor, top_left: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Returns the patches images[m, :, y:y+P, x:x+P] as (M, C, P, P) for images (M, C, S, S) and top_left (M, 2)
    [y, x] (an exact copy of the pixels; gradients reach the images, not the position)."""
    if images.dim() != 4 or top_left.shape != (images.shape[0], 2):
        raise ValueError(
            f"expected images (M, C, S, S) and top_left (M, 2), got {tuple(images.shape)} and "
            f"{tuple(top_left.shape)}"
        )
    size = images.shape[-1]
    if top_left.device.type == "cpu" and top_left.numel():  # checked on the host: free here
        if top_left.min() < 0 or top_left.max() > size - patch_size:
            raise ValueError(
                f"patch of side {patch_size} at {top_left.tolist()} leaves the {size} x {size} frame"
            )
    elif top_left.numel():  # on a GPU without a host sync: the device raises at its next synchronisation
        inside = (top_left >= 0).all() & (top_left <= size - patch_size).all()
        torch._assert_async(inside, f"a patch of side {patch_size} leaves the {size} x {size} frame")
    top_left = top_left.to(images.device).long()
    steps = torch.arange(patch_size, device=images.device)
    rows = (top_left[:, 0:1] + steps).unsqueeze(2)  # (M, P, 1)
    cols = (top_left[:, 1:2] + steps).unsqueeze(1)  # (M, 1, P)
    index = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    return images[index, :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (M, P, P, C) -> (M, C, P, P)
