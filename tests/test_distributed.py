"""ops.engine.distributed: a real 2-process gloo run through the CPU spawn path, env (torchrun) init, helpers."""

import json
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from ops.engine import distributed as D
from ops.engine.checkpoint import (
    RNGWorldSizeError,
    get_rng_state,
    rank_states,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
)
from ops.opts import parse_args
from tests.run_checks import retry_on_port_clash

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def _worker(args):
    # Runs in each spawned process: collectives, uneven gather, and one DDP step on rank-dependent data.
    torch.set_num_threads(1)
    info = D.init(args)
    with D.closing(info):
        mean = D.all_reduce_mean(torch.tensor([float(info.rank + 1), 10.0 * info.rank]), info)
        total = D.all_reduce_sum(info.rank + 1, info)
        gathered = D.all_gather_cat(torch.full((info.rank + 1, 2), float(info.rank)), info)
        torch.manual_seed(0)
        model = D.wrap_ddp(nn.Linear(3, 2), info)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.arange(6.0).view(2, 3) * (info.rank + 1)
        model(x).pow(2).sum().backward()
        opt.step()
        params = D.all_gather_cat(torch.cat([p.detach().flatten() for p in model.parameters()])[None], info)
        D.barrier(info)
        result = dict(
            rank=info.rank,
            world=info.world_size,
            local=info.local_rank,
            local_world=info.local_world_size,
            is_main=info.is_main,
            backend=info.backend,
            device=str(info.device),
            mean=mean.tolist(),
            total=total.item(),
            gathered=gathered.tolist(),
            params_equal=bool(torch.equal(params[0], params[1])),
            batch=D.split_batch(args.batch_size, info.world_size),
            unwrapped=type(D.unwrap(model)).__name__,
        )
        with open(os.path.join(args.out_dir, f"rank{info.rank}.json"), "w") as f:
            json.dump(result, f)


def test_two_process_gloo_spawn_on_cpu(tmp_path, clean_env):
    args = parse_args(
        [
            "synthetic",
            "RGB",
            "--multiprocessing-distributed",
            "--world-size",
            "1",
            "--rank",
            "0",
            "--nproc_per_node",
            "2",
            "--device",
            "cpu",
            "-b",
            "8",
        ]
    )
    args.out_dir = str(tmp_path)
    plan = D.plan_launch(args)
    assert (plan.spawn, plan.nprocs, plan.world_size, plan.node_rank) == (True, 2, 2, 0)
    assert plan.dist_url.startswith("tcp://127.0.0.1:")
    assert retry_on_port_clash(lambda: D.launch(_worker, args)) is None
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        assert (res["rank"], res["world"], res["local"], res["local_world"]) == (r, 2, r, 2)
        assert (res["is_main"], res["backend"], res["device"]) == (r == 0, "gloo", "cpu")
        assert res["mean"] == [1.5, 5.0] and res["total"] == 3.0
        assert res["gathered"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]  # rank 0 sent 1 row, rank 1 sent 2
        assert res["params_equal"] and res["batch"] == 4 and res["unwrapped"] == "Linear"


