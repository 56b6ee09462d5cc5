"""Helpers for the Efficient-3DCNNs / TAdaConv fixtures (tests/fixtures/backbones3d/README.md): the two weight
rules, the fixture input, and the builder of each fixture's network from its name."""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import torch
from torch import nn

from archs import create_backbone

FIXTURES = Path(__file__).parent / "fixtures" / "backbones3d"


def load(name: str) -> dict:
    """Returns the parsed fixture `name` (without .json)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _generator(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def plain_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The fixtures' plain rule ('brief'): running_var U + 0.5, num_batches_tracked 0, any other 0.02 N(0, 1)."""
    g = _generator(key)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    return torch.randn(shape, generator=g) * 0.02


def fanin_tensor(
    key: str, shape: tuple[int, ...], gain: float, route_out_scale: float | None
) -> torch.Tensor:
    """The fixtures' second rule (`fanin_rule.text`): weights N(0, gain / fan_in), fan_in after dropping leading
    size-1 dims; 1-D weights 1 + 0.02 N; route-function output convs N * route_out_scale when set."""
    g = _generator(key)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    if key.endswith("running_mean"):
        return torch.randn(shape, generator=g) * 0.02
    if route_out_scale is not None and re.search(r"_rf\.b(_bias)?\.", key) and key.endswith("weight"):
        return torch.randn(shape, generator=g) * route_out_scale
    if key.endswith("weight") and len(shape) >= 2:
        dims = list(shape)
        while len(dims) > 1 and dims[0] == 1:
            dims.pop(0)
        return torch.randn(shape, generator=g) * math.sqrt(gain / math.prod(dims[1:]))
    if key.endswith("weight") and len(shape) == 1:
        return 1 + 0.02 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) * 0.02


def apply_rule(net: nn.Module, rule: str, fixture: dict | None = None) -> nn.Module:
    """Loads the 'plain' or 'fanin' rule weights into `net` (strictly) and returns it in eval mode."""
    sd = net.state_dict()
    if rule == "plain":
        values = {k: plain_tensor(k, tuple(v.shape)) for k, v in sd.items()}
    else:
        f = fixture["fanin_rule"]
        values = {k: fanin_tensor(k, tuple(v.shape), f["gain"], f["route_out_scale"]) for k, v in sd.items()}
    net.load_state_dict(values, strict=True)
    return net.eval()


def fixture_input(shape) -> torch.Tensor:
    """The fixtures' input: torch.randn(shape) from a generator seeded 0."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(0))


def build(name: str, num_classes: int = 600) -> nn.Module:
    """Returns the network of fixture `name` ('mobilenetv2_1.0x', 'shufflenet_0.5x_g3', 'resnet50_B',
    'resnext101_B_c32', 'squeezenet_1.1', 'tada2d_r50_8x8_k400', 'tadaconvnextv2_t_16f_k400', ...)."""
    if name.startswith("tada2d_r50"):
        return create_backbone("tada2d_r50", num_classes=num_classes)
    if name.startswith("tadaconvnextv2_"):
        return create_backbone(f"tadaconvnextv2_{name.split('_')[1]}", num_classes=num_classes)
    if m := re.fullmatch(r"(mobilenet|mobilenetv2|shufflenetv2)_([\d.]+)x", name):
        return create_backbone(f"{m[1]}_3d", num_classes=num_classes, width_mult=float(m[2]))
    if m := re.fullmatch(r"shufflenet_([\d.]+)x_g(\d+)", name):
        return create_backbone(
            "shufflenet_3d", num_classes=num_classes, width_mult=float(m[1]), groups=int(m[2])
        )
    if m := re.fullmatch(r"squeezenet_([\d.]+)", name):
        return create_backbone("squeezenet_3d", num_classes=num_classes, version=float(m[1]))
    if m := re.fullmatch(r"resnet(\d+)_([AB])", name):
        return create_backbone(f"resnet{m[1]}_3d", num_classes=num_classes, shortcut_type=m[2])
    if m := re.fullmatch(r"resnext(\d+)_([AB])_c(\d+)", name):
        return create_backbone(
            f"resnext{m[1]}_3d", num_classes=num_classes, shortcut_type=m[2], cardinality=int(m[3])
        )
    raise KeyError(f"no builder for fixture {name!r}")
