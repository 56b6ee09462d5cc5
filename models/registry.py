"""The method registry: a method is a name -> (config, flags, model class) entry.

The engine (ops/) never asks which method it runs: it looks the method up here by `ModelConfig.model` (the
`--model` / `--method` flag) and talks to the model through the interface of `models.base.VideoModel`.
Adding a method = its modules under models/ (and archs/) plus one `register_method(Method(...))` call; see
models/methods.py for the built-in entries and tests/test_registry.py for a toy method added from outside.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

from models.config import ModelConfig

DEFAULT_METHOD = "uniadafocus"


@dataclass(frozen=True)
class Method:
    """One method of the framework.

    model_cls: built as `model_cls(cfg)`; a `models.base.VideoModel`, which tells the engine what it needs.
    flags: the command-line dests only this method (among all registered) reads; given for another method
        they are refused with a message naming the methods that use them.
    defaults: values of config fields that take precedence over the preset's (e.g. a baseline's frame count).
    add_arguments: adds the method's own flags to the shared parser (an argument group of its own).
    finalize: `finalize(cfg, defaulted)`, the method's part of ModelConfig's one validation step: derive and
        check fields (raise ValueError naming the flag); `defaulted` = fields that took a default.
    resolve_args: `resolve_args(args)` for command-line spellings that are not config fields (e.g. the AN
        form's --num_segments); raise ValueError naming the flag.
    has_policy: the model has learned policies that `--policy random` can replace at evaluation.
    run_name: `run_name(args)`, the run folder's name as the method's original code built it (default:
        `{METHOD}_{dataset}_{modality}_segment{num_segments}_e{epochs}`).
    translate_argv: `translate_argv(argv)` -> the framework's argv for a command-line form of the method's own
        (e.g. AdaFocus V1's `key=value` tokens), or None when argv is not in that form; raise ValueError naming
        the offending token. The one parser asks every method before parsing.
    schedule: the training stages of a staged method in order, each as the flags it adds to a command line;
        `{i}` in a flag stands for the checkpoint of step i (e.g. `--tune_from {2}`). Empty: one training run.
    """

    name: str
    model_cls: type[nn.Module]
    description: str
    config_cls: type[ModelConfig] = ModelConfig
    flags: tuple[str, ...] = ()
    defaults: Mapping[str, object] = field(default_factory=dict)
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    finalize: Callable[[ModelConfig, set[str]], None] | None = None
    resolve_args: Callable[[argparse.Namespace], None] | None = None
    has_policy: bool = False
    run_name: Callable[[argparse.Namespace], str] | None = None
    translate_argv: Callable[[list[str]], list[str] | None] | None = None
    schedule: tuple[tuple[str, ...], ...] = ()


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Adds `method` to the registry (a second entry of the same name is an error) and returns it."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Removes a method (tests that add a toy method clean up with it)."""
    _METHODS.pop(name, None)


def _ensure_builtin() -> None:
    import models.methods  # noqa: F401  (registers the built-in methods on first use)


def method_names() -> list[str]:
    """Returns the registered method names, the default first."""
    _ensure_builtin()
    return sorted(_METHODS, key=lambda n: (n != DEFAULT_METHOD, n))


def get_method(name: str) -> Method:
    """Returns the registered method `name`; raises ValueError listing the known ones."""
    _ensure_builtin()
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r} (choose from {', '.join(method_names())})")
    return _METHODS[name]


def config_from_args(args: argparse.Namespace, num_classes: int | None = None) -> ModelConfig:
    """Returns the config of the method `args.model` for parsed command-line arguments."""
    return get_method(args.model or DEFAULT_METHOD).config_cls.from_args(args, num_classes)


def config_from_dict(values: Mapping) -> ModelConfig:
    """Rebuilds a config saved with `ModelConfig.to_dict()` (e.g. a checkpoint's `model_config`)."""
    return get_method(values.get("model", DEFAULT_METHOD)).config_cls(**values)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Returns the randomly initialised model of `cfg`, in train mode (partial BN, if asked, already frozen,
    so that DDP never waits for its gradients); `model.load_pretrained()` loads the backbones' weights. With
    `cfg.student_size` the model sits behind an in-model resize (models/distill.py, same state_dict keys)."""
    from models.distill import build_student

    if cfg.num_classes is None:
        raise ValueError("build_model needs cfg.num_classes")
    return build_student(get_method(cfg.model).model_cls, cfg).train()


def store_name(args: argparse.Namespace) -> str:
    """Returns the run name of resolved command-line arguments (+ `_{suffix}` when given)."""
    method = get_method(args.model)
    if method.run_name is not None:
        name = method.run_name(args)
    else:
        name = (
            f"{method.name.upper()}_{args.dataset}_{args.modality}_segment{args.num_segments}_e{args.epochs}"
        )
    return name if args.suffix is None else f"{name}_{args.suffix}"


def input_layout(cfg: ModelConfig) -> tuple[int, int]:
    """Returns (glance frames, candidate frames) the data pipeline delivers per view for `cfg`'s model."""
    return get_method(cfg.model).model_cls.input_layout(cfg)
