"""The core of the framework, which imports no method: the model interface (VideoModel, InputSpec), ModelConfig,
the registry, the dataset -> preset table and shared recipe fields, generic losses and heads, patch geometry and
FLOPs counting."""

from __future__ import annotations

from models.core.config import DEFAULT_METHOD, ModelConfig, require_positive
from models.core.interface import FramePretrainParts, InputSpec, VideoModel, freeze_partial_bn
from models.core.registry import (
    Method,
    Wrapper,
    build_model,
    config_from_args,
    config_from_dict,
    get_method,
    input_layout,
    method_names,
    register_method,
    register_wrapper,
    store_name,
    unregister_method,
)

__all__ = [
    "DEFAULT_METHOD",
    "FramePretrainParts",
    "InputSpec",
    "Method",
    "ModelConfig",
    "VideoModel",
    "Wrapper",
    "build_model",
    "config_from_args",
    "config_from_dict",
    "freeze_partial_bn",
    "get_method",
    "input_layout",
    "method_names",
    "register_method",
    "register_wrapper",
    "require_positive",
    "store_name",
    "unregister_method",
]
