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