def test_single_process_without_launcher(clean_env):
    args = parse_args(["synthetic", "RGB", "--device", "cpu"])
    plan = D.plan_launch(args)
    assert (plan.spawn, plan.world_size) == (False, 1)
    info = D.init(args)
    assert info == D.DistInfo(0, 1, 0, torch.device("cpu"), True, None, 1) and not info.distributed
    t = torch.tensor([2.0, 4.0])
    assert D.all_reduce_mean(t, info).tolist() == [2.0, 4.0] and D.all_gather_cat(t, info).tolist() == [
        2.0,
        4.0,
    ]
    model = nn.Linear(2, 2)
    assert D.wrap_ddp(model, info) is model
    D.barrier(info)
    D.cleanup(info)
    # README form with one process (e.g. CUDA_VISIBLE_DEVICES=0 for early exit): no spawn, no process group
    args = parse_args(
        [
            "synthetic",
            "RGB",
            "--multiprocessing-distributed",
            "--world-size",
            "1",
            "--rank",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert D.plan_launch(args).spawn is False and D.launch(lambda a: "ran", args) == "ran"


def test_closing_waits_for_the_others_only_when_the_block_ends_normally(monkeypatch):
    calls = []
    monkeypatch.setattr(D, "cleanup", lambda info, wait=True: calls.append((info.rank, wait)))

    def run(fail: bool) -> int:
        with D.closing(D.DistInfo(rank=int(fail))):
            if fail:
                raise FloatingPointError("the loss is not finite")
            return 7

    assert run(False) == 7
    with pytest.raises(FloatingPointError, match="not finite"):
        run(True)
    assert calls == [(0, True), (1, False)]


def test_launcher_env_init_and_nccl_fallback(clean_env):
    # What torchrun / torch.distributed.launch set; world size 1 so the test needs a single process.
    env = dict(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(D.free_port())
    )
    for k, v in env.items():
        clean_env.setenv(k, v)
    args = parse_args(["--dataset", "actnet", "--device", "cpu", "--local_rank", "0"])
    args.world_size = 2  # ignored: the launcher's WORLD_SIZE wins
    with pytest.warns(UserWarning, match="nccl needs CUDA"):
        assert D.pick_backend(torch.device("cpu"), "nccl") == "gloo"
    assert D.pick_backend(torch.device("cpu")) == "gloo" and D.pick_backend(torch.device("cuda", 0)) == "nccl"
    info = D.init(args)
    assert (info.rank, info.world_size, info.local_rank, info.backend) == (0, 1, 0, None)
    args.multiprocessing_distributed = True
    with pytest.warns(UserWarning, match="already started by a launcher"):
        assert D.plan_launch(args).spawn is False


def test_split_helpers_and_errors(clean_env):
    assert D.split_batch(64, 4) == 16 and D.split_workers(16, 4) == 4 and D.split_workers(5, 2) == 3
    with pytest.raises(ValueError, match="--batch-size 30 is not divisible by the world size 4"):
        D.split_batch(30, 4)
    args = parse_args(
        [
            "synthetic",
            "RGB",
            "--multiprocessing-distributed",
            "--world-size",
            "2",
            "--rank",
            "0",
            "--device",
            "cpu",
        ]
    )
    with pytest.raises(ValueError, match="--dist-url tcp://MASTER:PORT is required"):
        D.plan_launch(args)
    args.rank = 2
    with pytest.raises(ValueError, match="--rank 2 must be < --world-size 2"):
        D.plan_launch(args)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            D.resolve_device("cuda")
        assert D.resolve_device("auto", local_rank=3) == torch.device("cpu")


def test_seed_everything_offsets_by_rank():
    D.seed_everything(5, rank=1)
    a = torch.rand(3)
    torch.manual_seed(6)
    assert torch.equal(a, torch.rand(3))


def _draws() -> list:
    """What a training step draws from the global generators: python, numpy (V1's random patches), torch (dropout,
    Monte-Carlo masks)."""
    return [random.random(), *np.random.rand(2).tolist(), *torch.rand(2).tolist()]


def _resume_worker(args):
    # Each rank: seeded per rank, draws (epoch 0), checkpoint (rank 0 writes every rank's states), the draws of an
    # uninterrupted epoch 1; then a fresh start restored from the file, and its epoch-1 draws. Then one DDP step on
    # rank-dependent data (BN statistics differ per rank), the buffers broadcast before validation, and a loss
    # that is NaN on rank 1 only.
    from tests.test_gpu_paths import _Clips, clip_batches, nan_at, run_epoch

    torch.set_num_threads(1)
    info = D.init(args)
    out, net = {}, nn.Linear(1, 1)
    with D.closing(info):
        D.seed_everything(11, info.rank)
        _draws()
        rng = rank_states(D.all_gather_objects(get_rng_state(), info))
        if info.is_main:
            save_checkpoint(args.out_dir, net, epoch=1, rng=rng)
        D.barrier(info)
        out["straight"] = _draws()
        D.seed_everything(11, info.rank)  # a new process starts seeded again
        ckpt = read_checkpoint(os.path.join(args.out_dir, "ckpt.pth.tar"))
        out["restored"] = restore_rng(ckpt, rank=info.rank, world_size=info.world_size)
        out["resumed"] = _draws()
        try:
            restore_rng(ckpt, rank=info.rank, world_size=3)
        except RNGWorldSizeError as exc:
            out["other_world"] = str(exc)

        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        ddp = D.wrap_ddp(net, info)
        ddp(torch.randn(8, 3) * (info.rank + 1)).sum().backward()
        state = lambda: torch.cat([t.detach().flatten().float() for t in net.state_dict().values()])  # noqa: E731
        before = D.all_gather_cat(state()[None], info)
        D.broadcast_buffers(ddp, info)
        after = D.all_gather_cat(state()[None], info)
        out["buffers_differed"] = not torch.equal(before[0], before[1])
        out["buffers_equal"] = torch.equal(after[0], after[1]) and torch.equal(after[0], before[0])

        model = D.wrap_ddp(_Clips(), info)
        try:
            run_epoch(
                model, nan_at({1} if info.rank == 1 else set()), clip_batches(3), args.out_dir, info=info
            )
        except FloatingPointError as exc:
            out["nonfinite"] = str(exc)
        with open(os.path.join(args.out_dir, f"rank{info.rank}.json"), "w") as f:
            json.dump(out, f)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Runs _resume_worker on 2 gloo processes; returns each rank's results."""
    path = tmp_path_factory.mktemp("ranks")
    saved = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
    try:
        args = parse_args(["synthetic", "RGB", "--multiprocessing-distributed", "--nproc_per_node", "2"])
        args.device, args.out_dir = "cpu", str(path)
        D.launch(_resume_worker, args)
    finally:
        os.environ.update(saved)
    return [json.loads((path / f"rank{r}.json").read_text()) for r in range(2)]


def test_resume_restores_each_ranks_own_rng_states(two_ranks):
    for res in two_ranks:
        assert res["restored"] is True
        assert res["resumed"] == res["straight"]  # python, numpy and torch draws after the resume
        assert "saved by 2 process(es), this run has 3" in res["other_world"]
    # ranks draw differently (before, every rank restored rank 0's states and drew the same patches and masks)
    assert all(a != b for a, b in zip(two_ranks[0]["resumed"], two_ranks[1]["resumed"]))


def test_validation_sees_rank0s_batchnorm_statistics_on_every_rank(two_ranks):
    for res in two_ranks:
        assert res["buffers_differed"] and res["buffers_equal"]


def test_a_nonfinite_loss_on_one_rank_stops_every_rank_together(two_ranks):
    for res in two_ranks:
        assert "epoch 0 iteration 1: the loss is not finite on rank(s) [1]" in res["nonfinite"]


def test_two_processes_on_one_gpu_are_refused(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    base = ["synthetic", "RGB", "--multiprocessing-distributed", "--world-size", "1", "--rank", "0"]
    assert D.plan_launch(parse_args(base)).nprocs == 2  # one process per visible GPU
    with pytest.raises(ValueError, match=r"3 processes on this node but 2 visible GPU\(s\)"):
        D.plan_launch(parse_args([*base, "--nproc_per_node", "3"]))
    with pytest.raises(
        ValueError, match="--device cuda:1 with 2 processes on this node puts them all on one GPU"
    ):
        D.plan_launch(parse_args([*base, "--device", "cuda:1"]))
    assert D.plan_launch(parse_args([*base, "--device", "cuda:1", "--nproc_per_node", "1"])).nprocs == 1
    # torchrun: the launcher's LOCAL_WORLD_SIZE is checked when the process starts
    for k, v in dict(RANK="0", WORLD_SIZE="4", LOCAL_RANK="0", LOCAL_WORLD_SIZE="4").items():
        clean_env.setenv(k, v)
    with pytest.raises(ValueError, match="4 processes on this node but 2 visible GPU"):
        D.init(parse_args(["synthetic", "RGB"]))
    D.check_one_gpu_per_process("cpu", 8, 0)  # CPU processes share cores, not a GPU
    D.check_one_gpu_per_process("cuda", 2, 2)


def test_spawned_processes_get_one_openmp_thread_unless_the_user_chose(clean_env):
    assert D.thread_env(2, {}) == {"OMP_NUM_THREADS": "1"}
    assert D.thread_env(2, {"OMP_NUM_THREADS": "4"}) == {} and D.thread_env(1, {}) == {}
