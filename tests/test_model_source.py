"""Evaluation builds the model a checkpoint stores (ops/model_source.py): model flags left out take the
checkpoint's `model_config`, a model flag given with another value stops naming the flag, both values and the file
(unless --override_config, which the log reports), fine-tuning keeps the file's settings and logs the new ones, and
a checkpoint without model_config (the originals') builds from the flags as before."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models import ModelConfig, build_model, config_from_dict
from ops.engine.checkpoint import save_checkpoint
from ops.engine.evaluate import run_nview
from ops.engine.flops import exit_gflops
from ops.engine.train import run
from ops.opts import parse_args
from tests.test_custom_dataset import files  # noqa: F401 (fixture)

# The custom dataset takes the tsm preset (input 224, patch 128, T_g 8, N 36, K 12): every value below differs.
MODEL = (
    "--input_size 128 --glance_size 64 --patch_size 64 --num_glance_segments 4 --num_input_focus_segments 8 "
    "--num_focus_segments 2 --glance_arch resnet18 --focus_arch resnet18 --glance_base_width 8 "
    "--focus_base_width 8 --stn_hidden_dim 8 --temporal_hidden_dim 8 --glance_output_stride 16 --pretrain none"
).split()


def _argv(data: dict, runs: str, *extra: str) -> list[str]:
    return [
        "custom",
        "RGB",
        "--categories",
        data["categories"],
        "--train_list",
        data["train"],
        "--val_list",
        data["val"],
        "--frames_root",
        data["frames"],
        "--root_log",
        runs,
        "-j",
        "0",
        "--batch-size",
        "4",
        *extra,
    ]


def _fail(argv: list[str], capsys, script: str = "main") -> str:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv, script=script)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def ckpt(files, tmp_path_factory) -> str:  # noqa: F811
    """A checkpoint as main.py writes it, of the model MODEL describes (patch 64), with seeded weights."""
    runs = str(tmp_path_factory.mktemp("trained"))
    args = parse_args(_argv(files, runs, *MODEL, "--epochs", "1"))
    torch.manual_seed(0)
    cfg = config_from_dict({**args.model_config, "num_classes": 3})
    model = build_model(cfg)
    extra = {"model_config": cfg.to_dict(), "seed": 0, "categories": ["a", "b", "c"]}
    return save_checkpoint(args.run_dir, model, epoch=1, args=args, extra=extra)


def test_evaluation_without_model_flags_builds_the_checkpoints_model(files, ckpt, tmp_path):  # noqa: F811
    bare = parse_args(_argv(files, str(tmp_path), "--resume", ckpt), script="nview")
    assert (bare.patch_size, bare.input_size, bare.glance_size) == (64, 128, 64)
    assert (bare.num_glance_segments, bare.num_input_focus_segments, bare.num_focus_segments) == (4, 8, 2)
    full = parse_args(_argv(files, str(tmp_path), *MODEL, "--resume", ckpt), script="nview")
    assert bare.model_config == full.model_config
    assert bare.store_name == full.store_name  # the run is named after the model that runs
    scores = {name: str(tmp_path / f"{name}.npz") for name in ("bare", "full")}
    bare.save_scores, full.save_scores = scores["bare"], scores["full"]
    got, want = run_nview(bare), run_nview(full)
    np.testing.assert_allclose(
        np.load(scores["bare"])["logits"], np.load(scores["full"])["logits"], rtol=0, atol=1e-6
    )
    reference = exit_gflops(build_model(config_from_dict({**full.model_config, "num_classes": 3})))
    assert got["gflops"] == pytest.approx(reference[-1], rel=1e-9) and got["top1"] == want["top1"]
    with open(os.path.join(bare.log_dir, "log.csv")) as f:
        said = f.read()
    assert f"=> model from {ckpt}" in said and "patch_size 64 (the flags and preset: 128)" in said


def test_a_model_flag_with_another_value_stops_naming_flag_values_and_file(files, ckpt, tmp_path, capsys):  # noqa: F811
    for script in ("main", "nview", "early_exit"):
        extra = ("--evaluate",) if script == "main" else ()
        err = _fail(
            _argv(files, str(tmp_path), "--patch_size", "96", "--resume", ckpt, *extra), capsys, script
        )
        assert f"--patch_size gives patch_size 96, but {ckpt} was trained with patch_size 64" in err
        assert "--override_config" in err
    err = _fail(_argv(files, str(tmp_path), "--num_focus_segments", "4", "--resume", ckpt), capsys, "nview")
    assert "--num_focus_segments gives num_focus_segments 4" in err and "num_focus_segments 2" in err
    err = _fail(_argv(files, str(tmp_path), "--model", "tsm", "--resume", ckpt), capsys, "nview")
    assert f"--model tsm, but {ckpt} holds a uniadafocus model" in err
    # the same values as the training run pass
    assert parse_args(_argv(files, str(tmp_path), "--patch_size", "64", "--resume", ckpt), script="nview")


def test_override_config_runs_the_flags_setting_and_says_so(files, ckpt, tmp_path):  # noqa: F811
    argv = _argv(files, str(tmp_path), "--patch_size", "96", "--override_config", "--resume", ckpt)
    args = parse_args(argv, script="nview")
    assert args.model_config["patch_size"] == 96 and args.model_config["num_focus_segments"] == 2
    assert any("--override_config" in n and "patch_size 96 (file: 64)" in n for n in args.config_notes)
    args.save_scores = str(tmp_path / "p96.npz")
    run_nview(args)
    with open(os.path.join(args.log_dir, "log.csv")) as f:
        assert "patch_size 96 (file: 64)" in f.read()
    same = parse_args(_argv(files, str(tmp_path), "--resume", ckpt), script="nview")
    same.save_scores = str(tmp_path / "p64.npz")
    run_nview(same)
    assert not np.allclose(np.load(args.save_scores)["logits"], np.load(same.save_scores)["logits"])


def test_a_checkpoint_without_model_config_builds_from_the_flags(files, ckpt, tmp_path):  # noqa: F811
    from ops.engine.checkpoint import read_checkpoint

    original = str(tmp_path / "original.pth.tar")
    state = read_checkpoint(ckpt)["state_dict"]
    torch.save(
        {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 1, "best_prec1": 0.0}, original
    )
    with_flags = parse_args(_argv(files, str(tmp_path), *MODEL, "--resume", original), script="nview")
    no_resume = parse_args(_argv(files, str(tmp_path), *MODEL, "--evaluate"))
    assert with_flags.model_config == no_resume.model_config and with_flags.config_notes == []
    assert run_nview(with_flags)["views"] == 1  # loads: the flags describe the model
    bare = parse_args(_argv(files, str(tmp_path), "--resume", original), script="nview")
    assert bare.patch_size == 128 and bare.input_size == 224  # the preset's, as before
    other = parse_args(
        _argv(files, str(tmp_path), *MODEL, "--patch_size", "96", "--resume", original), "nview"
    )
    assert other.patch_size == 96  # nothing to compare with


def _saved(tmp_path, name: str, cfg: ModelConfig) -> str:
    """A checkpoint holding only a model_config (parse_args reads nothing else)."""
    path = str(tmp_path / name)
    torch.save({"state_dict": {}, "model_config": cfg.to_dict()}, path)
    return path


def test_aliases_and_method_defaults_count_as_given_only_when_typed(tmp_path, capsys):
    an = _saved(
        tmp_path,
        "an.pth",
        ModelConfig(preset="an", dataset="actnet", num_classes=200, num_input_focus_segments=32),
    )
    base = ["--dataset", "actnet", "--data_dir", str(tmp_path), "--resume", an]
    args = parse_args(base, script="nview")
    assert args.num_input_focus_segments == 32 and args.num_segments == 32
    err = _fail(base + ["--num_segments", "48"], capsys, "nview")  # the AN form's name of N
    assert "--num_segments gives num_input_focus_segments 48" in err and "num_input_focus_segments 32" in err
    v1 = _saved(
        tmp_path,
        "v1.pth",
        ModelConfig(model="adafocus_v1", preset="an", dataset="actnet", num_classes=200, train_stage=1),
    )
    stage = parse_args(["--dataset", "actnet", "--data_dir", str(tmp_path), "--resume", v1], script="nview")
    assert stage.model == "adafocus_v1" and stage.train_stage == 1  # not V1's evaluation default (3)
    err = _fail(
        ["--dataset", "actnet", "--data_dir", str(tmp_path), "--resume", v1, "--train_stage", "3"], capsys
    )
    assert "--train_stage gives train_stage 3, but" in err


def test_x3d_readme_evaluation_runs_with_the_checkpoint_alone_or_all_training_flags(tmp_path):
    from scripts.check_readme_commands import LAUNCH, X3D_FLAGS

    trained = parse_args(["kinetics", "RGB", *X3D_FLAGS.split()])
    ckpt = _saved(tmp_path, "x3d.pth", config_from_dict({**trained.model_config, "num_classes": 400}))
    short = parse_args(["kinetics", "RGB", "--resume", ckpt, "--test_crops", "3"], script="nview")
    readme = ["kinetics", "RGB", *LAUNCH.replace("'", "").split(), *X3D_FLAGS.split(), "--evaluate"]
    full = parse_args([*readme, "--resume", ckpt, "--test_crops", "3"], script="nview")
    assert short.model_config == full.model_config == {**trained.model_config, "num_classes": 400}
    assert full.shift and not full.model_config["shift"]  # --shift only names the run, as in the original


def test_tune_from_keeps_the_files_settings_and_logs_the_new_ones(files, ckpt, tmp_path):  # noqa: F811
    args = parse_args(
        _argv(files, str(tmp_path), "--tune_from", ckpt, "--num_focus_segments", "3", "--epochs", "1")
    )
    assert (args.patch_size, args.input_size, args.num_focus_segments) == (64, 128, 3)
    (note,) = args.config_notes
    assert note.startswith(f"=> fine-tuning from {ckpt}: its model_config is kept")
    assert note.endswith("new: num_focus_segments 3 (file: 2)")
    run(args)
    with open(os.path.join(args.log_dir, "log.csv")) as f:
        assert note in f.read()
    other = parse_args(
        ["something", "RGB", "--model", "tsm", "--tune_from", ckpt, "--root_dataset", str(tmp_path)]
    )
    assert other.patch_size is None or other.model == "tsm"
    assert "the model comes from the flags (the file holds a uniadafocus model" in other.config_notes[0]
