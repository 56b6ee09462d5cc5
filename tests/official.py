"""Helpers that rebuild the official fixtures' inputs: the deterministic weight contract and the frames
(tests/fixtures/official/README.md sections 2-3)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

FIXTURES = Path(__file__).parent / "fixtures" / "official"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
POLICY_OUTPUT_KEYS = ("temporal_policy.Tconv.6.weight", "spatial_policy.encoder.9.weight")
EPS32 = torch.finfo(torch.float32).eps


def load_fixture(name: str) -> dict:
    """Returns the parsed JSON fixture `name` (e.g. 'tsm_gain1.json')."""
    return json.loads((FIXTURES / name).read_text())


def contract_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Returns the value of state_dict entry `key` under the fixtures' deterministic weight contract."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_var"):
        return 1.0 + 0.1 * torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.05 * torch.randn(shape, generator=g)
    if key.endswith(".weight") and len(shape) >= 2:
        return torch.randn(shape, generator=g) * (1.0 / math.prod(shape[1:]) ** 0.5)
    if key.endswith(".weight") and len(shape) == 1:
        return 1.0 + 0.05 * torch.randn(shape, generator=g)
    return 0.02 * torch.randn(shape, generator=g)


def contract_tolerances(entry: dict) -> tuple[float, float]:
    """Returns (abs tolerance of the sums, of single values) of a contract tensor against its fixture entry.

    torch.randn draws the same uniforms on every CPU but turns them into normals with log, cos and sin
    vectorised per instruction set (AVX2, AVX-512, none), so a value may differ by a few float32 ulps of its
    radius, i.e. a few eps of the tensor's scale (scalar build vs AVX2, all entries: per value at most 26 eps
    times the mean |value|; sum and abs_sum within 1.4 eps times abs_sum). The tolerances, 64 eps * mean
    |value| and 8 eps * abs_sum, keep a margin over that and stay far below what a wrong seed, scale or
    formula changes (a sum by about sqrt(numel) times the scale, a value by its own size). All-zero integer
    tensors (abs_sum 0) are compared exactly.
    """
    abs_sum = entry["abs_sum"]
    return 8 * EPS32 * abs_sum, 64 * EPS32 * abs_sum / math.prod(entry["shape"])


def contract_state_dict(module: nn.Module, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Returns the contract weights for every entry of `module.state_dict()`; `gain` scales the policy outputs."""
    sd = {k: contract_tensor(k, tuple(v.shape)) for k, v in module.state_dict().items()}
    for key in POLICY_OUTPUT_KEYS:
        if key in sd:
            sd[key] = sd[key] * gain
    return sd


def fixture_frame(video: int, t: int) -> np.ndarray:
    """Returns frame t (1-based) of fixture video `video`: uint8 (256, 320, 3) blurred noise."""
    img = np.random.default_rng(1000 * video + t).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    return cv2.blur(img, (5, 5))


def fixture_clip(video: int, frame_numbers: list[int]) -> torch.Tensor:
    """Returns normalised frames (T, 3, 224, 224) float32: centre crop [16:240, 48:272], /255, ImageNet mean/std."""
    frames = np.stack([fixture_frame(video, t)[16:240, 48:272] for t in frame_numbers])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    return (x.float() / 255 - MEAN) / STD


# Constants of the official ops/early_exit_*.py (GFLOPs = multiply-accumulates, thop style), spec 5.1.
_PATCH_SIZES = (96, 128, 160, 192)
_AN = dict(
    glance=0.299511328,
    spatial=0.822485376,
    temporal=0.00412992,
    patch=(0.750725056, 1.334601664, 2.08530016, 3.002820544),
)
_TSM = dict(
    glance=0.299956768,
    spatial=0.41124288,
    temporal=0.002065024,
    patch=(0.75143776, 1.335314368, 2.086012864, 3.003533248),
)
_X3D = dict(glance=2.415453044, full=5.984521316, spatial=0.376217984, temporal=0.001524864)


def official_exit_gflops(preset: str, patch_size: int = 128, num_focus: int = 16) -> list[float]:
    """Per-exit GFLOPs from the official early-exit constants (equal to the official ``get_flops``).

    'an': num_focus + 1 exits, G(k) = 16 glance frames + k patches + policies (k > 0) + classifier.
    'tsm': [8 glance frames, + policies + num_focus patches]. 'x3d': [X3D-S glance, + X3D-L + policies]
    (the constants are for patch 128 and 32 focus frames only).
    """
    if preset == "x3d":
        if (patch_size, num_focus) != (128, 32):
            raise ValueError("official X3D constants exist only for patch_size=128, num_focus=32")
        c = _X3D
        return [c["glance"] + 0.0 + 0.0 + 0.0, c["glance"] + c["full"] + c["temporal"] + c["spatial"]]
    if preset not in ("an", "tsm"):
        raise ValueError(f"unknown preset {preset!r}; choose from ('an', 'tsm', 'x3d')")
    if patch_size not in _PATCH_SIZES:
        raise ValueError(f"official constants exist for patch sizes {_PATCH_SIZES}, got {patch_size}")
    c = _AN if preset == "an" else _TSM
    r = c["patch"][_PATCH_SIZES.index(patch_size)]
    flops = []
    for k in range(num_focus + 1) if preset == "an" else (0, num_focus):
        policies = (c["temporal"], c["spatial"]) if k > 0 else (0.0, 0.0)
        if preset == "an":
            # Same operand order as the original sum, so the tables match to the last bit.
            classifier = (5.246976 * 16 + 8.392704 * k + 0.8192 * 16 + 1.6384 * k) * 1e-3
            flops.append(c["glance"] * 16 + r * k + classifier + policies[0] + policies[1])
        else:
            flops.append(c["glance"] * 8 + r * k + policies[0] + policies[1])
    return flops
