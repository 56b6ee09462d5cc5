"""AdaFocus V2 (CVPR 2022), an and tsm variants; registers the method `adafocus_v2` when imported."""

from __future__ import annotations

from models.adafocus_v2.method import METHOD, V2Config
from models.adafocus_v2.model import AdaFocusV2
from models.core.registry import register_method

register_method(METHOD)

__all__ = ["AdaFocusV2", "V2Config"]
