"""End to end on a tiny synthetic dataset and tiny networks: main.py (single process, 2-process DDP on gloo,
resume), --evaluate, main_nViewEval.py and test_early_exit.py, through the same functions the scripts call."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models import build_model, config_from_dict
from ops.engine.checkpoint import CheckpointError, read_checkpoint
from ops.engine.evaluate import run_early_exit, run_nview
from ops.engine.runlog import read_metrics
from ops.engine.train import run
from ops.opts import parse_args
from tests.run_checks import retry_on_port_clash, run_script, torch_gflops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = (
    "--eval-freq 1 --input_size 64 --glance_size 64 --patch_size 32 --num_glance_segments 4 --num_input_focus_segments 8 "
    "--num_focus_segments 2 --glance_base_width 8 --focus_base_width 8 "
    "--stn_hidden_dim 8 --temporal_hidden_dim 8 --batch-size 4 --lr 0.01 -j 0"
).split()


def _args(data_root: str, run_root: str, *extra: str, script: str = "main"):
    argv = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", run_root, *TINY, *extra]
    return parse_args(argv, script=script)


def _weights(path: str) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _interrupted_after_first_epoch(args, monkeypatch) -> None:
    """Runs `args` as a job killed while training its second epoch (the checkpoint of epoch 1 stays)."""
    from ops.engine import train as T

    original, calls = T.train_one_epoch, []

    def killed_on_second_call(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(T, "train_one_epoch", killed_on_second_call)
    with pytest.raises(KeyboardInterrupt):
        run(args)
    monkeypatch.setattr(T, "train_one_epoch", original)


def test_resumed_training_is_bit_identical_to_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
    straight = _args(data_root, str(tmp_path / "a"), "--epochs", "2", "--seed", "3")
    run(straight)
    resumed = _args(data_root, str(tmp_path / "b"), "--epochs", "2", "--seed", "3")
    _interrupted_after_first_epoch(resumed, monkeypatch)
    ckpt = os.path.join(resumed.run_dir, "ckpt.pth.tar")
    after_first = read_checkpoint(ckpt)
    assert after_first["epoch"] == 1
    run(_args(data_root, str(tmp_path / "b"), "--epochs", "2", "--seed", "3", "--resume", ckpt))
    a, b = _weights(os.path.join(straight.run_dir, "ckpt.pth.tar")), _weights(ckpt)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    # the second epoch did change the weights (the comparison is not between two untouched models)
    assert any(not torch.equal(after_first["state_dict"][k], a[k]) for k in a if a[k].is_floating_point())
    records = read_metrics(os.path.join(straight.log_dir, "metrics.jsonl"))
    assert [r["split"] for r in records] == ["train", "test", "train", "test"]
    assert json.load(open(os.path.join(straight.log_dir, "args.json")))["dataset"] == "synthetic"


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """One epoch of training; returns its parsed arguments (the checkpoint is in args.run_dir)."""
    args = _args(data_root, str(tmp_path_factory.mktemp("runs")), "--epochs", "1", "--seed", "0", "-p", "2")
    run(args)
    return args


def test_print_freq_logs_a_line_every_n_iterations(trained):
    with open(os.path.join(trained.log_dir, "log.csv")) as f:
        lines = [line for line in f if line.startswith("Epoch: [0][")]
    assert len(lines) == 1 and lines[0].startswith("Epoch: [0][2/3] lr 0.01000 loss ")  # 12 videos, batch 4


def test_evaluate_reproduces_the_recorded_validation_metric(trained, data_root, tmp_path):
    recorded = [
        r for r in read_metrics(os.path.join(trained.log_dir, "metrics.jsonl")) if r["split"] == "test"
    ]
    ckpt = os.path.join(trained.run_dir, "ckpt.best.pth.tar")
    scores = str(tmp_path / "scores.npz")
    metrics = run(_args(data_root, str(tmp_path), "--evaluate", "--resume", ckpt, "--save_scores", scores))
    assert metrics["top1"] == recorded[-1]["top1"] and metrics["top5"] == recorded[-1]["top5"]
    saved = np.load(scores)
    assert saved["logits"].shape == (9, 3) and saved["exit_logits"].shape == (9, 2, 3)
    assert sorted(saved["ids"].tolist()) == sorted(set(saved["ids"].tolist()))
    assert 100 * np.mean(saved["logits"].argmax(1) == saved["labels"]) == pytest.approx(metrics["top1"])


def test_nview_one_view_equals_evaluate_and_more_views_average(trained, data_root, tmp_path):
    ckpt = os.path.join(trained.run_dir, "ckpt.best.pth.tar")
    one, nv1, many = (str(tmp_path / f"{name}.npz") for name in ("one", "nv1", "many"))
    run(_args(data_root, str(tmp_path), "--evaluate", "--resume", ckpt, "--save_scores", one))
    run_nview(_args(data_root, str(tmp_path), "--resume", ckpt, "--save_scores", nv1, script="nview"))
    m = run_nview(
        _args(
            data_root,
            str(tmp_path),
            "--resume",
            ckpt,
            "--test_crops",
            "3",
            "--num_clips",
            "2",
            "--save_scores",
            many,
            script="nview",
        )
    )
    a, b, c = np.load(one), np.load(nv1), np.load(many)
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=0, atol=1e-6)
    assert c["logits"].shape == a["logits"].shape and not np.allclose(c["logits"], a["logits"])
    # per view: the deployment forward (glance stage, then focus stage without the training-only heads) on one clip,
    # counted by PyTorch's own counter; per video: 6 of them
    model = build_model(config_from_dict(read_checkpoint(ckpt)["model_config"])).eval()
    one_clip = torch.zeros(1, 4 + 8, 3, 64, 64)
    per_view = torch_gflops(lambda x: model.focus_stage(model.glance_stage(x), aux=False), one_clip)
    assert m["views"] == 6 and m["gflops_per_view"] == pytest.approx(per_view, rel=1e-9)
    assert m["gflops"] == pytest.approx(6 * per_view, rel=1e-9)


def test_early_exit_with_3_crops_calibrates_on_single_view_training_logits(trained, data_root, tmp_path):
    ckpt = os.path.join(trained.run_dir, "ckpt.best.pth.tar")
    curves, log_dir = {}, None
    for crops in (1, 3):
        args = _args(
            data_root,
            str(tmp_path),
            "--resume",
            ckpt,
            "--test_crops",
            str(crops),
            "--criteria",
            "confidence",
            script="early_exit",
        )
        curves[crops], log_dir = run_early_exit(args)["confidence"], args.log_dir
    one, three = curves[1], curves[3]
    rows = list(csv.reader(open(os.path.join(log_dir, "log_early_exit_3views_confidence.csv"))))
    assert rows[0][:3] == ["gflops", "gflops_per_view", "metric"] and len(rows) - 1 == len(three) == 403
    for row, p in zip(rows[1:], three):  # per video (3 views) and per view, as the paper's 4.9x3
        assert float(row[0]) == pytest.approx(p["gflops"], abs=1e-6)
        assert float(row[1]) == pytest.approx(p["gflops"] / 3, abs=1e-6)
    assert max(float(r[1]) for r in rows[1:]) == pytest.approx(max(p["gflops"] for p in one), abs=1e-6)
    assert [p["thresholds"] for p in three] == [p["thresholds"] for p in one]  # same single-view calibration


def test_early_exit_writes_curves_and_reuses_cached_logits(trained, data_root, tmp_path, capsys):
    ckpt = os.path.join(trained.run_dir, "ckpt.best.pth.tar")
    argv = ("--resume", ckpt, "--criteria", "confidence", "entropy")
    results = run_early_exit(_args(data_root, str(tmp_path), *argv, script="early_exit"))
    log_dir = _args(data_root, str(tmp_path), *argv, script="early_exit").log_dir
    for criterion in ("confidence", "entropy"):
        rows = list(csv.reader(open(os.path.join(log_dir, f"log_early_exit_1views_{criterion}.csv"))))
        assert rows[0][:3] == ["gflops", "gflops_per_view", "metric"]
        assert len(rows) - 1 == len(results[criterion]) == 403
        assert all(r[0] == r[1] for r in rows[1:])  # one view
        assert os.path.getsize(os.path.join(log_dir, f"log_early_exit_1views_{criterion}.png")) > 1000
        gflops = [p["gflops"] for p in results[criterion]]
        assert min(gflops) < max(gflops)  # the sweep spans glance-only ... full cost
    capsys.readouterr()
    again = run_early_exit(_args(data_root, str(tmp_path), *argv, script="early_exit"))
    assert "cached exit logits" in capsys.readouterr().out
    assert [p["metric"] for p in again["entropy"]] == [p["metric"] for p in results["entropy"]]
    (cache,) = [f for f in os.listdir(log_dir) if f.startswith("early_exit_logits_")]
    with open(os.path.join(log_dir, cache), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(log_dir, cache)) // 2)  # as if killed while writing it
    redone = run_early_exit(_args(data_root, str(tmp_path), *argv, script="early_exit"))
    out = capsys.readouterr().out
    assert f"{os.path.join(log_dir, cache)}: not a readable torch.save file" in out and "again" in out
    assert [p["metric"] for p in redone["entropy"]] == [p["metric"] for p in results["entropy"]]


class _Calls:
    """Unpickling it calls func(*args): os.system in a malicious checkpoint, os.makedirs as a harmless stand-in."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_checkpoint_that_runs_code_needs_trust_checkpoint(trained, data_root, tmp_path):
    good = read_checkpoint(os.path.join(trained.run_dir, "ckpt.best.pth.tar"))
    marker, folder = tmp_path / "MARKER", tmp_path / "made_while_loading"
    evil = str(tmp_path / "evil.pth.tar")
    torch.save({**good, "note": _Calls(os.system, f"touch {marker}")}, evil)
    for entry, script, flags in (
        (run, "main", ("--evaluate", "--resume", evil)),
        (run, "main", ("--epochs", "1", "--resume", evil)),
        (run, "main", ("--epochs", "1", "--tune_from", evil)),
        (run_nview, "nview", ("--resume", evil)),
        (run_early_exit, "early_exit", ("--resume", evil)),
    ):
        with pytest.raises(CheckpointError) as err:
            entry(_args(data_root, str(tmp_path), *flags, script=script))
        assert evil in str(err.value) and "--trust_checkpoint" in str(err.value), (script, flags)
    cmd = [
        sys.executable,
        "main.py",
        "synthetic",
        "RGB",
        "--root_dataset",
        data_root,
        "--root_log",
        str(tmp_path),
    ]
    cli = subprocess.run(
        cmd + [*TINY, "--evaluate", "--resume", evil], cwd=ROOT, capture_output=True, text=True
    )
    assert cli.returncode == 1 and f"CheckpointError: checkpoint {evil}: refused to open" in cli.stderr
    assert "Pass --trust_checkpoint to load it anyway" in cli.stderr
    assert not marker.exists()

    trusted = str(tmp_path / "trusted.pth.tar")
    torch.save({**good, "note": _Calls(os.makedirs, str(folder))}, trusted)
    recorded = [
        r for r in read_metrics(os.path.join(trained.log_dir, "metrics.jsonl")) if r["split"] == "test"
    ]
    metrics = run(_args(data_root, str(tmp_path), "--evaluate", "--resume", trusted, "--trust_checkpoint"))
    assert folder.is_dir() and metrics["top1"] == recorded[-1]["top1"]


