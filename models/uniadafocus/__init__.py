"""Uni-AdaFocus (TPAMI'24), presets an / tsm / x3d; registers the method `uniadafocus` when imported."""

from __future__ import annotations

from models.core.registry import register_method
from models.uniadafocus.method import METHOD, UniAdaFocusConfig
from models.uniadafocus.model import UniAdaFocus

register_method(METHOD)

__all__ = ["UniAdaFocus", "UniAdaFocusConfig"]
