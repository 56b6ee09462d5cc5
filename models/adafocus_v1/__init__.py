"""AdaFocus V1 (ICCV 2021), trained in stages 0-3 with a PPO policy; registers the method `adafocus_v1` when
imported."""

from __future__ import annotations

from models.adafocus_v1.config import AdaFocusV1Config
from models.adafocus_v1.method import METHOD
from models.adafocus_v1.model import AdaFocusV1
from models.core.registry import register_method

register_method(METHOD)

__all__ = ["AdaFocusV1", "AdaFocusV1Config"]