def test_two_process_ddp_training_and_evaluation_on_gloo(data_root, tmp_path):
    args = _args(
        data_root,
        str(tmp_path),
        "--epochs",
        "1",
        "--seed",
        "0",
        "--multiprocessing-distributed",
        "--nproc_per_node",
        "2",
        "--device",
        "cpu",
        "--dist-backend",
        "nccl",
    )  # nccl on CPU -> gloo
    retry_on_port_clash(lambda: run(args))
    ckpt = os.path.join(args.run_dir, "ckpt.pth.tar")
    saved = read_checkpoint(ckpt)
    assert saved["epoch"] == 1
    rng = saved["rng"]  # each rank's own states (rank 0 alone wrote the file)
    assert rng["world_size"] == 2 and not torch.equal(rng["ranks"][0]["torch"], rng["ranks"][1]["torch"])
    records = read_metrics(os.path.join(args.log_dir, "metrics.jsonl"))
    assert [r["split"] for r in records] == ["train", "test"]
    # 9 val videos over 2 ranks: the sampler pads one duplicate, which the gathered scores must not contain
    scores = str(tmp_path / "ddp.npz")
    ddp = ["--multiprocessing-distributed", "--nproc_per_node", "2", "--device", "cpu"]
    evaluate = _args(data_root, str(tmp_path), "--evaluate", "--resume", ckpt, "--save_scores", scores, *ddp)
    retry_on_port_clash(lambda: run(evaluate))
    ids = np.load(scores)["ids"].tolist()
    assert len(ids) == 9 and len(set(ids)) == 9


