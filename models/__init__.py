"""Composed models: Uni-AdaFocus (presets 'an' / 'tsm' / 'x3d') and the plain TSN / TSM / X3D baselines."""

from __future__ import annotations

from torch import nn

from models.config import ModelConfig, preset_defaults
from models.losses import build_criterion


def build_model(cfg: ModelConfig) -> nn.Module:
    """Returns the (randomly initialised) model described by `cfg`; see `load_pretrained` for backbone weights."""
    from models.baselines import TSNBaseline, X3DBaseline
    from models.uni_adafocus import UniAdaFocus

    if cfg.model == "uniadafocus":
        return UniAdaFocus(cfg)
    if cfg.model in ("tsn", "tsm"):
        return TSNBaseline(cfg)
    return X3DBaseline(cfg)


def _load_backbone(module: nn.Module, arch: str, path: str | None, allowed_extra: tuple[str, ...]) -> None:
    """Loads ImageNet / Kinetics weights into one backbone. Keys of the file's classifier that the module
    replaced (TSN) or resized (other class count) are skipped; anything else that does not fit is an error."""
    from archs import WeightsError, load_weights, pretrained_path

    source = path if path else str(pretrained_path(arch))  # raises the clear "download it from" error
    result = load_weights(module, source, strict=False)
    bad_unexpected = [k for k in result.unexpected if not k.startswith(allowed_extra)]
    bad_mismatch = [m for m in result.mismatched if not m.startswith(allowed_extra)]
    if result.missing or bad_unexpected or bad_mismatch:
        raise WeightsError(
            f"{source} does not fit backbone {arch!r}: missing {result.missing[:10]}, "
            f"unexpected {bad_unexpected[:10]}, shape mismatches {bad_mismatch[:10]}"
        )


def load_pretrained(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """Loads the backbones' pretrained weights (ImageNet MobileNetV2 / ResNet, Kinetics X3D `.pyth`) in place and
    returns `model`. `cfg.pretrain == 'none'` skips loading; a missing file raises archs' error naming the file
    and where to download it. `cfg.glance_weights` / `cfg.focus_weights` override the default file locations.
    """
    if cfg.pretrain in ("none", "", None):
        return model
    heads = ("classifier.", "fc.", "head.projection.")
    if cfg.model == "uniadafocus":
        glance, focus = model.global_CNN, model.local_CNN
        if cfg.preset == "tsm":
            glance, focus = glance.base_model, focus.base_model
        _load_backbone(glance, cfg.glance_arch, cfg.glance_weights, heads)
        _load_backbone(focus, cfg.focus_arch, cfg.focus_weights, heads)
        if cfg.preset == "x3d":
            model.share_head_params()
    elif cfg.model in ("tsn", "tsm"):
        _load_backbone(model.base_model, cfg.focus_arch, cfg.focus_weights, heads)
    else:
        _load_backbone(model.net, cfg.focus_arch, cfg.focus_weights, heads)
    return model


__all__ = ["ModelConfig", "build_criterion", "build_model", "load_pretrained", "preset_defaults"]
