"""Where a run's model comes from: its flags, or the `model_config` stored in the checkpoint it resumes or
fine-tunes.

Every checkpoint main.py writes stores the configuration of its model (`model_config`, ModelConfig.to_dict()).
Evaluation (`--evaluate`, main_nViewEval.py, test_early_exit.py) and a resumed training (`--resume`) build that
model: a model flag the user left out takes the checkpoint's value; a model flag given with another value stops
with an error naming the flag, both values and the file, unless `--override_config` asks for the flags' model on
purpose (e.g. more frames), which the run log then lists. A fine-tuning run (`--tune_from`) of the same method and
preset takes the file's values for the model flags left out as well, and the flags given are its new settings;
the log lists both. A file without `model_config` (the original implementations' checkpoints) changes nothing:
the model comes from the flags, as before.

Which values "the user gave" is decided by what the flags change: the method's own translation of the command
line (`Method.resolve_args`: an alias such as the AN form's `--num_segments`, or a default it fills such as AdaFocus
V1's evaluation stage) is run once with the user's model flags and once without them, and a config field counts as
given when the two differ or its own flag was typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping

from models import ModelConfig, get_method
from models.core.recipes import dataset_preset
from models.core.registry import Method
from ops.engine.checkpoint import CheckpointError, read_checkpoint
from ops.flags import STORE_TRUE

# Flags that decide where the model comes from (never cleared when telling "given" from "derived").
SOURCE_FLAGS = ("evaluate", "model", "resume", "tune_from", "distill", "trust_checkpoint", "override_config")
# Fields that only matter before weights are loaded (a checkpoint replaces the initialisation they choose).
INIT_FIELDS = ("pretrain", "glance_weights", "focus_weights")
NOT_COMPARED = ("preset", "dataset", "num_classes") + INIT_FIELDS


@dataclasses.dataclass
class Source:
    """The checkpoint a run takes its model from: its path, the flag that named it and its model_config."""

    path: str
    flag: str  # 'resume' | 'tune_from'
    saved: dict


def find_source(args: argparse.Namespace) -> tuple[Source | None, str | None]:
    """Returns (the checkpoint whose model_config the run builds: `--resume`, else `--tune_from`; a line for the
    log when the model comes from the flags although a checkpoint is given). None when there is none or the file
    stores no model_config (an original checkpoint). A missing file is left to the loading step, which names it.

    The file is read with weights_only here, whatever --trust_checkpoint says: a file that needs a full pickle is
    unpickled once, by the loading step, so that code in it runs once."""
    for flag in ("resume", "tune_from"):
        path = getattr(args, flag, None)
        if not path or not os.path.isfile(path):
            continue
        try:  # any layout: only model_config is read here (the loading step converts and checks the weights)
            saved = read_checkpoint(path, convert=lambda d: {"state_dict": {}, **d}).get("model_config")
        except CheckpointError as exc:
            if not (exc.unsafe and args.trust_checkpoint):
                raise
            return None, f"=> {path} needs a full pickle (--trust_checkpoint): the model comes from the flags"
        return (Source(path, flag, dict(saved)), None) if isinstance(saved, Mapping) else (None, None)
    return None, None


def adopts(source: Source, args: argparse.Namespace) -> str | None:
    """Returns None when the run builds the model of `source`, else why not (only a fine-tuning run may build
    another model: another method, another preset, or a method trained in stages, whose stages differ)."""
    if source.flag == "resume":
        return None
    model = source.saved.get("model")
    if "model" in args.explicit and args.model != model:
        return f"the file holds a {model} model, this run trains --model {args.model}"
    if source.saved.get("preset") != dataset_preset(args.dataset):
        return f"the file's model is of the {source.saved.get('preset')} preset, {args.dataset} of another"
    if get_method(model).schedule:
        return f"{model} is trained in stages, each with its own settings"
    return None


def _field_values(args: argparse.Namespace, names: list[str]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def given_values(
    args: argparse.Namespace, before: argparse.Namespace, method: Method, names: list[str]
) -> dict:
    """Returns {field: value} of the config fields the user's flags set. `before` is args as parsed (before
    method.resolve_args), `args` after it."""
    full = _field_values(args, names)
    bare = argparse.Namespace(**vars(before))
    for key in set(before.explicit) - set(SOURCE_FLAGS):
        setattr(bare, key, False if key in STORE_TRUE else None)
    bare.explicit = sorted(set(before.explicit) & set(SOURCE_FLAGS))
    try:
        if method.resolve_args is not None:
            method.resolve_args(bare)
        base = _field_values(bare, names)
    except ValueError:  # the method needs some of the flags (e.g. a stage to train): the typed fields only
        return {n: v for n, v in full.items() if n in before.explicit}
    return {n: v for n, v in full.items() if n in before.explicit or base.get(n) != v}


def _flag_of(
    field: str, args: argparse.Namespace, before: argparse.Namespace, method: Method, flag_name
) -> str:
    """Returns the typed flag that set `field`: its own, else the first whose absence changes it."""
    if field in before.explicit:
        return flag_name(field)
    names = [field]
    want = _field_values(args, names).get(field)
    for key in sorted(set(before.explicit) - set(SOURCE_FLAGS)):
        probe = argparse.Namespace(**vars(before))
        setattr(probe, key, False if key in STORE_TRUE else None)
        probe.explicit = [k for k in before.explicit if k != key]
        try:
            if method.resolve_args is not None:
                method.resolve_args(probe)
        except ValueError:
            continue
        if _field_values(probe, names).get(field) != want:
            return flag_name(key)
    return flag_name(field)


def resolve_from_checkpoint(
    args: argparse.Namespace,
    before: argparse.Namespace,
    method: Method,
    source: Source,
    err: Callable[[str], None],
    flag_name: Callable[[str], str],
) -> tuple[ModelConfig, set[str], list[str]]:
    """Returns (the config to build, the fields the user gave, the lines for the run log): the checkpoint's
    model_config with the user's model flags on top. For `--resume` a flag that changes the model is an error
    (`err`) unless --override_config."""
    names = [f.name for f in dataclasses.fields(method.config_cls)]
    given = given_values(args, before, method, names)
    saved = {k: v for k, v in source.saved.items() if k in names}
    values = {**saved, **{k: v for k, v in given.items() if k not in ("preset", "dataset", "model")}}
    values["num_classes"] = saved.get("num_classes") if source.flag == "resume" else None
    if source.flag == "tune_from":
        values["dataset"] = args.dataset
    try:
        cfg = method.config_cls(**values)
    except ValueError as exc:
        err(f"--{source.flag} {source.path}: its model_config with the flags given is no valid model: {exc}")
    changed = [n for n in names if n not in NOT_COMPARED and n in saved and getattr(cfg, n) != saved[n]]
    changed.sort(key=lambda n: n not in given)  # the typed ones first: the error names one of them
    if source.flag == "resume" and changed and not args.override_config:
        n = changed[0]
        flag = _flag_of(n, args, before, method, flag_name) if n in given else f"--{n} (derived)"
        more = f" (and {', '.join(changed[1:])})" if len(changed) > 1 else ""
        err(
            f"{flag} gives {n} {getattr(cfg, n)!r}{more}, but {source.path} was trained with {n} "
            f"{saved[n]!r} (its model_config), and a run from --resume builds that model. Leave the flag out, "
            "or pass --override_config to run the trained weights under the flags' setting on purpose"
        )
    diffs = ", ".join(f"{n} {getattr(cfg, n)!r} (file: {saved[n]!r})" for n in changed)
    kept = _kept(args, method, cfg, [n for n in saved if n not in given and n not in NOT_COMPARED])
    if source.flag == "resume":
        notes = [f"=> model from {source.path} (its model_config, --model {cfg.model}); {kept}"]
        if changed:
            notes.append(f"=> --override_config: the model differs from the one trained: {diffs}")
    else:
        notes = [
            f"=> fine-tuning from {source.path}: its model_config is kept; {kept}; new: {diffs or 'nothing'}"
        ]
    return cfg, set(given), notes


def _kept(args: argparse.Namespace, method: Method, cfg: ModelConfig, kept: list[str]) -> str:
    """Describes the settings taken from the file: those the flags and the preset alone would have set otherwise."""
    try:
        flags_only = method.config_cls.from_args(args)
    except ValueError:
        return f"{len(kept)} settings from the file"
    other = [n for n in kept if getattr(flags_only, n) != getattr(cfg, n)]
    said = ", ".join(
        f"{n} {getattr(cfg, n)!r} (the flags and preset: {getattr(flags_only, n)!r})" for n in other
    )
    return f"{len(kept)} settings from the file" + (f", of which {said}" if said else "")


def tune_notes(source: Source, cfg: ModelConfig, reason: str) -> list[str]:
    """The log lines of a fine-tuning run that builds its own model (reason: why not the file's): what it shares
    with the file's model_config and what is new."""
    same, new = [], []
    for name, value in source.saved.items():
        if name in NOT_COMPARED or not hasattr(cfg, name):
            continue
        (same if getattr(cfg, name) == value else new).append(
            f"{name} {getattr(cfg, name)!r} (file: {value!r})"
        )
    return [
        f"=> fine-tuning from {source.path}: the model comes from the flags ({reason}); "
        f"{len(same)} settings as in the file, new: {', '.join(new) or 'nothing'}"
    ]
