"""docs/cli.md, the command-line reference: generated from the one parser (ops/opts.py) and the methods' translators,
plus the translation tables of the originals' command lines (what scripts/cli_reference.py writes;
tests/test_cli_reference.py fails when the page in the repository is not what this module makes)."""

from __future__ import annotations

import argparse

from models import get_method, method_names
from ops.cli_help import ENTRY, TRAINING_ONLY
from ops.opts import build_parser

# AdaFocus V1 `key=value` tokens shown in its table; the right column is what its translator makes of them.
V1_TOKENS = (
    "dataset=actnet",
    "data_dir=DIR",
    "train_stage=1",
    "backbone_lr=0.0005",
    "fc_lr=0.05",
    "batch_size=64",
    "epochs=50",
    "dropout=0.8",
    "patch_size=128",
    "glance_size=224",
    "hidden_dim=1024",
    "hidden_state_dim=1024",
    "feature_map_channels=1280",
    "action_dim=49",
    "pretrain_glancer=true",
    "pretrain_glancer=false",
    "pretrained_glancer=CKPT",
    "npb=true",
    "amp=true",
    "evaluate=true",
    "multiprocessing_distributed=false",
    "dist_url=tcp://127.0.0.1:8857",
)
V1_TOKEN_PAIRS = (("train_stage=2", "resume=CKPT"),)  # tokens whose translation depends on another
E3D_TABLE = (
    ("`--root_path --video_path --annotation_path --result_path`", "`--root_dataset` (frames and lists), `--root_log`"),
    ("`--dataset jester --n_classes 27`", "`jester RGB` (the class count comes from the dataset)"),
    ("`--model mobilenet --width_mult 0.5`", "`--model e3d --arch mobilenet_3d --width_mult 0.5`"),
    ("`--model shufflenet --groups 3` / `--model squeezenet --version 1.1`",
     "`--arch shufflenet_3d --groups 3` / `--arch squeezenet_3d --version 1.1`"),
    ("`--model resnet --model_depth 18 --resnet_shortcut A`", "`--arch resnet18_3d --resnet_shortcut A`"),
    ("`--model resnext --model_depth 101 --resnext_cardinality 32`",
     "`--arch resnext101_3d --resnext_cardinality 32`"),
    ("`--learning_rate 0.1 --batch_size 64 --n_threads 16`", "`--lr 0.1 --batch_size 64 -j 16`"),
    ("`--train_crop random --sample_duration 16 --downsample 2 --n_val_samples 1`", "the same"),
    ("`--checkpoint 1`", "(a checkpoint every epoch)"),
    ("`--resume_path FILE`", "`--resume FILE` (their files load as they are)"),
    ("`--pretrain_path FILE --n_finetune_classes 101 --ft_portion last_layer`", "the same"),
    ("`--test`, then `utils/video_accuracy.py`", "`main_nViewEval.py --resume FILE --num_clips N`"),
)  # fmt: skip
TADA_TABLE = (
    ("`configs/projects/tada/k400/tada2d_8x8.yaml` (8 frames at rate 8)",
     "`kinetics RGB --model tada --arch tada2d_r50` (its recipe: `--num_segments 8 --downsample 8`)"),
    ("the 16 x 5 config", "`--num_segments 16 --downsample 5`"),
    ("TAdaConvNeXtV2-T / S / B", "`--arch tadaconvnextv2_t` / `_s` / `_b`"),
    ("the 10 clips x 3 crops test at 256", "`main_nViewEval.py ... --num_clips 10 --test_crops 3 --input_size 256` "
     "(a checkpoint of ours trained at 224: add `--override_config`)"),
)  # fmt: skip


def _cell(text: str | None) -> str:
    """Help text as a Markdown table cell (argparse's %% unescaped; | and < escaped)."""
    return (text or "").replace("%%", "%").replace("|", "\\|").replace("<", "\\<").replace("\n", " ")


def _flag_cell(action: argparse.Action) -> str:
    names = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return f"{names} {_cell(str(metavar))}"


