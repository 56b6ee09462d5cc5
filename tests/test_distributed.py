"""ops.engine.distributed: a real 2-process gloo run through the CPU spawn path, env (torchrun) init, helpers."""

import json
import os

import pytest
import torch
from torch import nn

from ops.engine import distributed as D
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
    try:
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
    finally:
        D.cleanup(info)


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
