"""Loading a backbone's published weights (ImageNet MobileNetV2 / ResNet, Kinetics X3D `.pyth`, Efficient-3DCNNs
and TAdaConv files, ImageNet ResNet-50 factorised for TAda2D) into a model."""

from __future__ import annotations

from torch import nn

# Keys of the published files' classifiers, which the models replace (TSN) or resize (another class count).
HEAD_PREFIXES = ("classifier.", "fc.", "head.projection.", "head.out.")


def load_glance_focus_weights(cfg, glance: nn.Module, focus: nn.Module) -> bool:
    """Loads the published weights of a glance + focus model's two backbones (cfg.glance_arch / cfg.focus_arch;
    cfg.glance_weights / cfg.focus_weights override the default files); nothing with `cfg.pretrain` 'none'.
    Returns whether it loaded."""
    if cfg.pretrain in ("none", "", None):
        return False
    load_backbone_weights(glance, cfg.glance_arch, cfg.glance_weights)
    load_backbone_weights(focus, cfg.focus_arch, cfg.focus_weights)
    return True


def load_backbone_weights(module: nn.Module, arch: str, path: str | None) -> None:
    """Loads the weights of backbone `arch` from `path` (None: archs' default location) into `module`. The
    file's classifier keys may be missing or differ in shape; anything else that does not fit is an error
    naming the file (a missing file: archs' error saying where to download it and where to put it)."""
    from archs import WeightsError, load_weights, pretrained_path, read_state_dict

    source = path if path else str(pretrained_path(arch))
    if hasattr(module, "convert_pretrained"):  # e.g. TAda2D from a 2-D ResNet-50 file (factorised weights)
        result = load_weights(module, module.convert_pretrained(read_state_dict(source)), strict=False)
    else:
        result = load_weights(module, source, strict=False)
    bad_unexpected = [k for k in result.unexpected if not k.startswith(HEAD_PREFIXES)]
    bad_mismatch = [m for m in result.mismatched if not m.startswith(HEAD_PREFIXES)]
    if result.missing or bad_unexpected or bad_mismatch:
        raise WeightsError(
            f"{source} does not fit backbone {arch!r}: missing {result.missing[:10]}, "
            f"unexpected {bad_unexpected[:10]}, shape mismatches {bad_mismatch[:10]}"
        )
