"""Export a trained checkpoint for deployment (what scripts/export.py runs): ONNX or TorchScript graphs and the
deploy.json that tells a runtime everything the loader did.

A model with early exit (`VideoModel.staged`) is exported as its two stages, so a runtime can stop after the
first: `glance` (frames -> `glance_logits`, exit 0, and the state the second stage continues from) and `focus`
(frames + that state -> `logits`, `exit_logits`, and where the model looked). Any other model is one graph
`model` (frames -> `logits`, `exit_logits`, ...). The graphs take normalised float32 frames (B, T, 3, S, S);
everything the model does inside (glance resize, frame selection, patch crops, input conventions, ResKD's
resize) is in them. What the loader does (sampling, resize and crop, normalisation, layout) is in deploy.json
with the class names, the GFLOPs per exit and, if given, the exit thresholds. State entries that are slices of
the input frames (the candidate frames) are not outputs of the glance graph: the focus graph takes the frames
again and slices them itself.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ops.engine.loops import input_spec
from ops.tools.export_ops import OPERATIONS, calibrated_activations, register_onnx_forms
from ops.tools.predict import Predictor

FORMATS = ("onnx", "torchscript")
MANIFEST = "deploy.json"
FRAMES = "frames"
DECISIONS = ("glance", "selected", "regions")
DEFAULT_OPSET = 20  # AffineGrid (Uni-AdaFocus, AdaFocus V2 patches) needs opset 20
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def _flatten(state: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Returns the entries of a nested state dict as (dotted name, value), in insertion order."""
    items = []
    for key, value in state.items():
        name = f"{prefix}{key}"
        items += _flatten(value, name + ".") if isinstance(value, dict) else [(name, value)]
    return items


def _unflatten(items: dict[str, object]) -> dict:
    """Returns the nested dict of dotted-name entries (the inverse of `_flatten`)."""
    out: dict = {}
    for name, value in items.items():
        *path, last = name.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


@dataclass
class StatePlan:
    """How a glance-stage state crosses from the glance graph to the focus graph: `tensors` are outputs of the
    one and inputs of the other, `frames` maps entries that are x[:, a:b] of the input frames to (a, b), and
    `constants` holds the entries that are no tensors (kept in the focus graph as they are)."""

    tensors: list[str] = field(default_factory=list)
    frames: dict[str, tuple[int, int]] = field(default_factory=dict)
    constants: dict[str, object] = field(default_factory=dict)


def plan_state(state: dict, x: torch.Tensor) -> StatePlan:
    """Returns the StatePlan of a `glance_stage(x)` state; raises ValueError for a view of x that is not a slice
    of its frame axis (the focus graph could not rebuild it)."""
    plan = StatePlan()
    for name, value in _flatten(state):
        if not isinstance(value, torch.Tensor):
            plan.constants[name] = value
        elif value.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            offset = value.storage_offset() - x.storage_offset()
            a = offset // x.stride(1)
            b = a + (value.shape[1] if value.dim() == x.dim() else -1)
            if value.stride() != x.stride() or offset % x.stride(1) or not torch.equal(value, x[:, a:b]):
                raise ValueError(f"glance_stage state {name!r} is a view of the frames other than x[:, a:b]")
            plan.frames[name] = (a, b)
        else:
            plan.tensors.append(name)
    return plan


def _outputs(model: nn.Module, out: dict, decisions: bool) -> tuple[torch.Tensor, ...]:
    """Returns (logits, exit_logits[, glance, selected, regions]) of a forward's dict."""
    values = [out["logits"], out["exit_logits"]]
    if decisions:
        found = model.decisions(out)
        values += [found[k] for k in DECISIONS]
    return tuple(values)


class GlanceGraph(nn.Module):
    """The glance stage: frames (B, T, 3, S, S) -> the state tensors of `plan` (glance_logits among them)."""

    def __init__(self, model: nn.Module, plan: StatePlan) -> None:
        super().__init__()
        self.model, self.plan = model, plan

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = dict(_flatten(self.model.glance_stage(x)))
        return tuple(state[name] for name in self.plan.tensors)


class FocusGraph(nn.Module):
    """The focus stage: frames and the glance state tensors -> (logits, exit_logits[, decisions])."""

    def __init__(self, model: nn.Module, plan: StatePlan, decisions: bool) -> None:
        super().__init__()
        self.model, self.plan, self.decisions = model, plan, decisions

    def forward(self, x: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        items = dict(self.plan.constants)
        items.update({name: x[:, a:b] for name, (a, b) in self.plan.frames.items()})
        items.update(zip(self.plan.tensors, tensors))
        out = self.model.focus_stage(_unflatten(items), None, aux=False)
        return _outputs(self.model, out, self.decisions)


class WholeGraph(nn.Module):
    """A model without early exit: frames -> (logits, exit_logits[, decisions])."""

    def __init__(self, model: nn.Module, decisions: bool) -> None:
        super().__init__()
        self.model, self.decisions = model, decisions

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.model, self.model(x), self.decisions)


