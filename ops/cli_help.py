"""What the command line says about itself: the default of every preset-dependent flag, per dataset and method,
read from the recipes (models/core/recipes.py and each method's RECIPE / DEFAULTS, never written by hand), one
"not supported" line for the flags of the original command lines that are refused or have a single value, the
description of each entry script, the training flags of the evaluation scripts grouped apart, and
`--print_config` (the run's resolved configuration)."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from models import DEFAULT_METHOD, get_method, method_names
from models.core.recipes import DATASET_PRESET, dataset_preset

ENTRY = {"main": "main.py", "nview": "main_nViewEval.py", "early_exit": "test_early_exit.py"}
# Flags only training reads; main_nViewEval.py and test_early_exit.py accept them (a training command line runs
# there unchanged) and list them in a group of their own.
TRAINING_ONLY = (
    "epochs",
    "lr",
    "lr_type",
    "lr_steps",
    "lr_per_step",
    "momentum",
    "dampening",
    "nesterov",
    "weight_decay",
    "clip_gradient",
    "optimizer",
    "warmup_epochs",
    "warmup_start_lr",
    "boost_new_lr",
    "paramwise",
    "randaugment",
    "grayscale",
    "sync_bn",
    "compile",
    "start_epoch",
    "eval_freq",
    "print_freq",
    "pretrain",
    "tune_from",
)
# A default written by hand in a flag's help ("(preset)", "(preset 50)", "(default 224)", "(1.0)"): replaced by
# the recipes' values.
_HAND_DEFAULT = re.compile(r"\s*\((?:preset|default)\b[^)]*\)|\s*\(\d[\d.]*\)")


def usage(script: str) -> str:
    """The usage lines of an entry script: its command-line forms (the full flag list follows in the help)."""
    entry, ckpt = ENTRY[script], "" if script == "main" else " --resume CKPT"
    lines = [
        f"{entry} DATASET RGB{ckpt} [flags]  (the TSM / X3D form)",
        f"{entry} --dataset DATASET [--data_dir DIR]{ckpt} [flags]  (the AN form)",
    ]
    if script == "main":
        lines.append(f"{entry} dataset=DATASET key=value ...  (AdaFocus V1's form)")
    return "\n       ".join(lines)


def description(script: str) -> str:
    """The --help description of an entry script, naming every registered method."""
    methods = ", ".join(method_names())
    staged = ", ".join(f"--model {n}" for n in method_names() if get_method(n).schedule)
    if script == "main":
        return (
            f"Train (or with --evaluate, validate) a video recognition model: --model {{{methods}}} "
            f"({DEFAULT_METHOD} by default), any of them distilled from a teacher with --distill. The original "
            "command lines run unchanged: the TSM / X3D form (`main.py DATASET RGB ...`), the AN form (`--dataset "
            "actnet --data_dir DIR ...`) and AdaFocus V1's `key=value` form. Defaults come from the dataset's "
            "preset and the method's recipe (shown per flag below; --print_config shows a run's; a method trained "
            f"in stages, {staged}, sets its own per stage: see --print_config)."
        )
    what = (
        "Evaluate a checkpoint over --test_crops x --num_clips views per video, averaging the logits; prints "
        "the metrics and the GFLOPs per video x views (log_eval_*.json in the run folder)"
        if script == "nview"
        else "Sample-wise dynamic (early-exit) evaluation of a checkpoint: exit logits on the training split "
        "(calibration) and on val, an exit threshold per exit for a sweep of exit distributions, the "
        "accuracy-vs-GFLOPs curve per --exit_criterion as CSV and PNG in the run folder. The model needs several "
        "exits (a method with one stops with a message)"
    )
    return (
        f"{what}. Any method: {methods}; checkpoints of ours or of the original implementations. A checkpoint "
        "of ours builds its own model (its model_config): model flags may be left out, and one given with "
        "another value stops the run unless --override_config. An original checkpoint takes its model from "
        "the flags (the same as its training command line)."
    )


def format_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(v) for v in value)
    return "none" if value is None else str(value)


def recipes() -> dict[str, dict[str, dict]]:
    """{method: {dataset: its recipe}} for the datasets each method runs on (its recipe's `datasets` if it names
    them, else those whose preset its config accepts)."""
    table: dict[str, dict[str, dict]] = {}
    for name in method_names():
        cls = get_method(name).config_cls
        table[name] = {}
        for ds in cls.RECIPE.get("datasets") or DATASET_PRESET:
            try:
                cls(preset=dataset_preset(ds), model=name, dataset=ds)
            except ValueError:
                continue
            table[name][ds] = cls.recipe(dataset_preset(ds), ds)
    return table


def defaults_of(table: dict, method: str, dest: str) -> dict[str, str]:
    """{dataset: default of `dest`} of one method; a store_const flag a recipe leaves out is off there."""
    got = {ds: r[dest] for ds, r in table[method].items() if dest in r and not isinstance(r[dest], dict)}
    if got and all(isinstance(v, bool) for v in got.values()):
        got = {ds: got.get(ds, False) for ds in table[method]}
    return {ds: format_value(v) for ds, v in sorted(got.items())}


def _summary(values: dict[str, str]) -> str:
    """'V (ds1, ds2: W; ds3: X)': the most common value, then the datasets that differ, grouped by value."""
    common = Counter(values.values()).most_common(1)[0][0]
    others: dict[str, list[str]] = {}
    for ds, v in values.items():
        if v != common:
            others.setdefault(v, []).append(ds)
    rest = "; ".join(f"{', '.join(ds)}: {v}" for v, ds in others.items())
    return common + (f" ({rest})" if rest else "")


def default_text(table: dict, dest: str) -> str | None:
    """The default of a preset-dependent flag for every dataset and method (`table`: recipes()), e.g. for --lr
    `0.02 (kinetics, synthetic: 0.005; ...); --model e3d: 0.1 (synthetic: 0.025)`, or None when no recipe sets it.
    Another method is named only where its default differs from the default method's on a dataset of both."""
    base = defaults_of(table, DEFAULT_METHOD, dest)
    groups: dict[tuple, list[str]] = {}
    for name in method_names():
        values = defaults_of(table, name, dest)
        if name == DEFAULT_METHOD or not values or get_method(name).schedule:
            continue  # a method trained in stages sets its defaults per stage (description(): --print_config)
        if base and all(base.get(ds, v) == v for ds, v in values.items()):
            continue
        groups.setdefault(tuple(values.items()), []).append(name)
    parts = [_summary(base)] if base else []
    parts += [f"--model {'/'.join(names)}: {_summary(dict(key))}" for key, names in groups.items()]
    return "; ".join(parts) or None


