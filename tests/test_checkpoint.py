"""ops.engine.checkpoint (atomic save, resume, original-format files, RNG restore, tune_from) and ops.engine.runlog files."""

import json
import os
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ops.engine.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
    tune_from,
)
from ops.engine.runlog import RunLogger, read_metrics, scalar_tag
from ops.opts import parse_args


class Net(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5))
        self.fc = nn.Linear(5, classes)

    def forward(self, x):
        return self.fc(self.body(x).relu())


class RunsShell:
    """Unpickling it runs a shell command: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class MakesDir:
    """Unpickling it creates a folder (no shell): a harmless stand-in for code in a trusted file."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        return os.makedirs, (self.folder,)


def trained(seed: int = 0):
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.SGD(
        [
            {"params": model.body.parameters(), "lr_mult": 1.0},
            {"params": model.fc.parameters(), "lr_mult": 10.0},
        ],
        lr=0.1,
        momentum=0.9,
    )
    model(torch.randn(6, 4)).sum().backward()
    opt.step()
    return model, opt


def draws(gen: torch.Generator):
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        random.random(),
        torch.rand(2, generator=gen).tolist(),
    )


def test_round_trip_with_rng_restore(tmp_path):
    model, opt = trained()
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(1), np.random.seed(1), random.seed(1), torch.rand(5, generator=gen)
    args = parse_args(["synthetic", "RGB"])
    path = save_checkpoint(
        str(tmp_path / "run"),
        nn.DataParallel(model),
        epoch=3,
        best_metric=np.float64(61.5),
        is_best=True,
        optimizer=opt,
        args=args,
        generator=gen,
    )
    expected = draws(gen)  # what the run would have drawn next
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt.best.pth.tar", "ckpt.pth.tar"]  # no temp files left
    raw = torch.load(path, weights_only=True)  # everything we store is weights_only-safe
    assert not any(k.startswith("module.") for k in raw["state_dict"])
    assert raw["args"]["store_name"] == args.store_name and raw["args"]["lr_steps"] == [50.0, 100.0]

    torch.manual_seed(99), np.random.seed(99), random.seed(99), gen.manual_seed(99)
    model2, opt2 = trained(seed=5)
    ckpt = load_checkpoint(str(tmp_path / "run" / "ckpt.best.pth.tar"), model2, opt2)
    assert (ckpt["epoch"], ckpt["best_metric"], ckpt["optimizer_loaded"]) == (3, 61.5, True)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(
        opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"]
    )
    assert restore_rng(ckpt, gen) is True
    assert draws(gen) == expected


