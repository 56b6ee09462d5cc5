"""Methods of the framework (Uni-AdaFocus with presets an / tsm / x3d, TSN / TSM / X3D baselines), their registry,
presets and configuration."""

from __future__ import annotations

from models.config import ModelConfig
from models.registry import (
    Method,
    build_model,
    config_from_args,
    config_from_dict,
    get_method,
    input_layout,
    method_names,
    register_method,
)

__all__ = [
    "Method",
    "ModelConfig",
    "build_model",
    "config_from_args",
    "config_from_dict",
    "get_method",
    "input_layout",
    "method_names",
    "register_method",
]