def finish_parser(p: argparse.ArgumentParser, script: str) -> None:
    """Writes the recipes' defaults into the help of the preset-dependent flags, gathers the unsupported and
    single-valued flags into one line of the description, and (evaluation scripts) groups the training flags."""
    refused, single, table = [], [], recipes()
    for action in p._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        reason = getattr(action, "reason", None)
        if reason is not None:
            refused.append(f"{action.option_strings[0]} ({reason})")
        elif action.choices is not None and len(action.choices) == 1:
            single.append(f"{action.option_strings[0]} {next(iter(action.choices))}")
        if reason is not None or (action.choices is not None and len(action.choices) == 1):
            action.help = argparse.SUPPRESS
            continue
        if action.const is False:  # the negation of a flag (--no_shift): the flag itself shows the default
            continue
        text = default_text(table, action.dest)
        if text is not None and action.help is not None:
            action.help = _HAND_DEFAULT.sub("", action.help) + f" [default: {text}]"
    p.description = (
        f"{description(script)} Not supported, flags of the original command lines: {', '.join(refused)} "
        f"(refused with the reason); {', '.join(single)} (their only value, accepted)."
    )
    if script != "main":
        _group_training_flags(p)


def _group_training_flags(p: argparse.ArgumentParser) -> None:
    """Moves the training flags into a group of their own (they stay accepted)."""
    group = p.add_argument_group(
        "training (main.py's flags: accepted so that a training command line runs here unchanged; not used, but "
        "--epochs, --lr_type and --pretrain still name the run folder)"
    )
    for g in p._action_groups:
        if g is group:
            continue
        for action in list(g._group_actions):
            if action.dest in TRAINING_ONLY:
                g._group_actions.remove(action)
                group._group_actions.append(action)


def resolved_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Returns the run's resolved configuration: `model_config` (what build() builds) and, per group of the
    help, every flag's value, each flag under its first long name."""
    out: dict = {
        "script": ENTRY[args.script],
        "dataset": args.dataset,
        "preset": dataset_preset(args.dataset),
    }
    out["model_config"] = dict(args.model_config)
    for g in parser._action_groups:
        values = {}
        for action in g._group_actions:
            if not action.option_strings or action.dest in ("help", "print_config", "dataset_opt"):
                continue
            if action.help == argparse.SUPPRESS or not hasattr(args, action.dest):
                continue
            name = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            values[name] = getattr(args, action.dest)
        if values:
            out[g.title] = values
    out["run"] = {
        k: getattr(args, k) for k in ("store_name", "run_dir", "log_dir", "explicit", "config_notes")
    }
    return out


def print_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Prints the resolved configuration as JSON (flags given: `explicit`; the rest from the checkpoint, the
    preset or the method's recipe)."""
    print(json.dumps(resolved_config(args, parser), indent=1, default=str))