def test_overwrite_is_atomic_and_keeps_old_file_on_failure(tmp_path):
    model, _ = trained()
    save_checkpoint(str(tmp_path), model, epoch=1)
    before = (tmp_path / "ckpt.pth.tar").read_bytes()

    class Boom:
        def state_dict(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(str(tmp_path), model, epoch=2, optimizer=Boom())
    assert (tmp_path / "ckpt.pth.tar").read_bytes() == before
    with pytest.raises(AttributeError, match="Can't pickle"):  # failure while writing: temp file removed
        save_checkpoint(str(tmp_path), model, epoch=2, extra={"bad": lambda: None})
    assert (
        os.listdir(tmp_path) == ["ckpt.pth.tar"]
        and read_checkpoint(str(tmp_path / "ckpt.pth.tar"))["epoch"] == 1
    )


def test_original_format_checkpoint_with_module_prefix(tmp_path):
    model, opt = trained()
    # The original TSM/X3D dict: DDP state_dict ('module.'), best_prec1, an optimizer of another group layout.
    other = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(6, 4)).sum().backward()
    other.step()
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {
            "epoch": 12,
            "arch": "resnet50",
            "state_dict": sd,
            "optimizer": other.state_dict(),
            "best_prec1": 47.25,
            "scaler": {},
        },
        tmp_path / "orig.pth.tar",
    )
    model2, opt2 = trained(seed=3)
    with pytest.warns(UserWarning, match="optimizer state skipped .1 param groups saved, 2 expected"):
        ckpt = load_checkpoint(str(tmp_path / "orig.pth.tar"), model2, opt2)
    assert (ckpt["epoch"], ckpt["best_metric"], ckpt["optimizer_loaded"], ckpt["rng"]) == (
        12,
        47.25,
        False,
        None,
    )
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert restore_rng(ckpt) is False
    # AN original: best_acc1 as a numpy scalar, no optimizer needed for evaluation; a bare state_dict also loads.
    torch.save({"epoch": 50, "state_dict": sd, "best_acc1": np.float64(80.7)}, tmp_path / "an.pth.tar")
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # loads with weights_only (numpy scalars allow-listed), no pickle fallback
        assert load_checkpoint(str(tmp_path / "an.pth.tar"), Net())["best_metric"] == pytest.approx(80.7)
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert load_checkpoint(str(tmp_path / "bare.pth"), Net())["epoch"] == 0
    with pytest.raises(RuntimeError, match=r"2 missing keys \[.fc.bias., .fc.weight.\]"):
        torch.save({"state_dict": {k: v for k, v in sd.items() if "fc" not in k}}, tmp_path / "part.pth")
        load_checkpoint(str(tmp_path / "part.pth"), Net())
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "nope.pth"), Net())


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_checkpoint_that_runs_code_is_refused_and_names_the_flag(tmp_path, zipped):
    marker = tmp_path / "MARKER"
    model, _ = trained()
    path = tmp_path / "evil.pth.tar"
    state = {"epoch": 3, "state_dict": model.state_dict(), "note": RunsShell(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=zipped)
    calls = {
        "read_checkpoint": lambda: read_checkpoint(str(path)),
        "load_checkpoint": lambda: load_checkpoint(str(path), Net()),
        "tune_from": lambda: tune_from(str(path), Net(), verbose=False),
    }
    for name, call in calls.items():
        with pytest.raises(CheckpointError) as err:
            call()
        msg = str(err.value)
        assert err.value.unsafe and str(path) in msg and "--trust_checkpoint" in msg, (name, msg)
        assert f"{os.system.__module__}.system" in msg, msg  # says what the file wanted to call
    assert not marker.exists()


def test_trusted_checkpoint_loads_the_full_pickle(tmp_path):
    folder = tmp_path / "made_while_loading"
    model, _ = trained()
    path = tmp_path / "trusted.pth.tar"
    torch.save({"epoch": 4, "state_dict": model.state_dict(), "note": MakesDir(folder)}, path)
    with pytest.raises(CheckpointError, match="--trust_checkpoint"):
        load_checkpoint(str(path), Net())
    assert not folder.exists()
    loaded = Net()
    ckpt = load_checkpoint(str(path), loaded, trust=True)
    assert (
        folder.is_dir() and ckpt["note"] is None and ckpt["epoch"] == 4
    )  # os.makedirs ran and returned None
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    folder.rmdir()
    report = tune_from(str(path), Net(classes=7), verbose=False, trust=True)
    assert folder.is_dir() and report["dropped"] == ["fc.weight (3, 5) -> (7, 5)", "fc.bias (3,) -> (7,)"]


def test_damaged_or_foreign_files_stop_with_their_path(tmp_path):
    model, _ = trained()
    good = tmp_path / "good.pth.tar"
    save_checkpoint(str(tmp_path), model, epoch=1, filename="good.pth.tar")
    data = good.read_bytes()
    files = {
        "truncated.pth.tar": data[: len(data) // 2],
        "random.pth.tar": np.random.RandomState(0).bytes(4096),
        "empty.pth.tar": b"",
        "text.pth.tar": b"epoch 3\n",
        "plain_pickle.pth.tar": pickle.dumps({"state_dict": {}}, protocol=2),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        for trust in (False, True):
            with pytest.raises(CheckpointError) as err:
                load_checkpoint(str(path), Net(), trust=trust)
            msg = str(err.value)
            assert str(path) in msg and "not a readable torch.save file" in msg, msg
            assert not err.value.unsafe and "--trust_checkpoint" not in msg  # trusting it would not help
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match=r"list.pth: not a checkpoint \(no \"state_dict\" entry\)"):
        read_checkpoint(str(tmp_path / "list.pth"))
    assert read_checkpoint(str(good))["epoch"] == 1  # the file they were cut from is fine


def test_tune_from_drops_heads_of_another_class_count(tmp_path, capsys):
    model, _ = trained()
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "k400.pth"
    )
    new = Net(classes=7)
    fc_before = new.fc.weight.clone()
    report = tune_from(str(tmp_path / "k400.pth"), new)
    assert report["dropped"] == ["fc.weight (3, 5) -> (7, 5)", "fc.bias (3,) -> (7,)"]
    assert report["missing"] == ["fc.bias", "fc.weight"] and report["unexpected"] == []
    assert torch.equal(new.body[0].weight, model.body[0].weight) and torch.equal(new.fc.weight, fc_before)
    assert "dropped (2): fc.weight (3, 5) -> (7, 5)" in capsys.readouterr().out
    bad = Net()
    bad.body[0] = nn.Linear(4, 6)
    with pytest.raises(ValueError, match="shape mismatch outside the classifier heads"):
        tune_from(str(tmp_path / "k400.pth"), bad)


def test_rng_state_is_plain_tensors_and_lists():
    state = get_rng_state(torch.Generator().manual_seed(0))
    assert set(state) >= {"python", "numpy", "torch", "loader"} and isinstance(
        state["numpy"][1], torch.Tensor
    )


def test_runlog_writes_parsable_files(tmp_path):
    args = parse_args(["synthetic", "RGB", "--root_log", str(tmp_path)])
    with RunLogger(args.log_dir) as log:
        log.write_args(args)
        log.info("Epoch 0: loss 1.0")
        log.log_metrics(0, "train", {"loss": 1.25, "top1": 40.0, "loss_global": 0.5}, lr=0.01)
        log.log_metrics(0, "test", {"loss": 1.5, "top1": 37.5, "top5": 90.0})
        log.scalar("acc/test_top1_best", 37.5, 0)
        assert list(log.progress(range(3), desc="x", disable=True)) == [0, 1, 2]
    run = tmp_path / args.store_name
    assert json.loads((run / "args.json").read_text())["dataset"] == "synthetic"
    assert (run / "log.csv").read_text() == "Epoch 0: loss 1.0\n" and (run / "args.txt").exists()
    recs = read_metrics(str(run / "metrics.jsonl"))
    assert [(r["epoch"], r["split"], r.get("lr"), r["top1"]) for r in recs] == [
        (0, "train", 0.01, 40.0),
        (0, "test", None, 37.5),
    ]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {
        "loss/train",
        "acc/train_top1",
        "loss/train_global",
        "lr",
        "loss/test",
        "acc/test_top1",
        "acc/test_top5",
        "acc/test_top1_best",
    }
    assert events.Scalars("acc/test_top1")[0].value == 37.5
    assert scalar_tag("train", "mAP") == "acc/train_mAP"


def test_runlog_is_silent_off_rank0(tmp_path):
    log = RunLogger(str(tmp_path / "r1"), enabled=False)
    log.write_args({"a": 1})
    log.info("x")
    assert log.log_metrics(2, "train", {"loss": 1.0})["loss"] == 1.0
    r = range(4)
    assert log.progress(r) is r
    log.close()
    assert not (tmp_path / "r1").exists()
