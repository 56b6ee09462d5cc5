"""The original AdaFocus V1 checkpoints -> our AdaFocus V1 model's state_dict.

An official file (`main_dist.py save_checkpoint`) holds `glancer` (torchvision-layout MobileNetV2 under `net.`),
`focuser` (torchvision ResNet-50 under `net.`, plus `policy.policy(_old).*` once a policy exists), `fc` (the GRU
classifier), `policy` (the trained ActorCritic, or None) and `model_state_dict` (all of them under `glancer.`,
`focuser.`, `classifier.`). Our model keeps the same names (`glancer.net.*`, `focuser.net.*`,
`focuser.policy.policy(_old).*`, `classifier.*`); only the MobileNetV2 inside the glancer has the tonylins layout
of archs/mobilenet_v2.py, so its keys are remapped (same architecture, same tensors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

V1_PARTS = ("glancer", "focuser", "fc")

# torchvision InvertedResidual `conv.*` -> tonylins `conv.{i}`: expand ratio 1 (no expansion conv) and > 1.
_EXPAND1 = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
_EXPAND = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
_BLOCK = re.compile(r"^features\.(\d+)\.conv\.(\d(?:\.\d)?)\.(.+)$")


def torchvision_mbv2_key(key: str) -> str:
    """Returns the tonylins-layout key of a torchvision MobileNetV2 key (`features.1.conv.0.0.weight` ->
    `features.1.conv.0.weight`, `features.2.conv.1.0.weight` -> `features.2.conv.3.weight`); other keys (stem,
    last conv, classifier) are the same in both layouts."""
    m = _BLOCK.match(key)
    if m is None:
        return key
    block, layer, rest = int(m.group(1)), m.group(2), m.group(3)
    table = _EXPAND1 if block == 1 else _EXPAND
    if layer not in table:
        raise ValueError(f"unexpected torchvision MobileNetV2 key {key!r}")
    return f"features.{block}.conv.{table[layer]}.{rest}"


def is_v1_checkpoint(ckpt: Mapping) -> bool:
    """True for a dict saved by the original AdaFocus V1 code (sub-dicts `glancer`, `focuser`, `fc`)."""
    return all(isinstance(ckpt.get(k), Mapping) for k in V1_PARTS)


def _prefixed(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def glancer_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns a glancer's `net.*` state_dict (torchvision MobileNetV2 keys, or a ResNet's) in our layout."""
    out = {}
    for key, value in sd.items():
        if not key.startswith("net."):
            raise ValueError(f"glancer key {key!r} does not start with 'net.'")
        out["net." + torchvision_mbv2_key(key[4:])] = value
    return out


def v1_state_dict(ckpt: Mapping) -> dict[str, torch.Tensor]:
    """Returns our model's state_dict entries from an original V1 checkpoint dict (sub-dicts, as its `resume`
    reads them: `policy`, when present, fills both `policy` and `policy_old`, as the original's stage 3 does)."""
    state = {f"glancer.{k}": v for k, v in glancer_state(ckpt["glancer"]).items()}
    state.update({f"focuser.{k}": v for k, v in ckpt["focuser"].items()})
    state.update({f"classifier.{k}": v for k, v in ckpt["fc"].items()})
    policy = ckpt.get("policy")
    if isinstance(policy, Mapping):
        for copy in ("policy", "policy_old"):
            state.update({f"focuser.policy.{copy}.{k}": v for k, v in policy.items()})
    return state


def model_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns our keys for an original `model_state_dict` (GFV.state_dict(): the glancer's MobileNetV2 remapped)."""
    out = {f"glancer.{k}": v for k, v in glancer_state(_prefixed(sd, "glancer.")).items()}
    out.update({k: v for k, v in sd.items() if not k.startswith("glancer.")})
    return out
