"""The command line explains itself: docs/cli.md is what the parser generates, --help shows every preset default
per dataset and method (the values parse_args resolves), --print_config prints a run's resolved configuration for
every method, the evaluation scripts group the training flags apart, and one name per setting with the originals'
spellings as aliases."""

from __future__ import annotations

import json
import os

import pytest

from ops.cli_help import TRAINING_ONLY, defaults_of, format_value, recipes
from ops.flags import DATASETS
from ops.opts import build_parser, parse_args
from ops.tools.cli_reference import render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def built_in_methods():
    """Only the framework's own methods registered (a test's toy method, registered when its package is imported
    at collection, is not part of the reference), restored afterwards."""
    from models import get_method, method_names
    from models.core.registry import register_method, unregister_method

    foreign = [
        get_method(n) for n in method_names() if not get_method(n).model_cls.__module__.startswith("models.")
    ]
    for method in foreign:
        unregister_method(method.name)
    yield
    for method in foreign:
        register_method(method)


def test_docs_cli_md_is_what_the_parser_generates(built_in_methods):
    with open(os.path.join(ROOT, "docs", "cli.md")) as f:
        assert f.read() == render(), "docs/cli.md is stale: run python scripts/cli_reference.py"


@pytest.mark.parametrize(
    "dest", ["lr", "batch_size", "weight_decay", "patch_size", "num_focus_segments", "amp"]
)
def test_help_defaults_are_the_values_parse_args_resolves(dest):
    table = recipes()
    said = defaults_of(table, "uniadafocus", dest)
    for ds in DATASETS:
        if ds != "custom":  # a custom dataset needs its files; it takes the tsm preset as something
            assert said[ds] == format_value(getattr(parse_args([ds, "RGB"]), dest)), (ds, dest)
    for method, ds in (("e3d", "kinetics"), ("tada", "kinetics"), ("tsm", "something")):
        value = getattr(parse_args([ds, "RGB", "--model", method]), dest)
        assert defaults_of(table, method, dest)[ds] == format_value(value), (method, ds, dest)
    text = build_parser().format_help()
    assert "(preset" not in text
    assert (
        "[default: 0.02 (actnet: 0.002; fcvid: 0.004; kinetics, synthetic: 0.005; minik: 0.003); --model adafocus_v2"
        in " ".join(text.split())
    )


CASES = [
    ("uniadafocus", ["something", "RGB"]),
    ("adafocus_v1", ["--dataset", "actnet", "--train_stage", "1"]),
    ("adafocus_v2", ["something", "RGB"]),
    ("e3d", ["kinetics", "RGB"]),
    ("tada", ["kinetics", "RGB"]),
    ("tsm", ["something", "RGB"]),
    ("tsn", ["--dataset", "fcvid"]),
    ("x3d", ["kinetics", "RGB"]),
]


@pytest.mark.parametrize("method,argv", CASES)
def test_print_config_shows_the_resolved_run_for_every_method(method, argv, capsys):
    args = parse_args([*argv, "--model", method])
    with pytest.raises(SystemExit) as done:
        parse_args([*argv, "--model", method, "--print_config"])
    assert done.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["model_config"] == args.model_config and shown["model_config"]["model"] == method
    optim = shown["optimisation"]
    assert (optim["--lr"], optim["--epochs"], optim["--batch_size"]) == (
        args.lr,
        args.epochs,
        args.batch_size,
    )
    assert shown["run"]["store_name"] == args.store_name and shown["preset"] == args.preset


def test_evaluation_scripts_group_the_training_flags_and_describe_every_method():
    for script in ("nview", "early_exit"):
        parser = build_parser(script)
        (group,) = [g for g in parser._action_groups if g.title.startswith("training")]
        assert {a.dest for a in group._group_actions} == set(TRAINING_ONLY)
        for name in ("uniadafocus", "adafocus_v1", "e3d", "tada", "tsn", "x3d"):
            assert name in parser.description
    main = build_parser("main")
    assert not [g for g in main._action_groups if g.title.startswith("training")]
    text = main.format_help()
    line = " ".join(text.split())
    for flag in ("--temporal_pool (temporal pooling was never implemented)", "--consensus_type avg"):
        assert flag in line
    assert "--temporal_pool\n" not in text and "  --consensus_type" not in text  # not listed one by one
    assert "training draws a seed at random and stores it in the checkpoint" in line


@pytest.mark.parametrize(
    "new,old",
    [
        (["--exit_criterion", "entropy"], ["--criteria", "entropy"]),
        (["--no_shared_crop"], ["--independent_crop"]),
        (["--no_partial_bn"], ["--npb"]),
        (["--no_partial_bn"], ["--no_partialbn"]),
        (["--partial_bn"], ["--partialbn"]),
        (["--batch_size", "8"], ["--batch-size", "8"]),
        (["--weight_decay", "0.1"], ["--wd", "0.1"]),
        (["--print_freq", "3"], ["--print-freq", "3"]),
    ],
)
def test_one_name_per_setting_with_the_originals_spelling_kept(new, old):
    base = ["something", "RGB", "--resume", "c.pth"]
    a, b = (parse_args(base + flags, script="early_exit") for flags in (new, old))
    assert vars(a) == {**vars(b), "explicit": a.explicit} and a.explicit == b.explicit


def test_scripts_take_the_same_names():
    from scripts.bench import parse_args as bench_args
    from scripts.gen_label import build_parser as gen_label_parser
    from scripts.vid2img import build_parser as vid2img_parser

    assert (
        bench_args(["--train_batch", "2"]).train_batch == bench_args(["--train-batch", "2"]).train_batch == 2
    )
    gen = gen_label_parser()
    assert gen.parse_args(["custom", "o", "--video_root", "v"]).videos_dir == "v"
    assert gen.parse_args(["custom", "o", "--videos_dir", "v"]).videos_dir == "v"
    assert gen.parse_args(["custom", "o", "--frames_root", "f", "--image_tmpl", "t"]).frames_dir == "f"
    assert vid2img_parser().parse_args(["a", "b", "--image_tmpl", "x_{:03d}.jpg"]).template == "x_{:03d}.jpg"
    assert vid2img_parser().parse_args(["a", "b", "--template", "x_{:03d}.jpg"]).template == "x_{:03d}.jpg"