@dataclass
class GraphSpec:
    """One exported graph: its module, example inputs, input and output names."""

    name: str
    module: nn.Module
    args: tuple[torch.Tensor, ...]
    inputs: list[str]
    outputs: list[str]


def graph_specs(model: nn.Module, x: torch.Tensor) -> list[GraphSpec]:
    """Returns the graphs of an eval-mode `model` on example frames x (B, T, 3, S, S): glance + focus for a
    staged model, else one."""
    with torch.no_grad():
        full = model(x)
    has_decisions = model.decisions(full) is not None
    heads = ["logits", "exit_logits"] + [f"decisions.{k}" for k in DECISIONS if has_decisions]
    if not model.staged:
        return [GraphSpec("model", WholeGraph(model, has_decisions), (x,), [FRAMES], heads)]
    with torch.no_grad():
        state = model.glance_stage(x)
    plan = plan_state(state, x)
    if "glance_logits" not in plan.tensors:
        raise ValueError(f"{type(model).__name__}.glance_stage returns no glance_logits tensor")
    with torch.no_grad():
        tensors = GlanceGraph(model, plan)(x)
    glance = GraphSpec("glance", GlanceGraph(model, plan), (x,), [FRAMES], list(plan.tensors))
    focus_inputs = [FRAMES] + list(plan.tensors)
    focus = GraphSpec("focus", FocusGraph(model, plan, has_decisions), (x, *tensors), focus_inputs, heads)
    return [glance, focus]


def _save(spec: GraphSpec, path: str, fmt: str, opset: int, dynamic: bool) -> list[str]:
    """Writes one graph; returns the input names it kept (the ONNX exporter drops unused inputs)."""
    module = spec.module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notes: the parity check below is what counts
        if fmt == "torchscript":
            with torch.no_grad(), calibrated_activations(module):
                torch.jit.trace(module, spec.args, check_trace=False).save(path)
            return spec.inputs
        register_onnx_forms()
        axes = {n: {0: "batch"} for n in spec.inputs + spec.outputs} if dynamic else None
        with calibrated_activations(module):
            torch.onnx.export(
                module,
                spec.args,
                path,
                dynamo=False,
                opset_version=opset,
                input_names=spec.inputs,
                output_names=spec.outputs,
                dynamic_axes=axes,
            )
    import onnx

    kept = {i.name for i in onnx.load(path, load_external_data=False).graph.input}
    return [n for n in spec.inputs if n in kept]


def loader_spec(predictor: Predictor) -> dict:
    """Returns what the loader does for the model of `predictor` (deploy.json's `input`)."""
    model, cfg = predictor.model, predictor.cfg
    spec = input_spec(model)
    glance, candidates = model.input_layout(cfg)
    num, den = spec.eval_scale
    return {
        "layout": "B,T,3,S,S float32: glance frames first, then candidates",
        "glance_frames": glance,
        "candidate_frames": candidates,
        "size": cfg.input_size,
        "sampling": spec.sampling,
        "clip_stride": spec.clip_stride,
        "scale_size": cfg.input_size * num // den,
        "crop": "center",
        "resize_backend": predictor.resize_backend,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "pixel_scale": spec.pixel_scale,
        "bgr": spec.bgr,
    }


def export_predictor(
    predictor: Predictor,
    out: str,
    fmt: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    thresholds: list[float] | None = None,
    criterion: str = "confidence",
    seed: int = 0,
) -> dict:
    """Exports the model of `predictor` into folder `out` as `fmt` (batch None: any batch size, else fixed);
    returns the manifest written to out/deploy.json."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model, cfg = predictor.model.eval().cpu(), predictor.cfg
    os.makedirs(out, exist_ok=True)
    frames = sum(model.input_layout(cfg))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch or 2, frames, 3, cfg.input_size, cfg.input_size, generator=gen)
    graphs = {}
    for spec in graph_specs(model, x):
        path = os.path.join(out, spec.name + SUFFIX[fmt])
        inputs = _save(spec, path, fmt, opset, batch is None)
        graphs[spec.name] = {"file": os.path.basename(path), "inputs": inputs, "outputs": spec.outputs}
    manifest = {
        "format": fmt,
        "opset": opset if fmt == "onnx" else None,
        "batch": "dynamic" if batch is None else batch,
        "staged": bool(model.staged),
        "graphs": graphs,
        "checkpoint": os.path.abspath(predictor.path),
        "model": cfg.model,
        "categories": list(predictor.categories),
        "num_exits": model.num_exits,
        "gflops": [float(g) for g in predictor.gflops],
        "input": loader_spec(predictor),
        "exit": {"thresholds": thresholds, "criterion": criterion},
        "operations": OPERATIONS,
    }
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def torch_reference(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Returns the eager outputs the exported graphs must reproduce on frames x: logits, exit_logits and the
    decisions, as numpy."""
    with torch.no_grad():
        out = model.eval()(x)
    found = model.decisions(out)
    values = {"logits": out["logits"], "exit_logits": out["exit_logits"]}
    if found is not None:
        values.update({f"decisions.{k}": found[k] for k in DECISIONS})
    return {k: v.numpy() for k, v in values.items()}
