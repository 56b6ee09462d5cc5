"""Backbones: MobileNetV2, ResNet-18/34/50/101/152 (+ TSM shift), X3D-S/M/L, the Efficient-3DCNNs 3-D networks, TAda2D and
TAdaConvNeXtV2; the name table (archs/names.py) and weight loading."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .e3d_mobile import mobilenet_3d, mobilenetv2_3d, squeezenet_3d
from .e3d_resnet import resnet18_3d, resnet50_3d, resnet101_3d, resnext101_3d
from .e3d_shufflenet import shufflenet_3d, shufflenetv2_3d
from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .names import canonical_arch, clip_input, is_clip_arch, run_name_arch
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .tada import factorize_resnet_weights, tada2d_r50
from .tadaconv import RouteFuncMLP, TAdaConv2d, calibrate_activations
from .tadaconvnext import tadaconvnextv2_b, tadaconvnextv2_s, tadaconvnextv2_t
from .temporal_shift import TemporalShift, make_temporal_shift, temporal_shift
from .weights import (
    LoadResult,
    UnreadableFileError,
    WeightsError,
    load_torch_file,
    load_weights,
    pretrained_path,
    read_state_dict,
)
from .x3d import X3D, x3d_l, x3d_m, x3d_s

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mobilenetv2": mobilenet_v2,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "x3d_s": x3d_s,
    "x3d_m": x3d_m,
    "x3d_l": x3d_l,
    # Efficient-3DCNNs (clips of 16 x 112^2, Kinetics-600 heads): width_mult, groups, version, shortcut_type, ...
    "mobilenet_3d": mobilenet_3d,
    "mobilenetv2_3d": mobilenetv2_3d,
    "shufflenet_3d": shufflenet_3d,
    "shufflenetv2_3d": shufflenetv2_3d,
    "squeezenet_3d": squeezenet_3d,
    "resnet18_3d": resnet18_3d,
    "resnet50_3d": resnet50_3d,
    "resnet101_3d": resnet101_3d,
    "resnext101_3d": resnext101_3d,
    # TAdaConv (Kinetics-400 heads): num_frames, dropout, eval_softmax, ...
    "tada2d_r50": tada2d_r50,
    "tadaconvnextv2_t": tadaconvnextv2_t,
    "tadaconvnextv2_s": tadaconvnextv2_s,
    "tadaconvnextv2_b": tadaconvnextv2_b,
}


def create_backbone(
    name: str,
    *,
    pretrained: bool | str = False,
    shift: bool = False,
    n_segment: int = 8,
    shift_div: int = 8,
    **kw,
) -> nn.Module:
    """Returns backbone `name` built with `**kw` (e.g. num_classes, width_mult, base_width, num_frames, crop_size).

    pretrained: False, True (the conventional file from `pretrained_path(name)`), or a path/URL. Weights are
    loaded strictly before the TSM shift is inserted (`shift=True`, 2-D nets only), as in the original TSN.
    """
    key = canonical_arch(name)
    model = BACKBONES[key](**kw)
    if pretrained:
        load_weights(model, pretrained_path(key) if pretrained is True else pretrained)
    if shift:
        make_temporal_shift(model, n_segment, shift_div)
    return model


__all__ = [
    "BACKBONES",
    "LoadResult",
    "MobileNetV2",
    "ResNet",
    "RouteFuncMLP",
    "TAdaConv2d",
    "calibrate_activations",
    "TemporalShift",
    "UnreadableFileError",
    "WeightsError",
    "X3D",
    "canonical_arch",
    "clip_input",
    "create_backbone",
    "factorize_resnet_weights",
    "is_clip_arch",
    "load_torch_file",
    "load_weights",
    "make_temporal_shift",
    "mobilenet_3d",
    "mobilenet_v2",
    "mobilenetv2_3d",
    "pretrained_path",
    "read_state_dict",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet18_3d",
    "resnet34",
    "resnet50",
    "resnet50_3d",
    "resnet101_3d",
    "resnext101_3d",
    "run_name_arch",
    "shufflenet_3d",
    "shufflenetv2_3d",
    "squeezenet_3d",
    "tada2d_r50",
    "tadaconvnextv2_b",
    "tadaconvnextv2_s",
    "tadaconvnextv2_t",
    "temporal_shift",
    "x3d_l",
    "x3d_m",
    "x3d_s",
]
