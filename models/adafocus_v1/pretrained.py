"""AdaFocus V1's initial weights: ImageNet backbones (torchvision's MobileNetV2, as the original loads it) and the
stage-0 networks of `--pretrained_glancer` / `--pretrained_focuser` files (the original's or ours)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import nn

from archs.weights import strip_module_prefix
from models.adafocus_v1.checkpoint import glancer_state, is_v1_checkpoint, torchvision_mbv2_key
from models.core.weights import HEAD_PREFIXES, load_backbone_weights


def _numpy_scalars() -> list:
    # The original files store `best_acc` as a numpy scalar: allow exactly those types, never arbitrary pickles.
    types = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    return types + [scalar, (scalar, "numpy.core.multiarray.scalar")]


def load_imagenet(model: nn.Module) -> None:
    """Loads the ImageNet weights of the glance and focus networks of an AdaFocusV1 model. A MobileNetV2 glance
    takes torchvision's file (`cfg.glance_weights`, default ckpt/mobilenet_v2-b0353104.pth), remapped to our
    layout (a file already in the tonylins layout loads as is); the classifiers are left at their initial values."""
    from archs import WeightsError, load_weights, pretrained_path, read_state_dict

    cfg = model.cfg
    if cfg.glance_arch == "mobilenetv2":
        source = cfg.glance_weights or str(pretrained_path("mobilenetv2_torchvision"))
        state = read_state_dict(source)
        if any(".conv.0.0." in k for k in state):  # torchvision layout
            state = {torchvision_mbv2_key(k): v for k, v in state.items()}
        result = load_weights(model.glancer.net, state, strict=False)
        bad = [
            k
            for k in result.missing + result.unexpected + result.mismatched
            if not k.startswith(HEAD_PREFIXES)
        ]
        if bad:
            raise WeightsError(f"{source} does not fit the MobileNetV2 glance network: {bad[:10]}")
    else:
        load_backbone_weights(model.glancer.net, cfg.glance_arch, cfg.glance_weights)
    load_backbone_weights(model.focuser.net, cfg.focus_arch, cfg.focus_weights)


def load_stage_file(model: nn.Module, part: str, path: str) -> None:
    """Initialises `model.<part>` ('glancer' | 'focuser') from a checkpoint: an original V1 file (its `glancer` /
    `focuser` entry, e.g. globalcnn.pth.tar) or one of ours (the `<part>.` keys of its state_dict). Every key of
    the part's network must be in the file; the policy may be missing (it starts in stage 2)."""
    from archs import UnreadableFileError, WeightsError, load_torch_file

    try:
        raw = load_torch_file(path, safe_globals=_numpy_scalars())
    except UnreadableFileError as exc:
        raise WeightsError(f"--pretrained_{part} {exc}") from exc
    if not isinstance(raw, Mapping):
        raise WeightsError(f"--pretrained_{part} {path}: not a checkpoint dict")
    try:
        if isinstance(raw.get(part), Mapping) and not is_v1_checkpoint(raw):
            # only this network's entry (all the original's stage 1 reads): e.g. {'glancer': {...}}
            sub, state = glancer_state(raw[part]) if part == "glancer" else dict(raw[part]), None
        else:
            sub, state = None, model.convert_checkpoint(dict(raw)).get("state_dict")
    except ValueError as exc:
        raise WeightsError(f"--pretrained_{part} {path}: {exc}") from exc
    if sub is None:
        if not isinstance(state, Mapping):
            raise WeightsError(f"--pretrained_{part} {path}: no state_dict, glancer or focuser entry")
        prefix = part + "."
        state = strip_module_prefix(state)
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = getattr(model, part).state_dict()
    missing = [k for k in own if k.startswith("net.") and k not in sub]
    wrong = [k for k, v in sub.items() if k in own and v.shape != own[k].shape]
    if missing or wrong or not sub:
        raise WeightsError(
            f"--pretrained_{part} {path} does not fit the {part}: missing {missing[:5]}, shape mismatches {wrong[:5]}"
        )
    getattr(model, part).load_state_dict({k: v for k, v in sub.items() if k in own}, strict=False)
