"""Methods of the framework, one package each, on a core that imports none of them (models/core/): Uni-AdaFocus
(presets an / tsm / x3d), AdaFocus V1 and V2, the TSN / TSM / X3D baselines, the Efficient-3DCNNs and TAdaConv clip
networks, and ResKD distillation as a wrapper of any of them. Importing a method package registers it; this file
imports each once, so `import models` knows every built-in method.

The Python API (docs/cli.md and the README show it at work):

    from models import ModelConfig, build_model, load_model

    cfg = ModelConfig(model="uniadafocus", preset="tsm", dataset="something", num_classes=174)  # from a preset
    model = build_model(cfg).load_pretrained()  # random init, then the backbones' published weights
    model = load_model("log/RUN/ckpt.best.pth.tar")  # from a checkpoint of main.py: its model, its weights
    out = model(frames)  # frames (B, T, 3, S, S) normalised; out["logits"] (B, C), out["exit_logits"] (B, E, C)
    model.gflops_breakdown()["total"]  # GFLOPs per video (eval mode), per component and per exit

ops.tools.predict.Predictor predicts video files with a checkpoint's model.
"""

from __future__ import annotations

from collections.abc import Mapping

from archs.weights import load_torch_file, strip_module_prefix
from models import adafocus_v1, adafocus_v2, baselines, clipnets, reskd, uniadafocus  # noqa: F401 (registers)
from models.core import *  # noqa: F403 (the core's public API)
from models.core import VideoModel, build_model, config_from_dict
from models.core import __all__ as _core_names

__all__ = [*_core_names, "load_model", "model_from_checkpoint"]


def model_from_checkpoint(ckpt: Mapping, source: str = "<checkpoint>") -> VideoModel:
    """Returns the model of a checkpoint dict written by main.py (its `model_config`), its `state_dict` loaded
    strictly (with or without DDP's `module.`), in eval mode on the CPU. ValueError naming `source` when the dict
    holds no model_config (an original implementation's file: build its model from its flags) or its weights do
    not fit."""
    values = ckpt.get("model_config")
    if not isinstance(values, Mapping):
        raise ValueError(
            f"{source}: no model_config (not written by main.py, e.g. an original release): build its model with "
            "ModelConfig(...) / build_model and load its state_dict"
        )
    model = build_model(config_from_dict(dict(values)))
    try:
        model.load_state_dict(strip_module_prefix(ckpt["state_dict"]))
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{source}: its weights do not fit its model_config: {exc}") from None
    return model.eval()


def load_model(path: str, *, trust: bool = False) -> VideoModel:
    """Returns the model of checkpoint file `path` (see model_from_checkpoint), read with weights_only (tensors
    and plain types; trust=True unpickles the whole file, which runs code from it: only for files you trust)."""
    return model_from_checkpoint(load_torch_file(path, trust=trust, map_location="cpu"), path)
