"""The method registry: a method is a name -> (config class, flags, model class) entry.

The engine (ops/) never asks which method it runs: it looks the method up here by `ModelConfig.model` (the
`--model` / `--method` flag) and talks to the model through the interface of `models.core.VideoModel`. A method
is a package under models/ that registers itself when imported (`register_method(Method(...))` in its
`__init__.py`); `models/__init__.py` imports every built-in method package once. This module imports no method.

A wrapper (`register_wrapper`) is a model-building hook any method can run behind, with flags of its own: ResKD's
in-model resize of a distilled student (models/reskd/).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.core.config import DEFAULT_METHOD, ModelConfig, register_config


@dataclass(frozen=True)
class Method:
    """One method of the framework.

    model_cls: built as `model_cls(cfg)`; a `models.core.VideoModel`, which tells the engine what it needs.
    config_cls: its ModelConfig subclass (fields, recipe, defaults and the `finalize` check of its part of the
        configuration); `ModelConfig(model=name, ...)` builds it.
    flags: the command-line dests only this method (among all registered) reads; given for another method
        they are refused with a message naming the methods that use them.
    add_arguments: adds the method's own flags to the shared parser (an argument group of its own).
    resolve_args: `resolve_args(args)` for command-line spellings that are not config fields (e.g. the AN
        form's --num_segments); raise ValueError naming the flag.
    has_policy: the model has learned policies that `--policy random` can replace at evaluation.
    run_name: `run_name(args)`, the run folder's name as the method's original code built it (default:
        `{METHOD}_{dataset}_{modality}_segment{num_segments}_e{epochs}`).
    translate_argv: `translate_argv(argv)` -> the framework's argv for a command-line form of the method's own
        (e.g. AdaFocus V1's `key=value` tokens), or None when argv is not in that form; raise ValueError naming
        the offending token. The one parser asks every method before parsing.
    schedule: the training stages of a staged method in order, each as the flags it adds to a command line;
        `{i}` in a flag stands for the best checkpoint of step i (`ckpt.best.pth.tar`, e.g. `--tune_from {2}`).
        Empty: one training run.
    """

    name: str
    model_cls: type[nn.Module]
    description: str
    config_cls: type[ModelConfig] = ModelConfig
    flags: tuple[str, ...] = ()
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    resolve_args: Callable[[argparse.Namespace], None] | None = None
    has_policy: bool = False
    run_name: Callable[[argparse.Namespace], str] | None = None
    translate_argv: Callable[[list[str]], list[str] | None] | None = None
    schedule: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Wrapper:
    """A hook around the model of any method.

    build: `build(model_cls, cfg)` -> the wrapped model when `cfg` asks for it, else None (the plain model).
    add_arguments: adds the wrapper's flags to the shared parser, in a group titled `title`.
    recipe: `recipe(args)` -> the values a run behind the wrapper takes where the command line sets none (over
        the method's recipe; e.g. ResKD's for `--distill`), {} when the wrapper is off.
    """

    name: str
    title: str
    build: Callable[[type[nn.Module], ModelConfig], nn.Module | None]
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    recipe: Callable[[argparse.Namespace], dict] | None = None


_METHODS: dict[str, Method] = {}
_WRAPPERS: dict[str, Wrapper] = {}


def register_method(method: Method) -> Method:
    """Adds `method` to the registry (a second entry of the same name is an error) and returns it."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    register_config(method.name, method.config_cls)
    return method


def unregister_method(name: str) -> None:
    """Removes a method (tests that add a toy method clean up with it)."""
    _METHODS.pop(name, None)
    register_config(name, None)


def register_wrapper(wrapper: Wrapper) -> Wrapper:
    """Adds a model wrapper (see Wrapper) and returns it."""
    _WRAPPERS[wrapper.name] = wrapper
    return wrapper


def wrappers() -> list[Wrapper]:
    """Returns the registered wrappers in registration order."""
    return list(_WRAPPERS.values())


def method_names() -> list[str]:
    """Returns the registered method names, the default first."""
    return sorted(_METHODS, key=lambda n: (n != DEFAULT_METHOD, n))


def get_method(name: str) -> Method:
    """Returns the registered method `name`; raises ValueError listing the known ones."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r} (choose from {', '.join(method_names())})")
    return _METHODS[name]


def config_from_args(args: argparse.Namespace, num_classes: int | None = None) -> ModelConfig:
    """Returns the config of the method `args.model` for parsed command-line arguments."""
    return get_method(args.model or DEFAULT_METHOD).config_cls.from_args(args, num_classes)


def config_from_dict(values: dict) -> ModelConfig:
    """Rebuilds a config saved with `ModelConfig.to_dict()` (e.g. a checkpoint's `model_config`)."""
    return get_method(values.get("model", DEFAULT_METHOD)).config_cls(**values)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Returns the randomly initialised model of `cfg`, in train mode (partial BN, if asked, already frozen,
    so that DDP never waits for its gradients), behind the first wrapper that claims `cfg` (e.g. ResKD's
    in-model resize for `cfg.student_size`); `model.load_pretrained()` loads the backbones' weights."""
    if cfg.num_classes is None:
        raise ValueError("build_model needs cfg.num_classes")
    model_cls = get_method(cfg.model).model_cls
    for wrapper in _WRAPPERS.values():
        model = wrapper.build(model_cls, cfg)
        if model is not None:
            return model.train()
    return model_cls(cfg).train()


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