def test_scripts_run_from_the_command_line_and_reject_bad_flags(data_root, tmp_path, capsys):
    cmd = [
        sys.executable,
        "main.py",
        "synthetic",
        "RGB",
        "--root_dataset",
        data_root,
        "--root_log",
        str(tmp_path),
        *TINY,
        "--epochs",
        "1",
        "--num_focus_segments",
        "9",
    ]
    # a refused flag: main.py's parser stops it (run in this process: no interpreter start-up for an error)
    assert run_script("main.py", cmd[2:]) == 2
    assert "num_focus_segments (K=9) must be <= num_input_focus_segments (N=8)" in capsys.readouterr().err
    good = subprocess.run(cmd[:-2], cwd=ROOT, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr[-2000:]
    assert "Epoch 0 test: top1" in good.stdout


def test_random_policy_control_uses_uniform_frames_and_random_patches(trained, data_root, tmp_path):
    from models import ModelConfig, build_model

    ckpt = os.path.join(trained.run_dir, "ckpt.best.pth.tar")
    learned, control = (str(tmp_path / f"{p}.npz") for p in ("learned", "random"))
    run(_args(data_root, str(tmp_path), "--evaluate", "--resume", ckpt, "--save_scores", learned))
    run(
        _args(
            data_root,
            str(tmp_path),
            "--evaluate",
            "--resume",
            ckpt,
            "--save_scores",
            control,
            "--policy",
            "random",
        )
    )
    a, b = np.load(learned), np.load(control)
    np.testing.assert_array_equal(a["exit_logits"][:, 0], b["exit_logits"][:, 0])  # same glance
    assert not np.allclose(a["logits"], b["logits"])  # other frames / patches for the focus net
    model = build_model(ModelConfig.from_args(trained, num_classes=3)).eval()
    model.policy = "random"
    out = model(torch.randn(2, 12, 3, 64, 64))
    assert out["focus_indices"].tolist() == [
        [2, 6],
        [2, 6],
    ]  # mid-quantiles of a uniform distribution over N=8
    side = out["actions"][:, 2:] * (64 - 64 * 96 / 224) + 64 * 96 / 224
    assert torch.allclose(side, torch.full_like(side, 32.0))  # random patches of exactly P = 32 px


def test_tensorboard_gets_the_loss_parts_and_lr_every_print_freq_iterations(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(trained.log_dir)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    parts = ("fused", "glance", "local", "temporal", "spatial", "norm")
    assert {"train_iter/loss", "train_iter/lr"} | {f"train_iter/loss_{p}" for p in parts} <= tags
    assert {"loss/train", "lr"} <= tags  # the per-epoch scalars stay
    (loss,) = events.Scalars("train_iter/loss")  # -p 2, 3 iterations: step 2 only
    (lr,) = events.Scalars("train_iter/lr")
    with open(os.path.join(trained.log_dir, "log.csv")) as f:
        (line,) = [ln for ln in f if ln.startswith("Epoch: [0][2/3]")]
    assert loss.step == lr.step == 2 and f"loss {loss.value:.4f} " in line and lr.value == pytest.approx(0.01)
