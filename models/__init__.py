"""Methods of the framework, one package each, on a core that imports none of them (models/core/): Uni-AdaFocus
(presets an / tsm / x3d), AdaFocus V1 and V2, the TSN / TSM / X3D baselines, the Efficient-3DCNNs and TAdaConv clip
networks, and ResKD distillation as a wrapper of any of them. Importing a method package registers it; this file
imports each once, so `import models` knows every built-in method."""

from __future__ import annotations

from models import adafocus_v1, adafocus_v2, baselines, clipnets, reskd, uniadafocus  # noqa: F401 (registers)
from models.core import *  # noqa: F403 (the core's public API)
from models.core import __all__  # noqa: F401
