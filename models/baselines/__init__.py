"""Baselines on full frames (TSN, TSM, X3D); registers the methods `tsn`, `tsm` and `x3d` when imported."""

from __future__ import annotations

from models.baselines.method import TSM_METHOD, TSN_METHOD, X3D_METHOD, BaselineConfig
from models.baselines.model import TSNBaseline, X3DBaseline
from models.core.registry import register_method

for _method in (TSN_METHOD, TSM_METHOD, X3D_METHOD):
    register_method(_method)

__all__ = ["BaselineConfig", "TSNBaseline", "X3DBaseline"]