def _groups(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS and a.dest != "help"]
        if not actions:
            continue
        lines += ["", f"### {group.title}", "", "| flag | what it does [default] |", "|---|---|"]
        for action in actions:
            flag = _flag_cell(action) if action.option_strings else f"`{action.metavar or action.dest}`"
            lines.append(f"| {flag} | {_cell(action.help)} |")
    return lines


def _spellings(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if len(longs) > 1:
            rows.append(f"| `{longs[0]}` | {', '.join(f'`{o}`' for o in longs[1:])} |")
    return ["| name | also accepted (the originals' spellings) |", "|---|---|", *rows]


def _v1_rows() -> list[str]:
    """The V1 table: each token as its translator turns it into flags (after `--method adafocus_v1`, without the
    `--multiprocessing-distributed` that every line gets unless `multiprocessing_distributed=false`)."""
    translate = get_method("adafocus_v1").translate_argv
    rows = ["| AdaFocus V1 `key=value` | here |", "|---|---|"]
    for tokens in [(t,) for t in V1_TOKENS] + list(V1_TOKEN_PAIRS):
        try:
            flags = [f for f in translate(list(tokens))[2:] if f != "--multiprocessing-distributed"]
        except ValueError as exc:  # a key the original never reads: refused, with the reason
            rows.append(f"| `{' '.join(tokens)}` | refused: {exc} |")
            continue
        rows.append(
            f"| `{' '.join(tokens)}` | `{' '.join(flags)}` |"
            if flags
            else f"| `{' '.join(tokens)}` | (no flag) |"
        )
    return rows


def _table(head: tuple[str, str], rows: tuple) -> list[str]:
    return [f"| {head[0]} | {head[1]} |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]


def render() -> str:
    """Returns docs/cli.md."""
    main = build_parser("main")
    out = [
        "# Command-line reference",
        "",
        "Generated from the parser by `python scripts/cli_reference.py` (do not edit by hand: "
        "tests/test_cli_reference.py fails when this page and the code disagree). `python main.py --print_config "
        "...` prints the resolved configuration of one run, recipe included.",
        "",
        "## Entry scripts",
    ]
    for script, entry in ENTRY.items():
        parser = build_parser(script)
        out += ["", f"### {entry}", "", "```", parser.format_usage().strip(), "```", "", parser.description]
    training = ", ".join(f"`--{d}`" for d in TRAINING_ONLY)
    out += [
        "",
        "main_nViewEval.py and test_early_exit.py take the same flags; the training ones "
        f"({training}) are listed apart in their `--help`: accepted, so that a training command line runs there "
        "unchanged.",
        "",
        "## Flags (main.py)",
        "",
        f"Methods (`--model`): {', '.join(f'`{n}`' for n in method_names())}. A default is shown per dataset "
        "where the dataset's preset or recipe changes it, and per method where the method's recipe does.",
        *_groups(main),
        "",
        "## Spellings",
        "",
        "One name per setting (underscores; `--X` / `--no_X` for switches); the originals' spellings stay accepted.",
        "",
        *_spellings(main),
        "",
        "## The originals' command lines",
        "",
        "The TSM code, the Uni-AdaFocus TSM / X3D code (`main.py DATASET RGB ...`) and the Uni-AdaFocus AN code "
        "(`main.py --dataset actnet --data_dir DIR ...`, `--local_rank`) run with their own flags; what is not "
        "supported is refused with the reason (see each script's description above). The other originals "
        "translate as follows.",
        "",
        "### AdaFocus V1 (`key=value`, with `python main.py` in place of `python main_dist.py`)",
        "",
        "A line of `key=value` tokens is translated as a whole (`--method adafocus_v1`, then the flags below; "
        "`--multiprocessing-distributed` too, the original's default, unless `multiprocessing_distributed=false`); "
        "a later token overrides an earlier one of the same key; a key without effect in the original is refused "
        "with the reason.",
        "",
        *_v1_rows(),
        "",
        "### Efficient-3DCNNs (`main.py`)",
        "",
        *_table(("Efficient-3DCNNs", "here (`--model e3d`)"), E3D_TABLE),
        "",
        "### TAdaConv (PySlowFast-style configs)",
        "",
        *_table(("TAdaConv", "here (`--model tada`)"), TADA_TABLE),
        "",
    ]
    return "\n".join(out)
