"""Clip networks on full frames: Efficient-3DCNNs (`e3d`) and TAdaConv (`tada`); registers both methods when
imported."""

from __future__ import annotations

from models.clipnets.config import E3DConfig, TAdaConfig
from models.clipnets.method import E3D, TADA
from models.clipnets.model import E3DModel, TAdaModel
from models.core.registry import register_method

register_method(E3D)
register_method(TADA)

__all__ = ["E3DConfig", "E3DModel", "TAdaConfig", "TAdaModel"]
