"""scripts/fault_check.py's cases (ops/tools/fault_check.py): bad frames, videos and list rows, NaN losses, a
checkpoint write that fails, an unwritable log folder, --resume auto, and 2-process DDP jobs (gloo, CPU) with a
bad sample or a process killed at random moments. Each case checks its own outcome; here every one must hold."""

from __future__ import annotations

import math

import pytest
import torch

from ops.tools.fault_check import CASES, FAST, run_cases
from ops.tools.faults.training import parse_error


def _held(tmp_path, names, **kw):
    out = run_cases(str(tmp_path), names, echo=lambda line: None, **kw)
    failed = {n: c["detail"] for n, c in out["cases"].items() if not c["held"]}
    assert not failed, failed
    return out


def test_fast_cases_hold(tmp_path):
    out = _held(tmp_path, FAST)
    assert out["held"] == len(FAST) >= 15
    assert "skip: bad_videos 1" in out["cases"]["folder_empty"]["detail"]
    assert "nonfinite_steps per epoch [0, 1" in out["cases"]["nonfinite_skip"]["detail"]


def test_ddp_bad_sample_stops_every_rank_or_is_skipped_and_counted(tmp_path):
    _held(tmp_path, ["ddp_bad_sample"])


def test_ddp_job_killed_twice_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    out = _held(tmp_path, ["ddp_kills"], kills=2, seed=1)
    assert out["cases"]["ddp_kills"]["detail"].startswith("2 kills")


def test_a_case_that_does_not_hold_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(CASES, "list_bad_rows", lambda ctx: (False, "made to fail"))
    lines = []
    out = run_cases(str(tmp_path), ["list_bad_rows"], echo=lines.append)
    assert out["failed"] == ["list_bad_rows"] and lines[0].startswith("FAILED list_bad_rows")
    assert '"failed": ["list_bad_rows"]' in lines[-1]


def test_resume_auto_is_refused_outside_training(tmp_path):
    argv = ["synthetic", "RGB", "--root_log", str(tmp_path), "--evaluate", "--resume", "auto"]
    assert "--resume auto only applies to training" in parse_error(argv)


def _epoch(model, batches, tmp_path, *, inf_grad_at=(), scaler=None, on_nonfinite="error"):
    """One train_one_epoch of a linear clip classifier; the gradient of its weight is inf at the given steps."""
    import argparse

    import torch.nn.functional as F

    from ops.engine.distributed import DistInfo
    from ops.engine.loops import train_one_epoch
    from ops.engine.runlog import RunLogger

    calls = []
    model.fc.weight.register_hook(lambda g: g * float("inf") if len(calls) - 1 in inf_grad_at else g)

    def criterion(out, target):
        calls.append(1)
        return F.cross_entropy(out["logits"], target), {}

    args = argparse.Namespace(
        lr_per_step=False, amp="none", clip_gradient=None, print_freq=100, on_nonfinite=on_nonfinite
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with RunLogger(str(tmp_path), enabled=False, tensorboard=False) as logger:
        return train_one_epoch(model, criterion, batches, opt, args, DistInfo(), 0, logger, scaler)


def _twins():
    from tests.test_gpu_paths import _Clips

    torch.manual_seed(0)
    a, b = _Clips(), _Clips()
    b.load_state_dict(a.state_dict())
    return a, b


def test_an_inf_gradient_with_a_finite_loss_stops_before_the_update(tmp_path):
    from tests.test_gpu_paths import clip_batches

    model, reference = _twins()
    batches = clip_batches(3)
    _epoch(reference, batches[:1], tmp_path)
    with pytest.raises(FloatingPointError, match=r"iteration 1: a gradient is not finite on rank\(s\) \[0\]"):
        _epoch(model, batches, tmp_path, inf_grad_at={1})
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


@pytest.mark.parametrize("scaler", [False, True])
def test_skipped_nonfinite_updates_are_counted_and_change_nothing(tmp_path, scaler):
    # without a scaler: --on_nonfinite skip; with the (CPU) GradScaler: its own overflow skip, counted too
    from tests.test_gpu_paths import clip_batches

    make = (lambda: torch.amp.GradScaler("cpu")) if scaler else (lambda: None)
    model, twin = _twins()
    batches = clip_batches(3)
    stats = _epoch(model, batches, tmp_path, inf_grad_at={1}, scaler=make(), on_nonfinite="skip")
    plain = _epoch(twin, [batches[0], batches[2]], tmp_path, scaler=make())
    assert stats["nonfinite_steps"] == 1.0 and "nonfinite_steps" not in plain
    assert math.isfinite(stats["loss"])  # the skipped step's loss was finite: it stays in the means
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_a_list_that_is_not_utf8_is_refused_naming_its_line(tmp_path):
    from ops.data.lists import ListFileError, read_list_file

    path = tmp_path / "list.txt"
    path.write_bytes(b"a 3 0\ncaf\xe9 3 1\n")  # latin-1
    with pytest.raises(ListFileError, match=r"list.txt:2: not UTF-8"):
        read_list_file(str(path), " ", 2, False)
