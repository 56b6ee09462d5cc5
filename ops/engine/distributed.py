"""Process launch and torch.distributed set-up for every launch form the originals used, on CUDA or CPU.

Launch forms (all end in `main_worker(args)` running once per process, which then calls `init(args)`):
  * ``--multiprocessing-distributed --world-size NODES --rank NODE --dist-url tcp://host:port`` (TSM/X3D README):
    `launch` spawns one process per visible GPU, or ``--nproc_per_node`` processes (CPU: default 1).
    World size = processes per node x nodes; global rank = node rank x processes per node + local index.
  * ``torchrun`` / ``python -m torch.distributed.launch`` (AN README, passes ``--local_rank``): the launcher's
    environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) is used with ``env://``.
  * one process per node started by hand: ``--world-size N --rank R --dist-url tcp://...`` without spawning.
  * plain ``python main.py ...``: a single process, no process group; the collectives below are then identities.
Backend: nccl on CUDA, gloo on CPU (nccl asked for on CPU warns and falls back to gloo).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import math
import os
import random
import socket
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

LAUNCHER_ENV = ("RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size, local index, its device and the backend (None: no group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    is_main: bool = True
    backend: str | None = None
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.backend is not None


@dataclass(frozen=True)
class LaunchPlan:
    """How `launch` starts workers: spawn `nprocs` local processes or call the worker in this process."""

    spawn: bool
    nprocs: int
    world_size: int
    node_rank: int
    dist_url: str | None


def free_port() -> int:
    """Returns a TCP port that was free on 127.0.0.1 a moment ago (for single-node rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wants_cuda(args: argparse.Namespace) -> bool:
    spec = getattr(args, "device", None) or "auto"
    return spec != "cpu" and torch.cuda.is_available()


def plan_launch(args: argparse.Namespace) -> LaunchPlan:
    """Returns the launch plan for `args`; raises ValueError for inconsistent distributed flags."""
    external = all(k in os.environ for k in LAUNCHER_ENV)
    if not args.multiprocessing_distributed or external:
        if args.multiprocessing_distributed:
            warnings.warn(
                "--multiprocessing-distributed ignored: already started by a launcher (RANK/WORLD_SIZE set)",
                stacklevel=2,
            )
        return LaunchPlan(
            False, 1, int(os.environ.get("WORLD_SIZE", max(args.world_size, 1))), 0, args.dist_url
        )
    if args.nproc_per_node is not None:
        nprocs = args.nproc_per_node
    else:
        nprocs = torch.cuda.device_count() if _wants_cuda(args) else 1
    if _wants_cuda(args):
        check_one_gpu_per_process(args.device, nprocs, torch.cuda.device_count())
    nodes, node_rank = max(args.world_size, 1), max(args.rank, 0)
    if node_rank >= nodes:
        raise ValueError(f"--rank {args.rank} must be < --world-size {args.world_size} (ranks count nodes)")
    url = args.dist_url
    if url is None:
        if nodes > 1:
            raise ValueError("--dist-url tcp://MASTER:PORT is required when --world-size > 1")
        url = f"tcp://127.0.0.1:{free_port()}"
    if url.startswith("env://") and not {"MASTER_ADDR", "MASTER_PORT"} <= set(os.environ):
        raise ValueError("--dist-url env:// needs MASTER_ADDR and MASTER_PORT in the environment")
    return LaunchPlan(nprocs * nodes > 1, nprocs, nprocs * nodes, node_rank, url)


def launch(main_worker: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> Any:
    """Runs `main_worker(args)` in every process of the plan; returns its result when run in-process, else None.

    `main_worker` must be a module-level function (it is pickled for torch.multiprocessing.spawn)."""
    plan = plan_launch(args)
    if not plan.spawn:
        return main_worker(args)
    if plan.nprocs > 1 and "OMP_NUM_THREADS" not in os.environ:
        warnings.warn(
            f"OMP_NUM_THREADS set to 1 in each of the {plan.nprocs} processes (as torchrun does) so that they do "
            "not oversubscribe the CPU cores; set it yourself to tune it",
            stacklevel=2,
        )
    mp.spawn(_spawn_entry, args=(main_worker, args, plan), nprocs=plan.nprocs, join=True)
    return None


def _spawn_entry(local_index: int, main_worker: Callable, args: argparse.Namespace, plan: LaunchPlan) -> None:
    # A spawned child describes itself exactly like a torchrun child, so `init` has one code path.
    url = urlparse(plan.dist_url)
    env = {
        "RANK": plan.node_rank * plan.nprocs + local_index,
        "WORLD_SIZE": plan.world_size,
        "LOCAL_RANK": local_index,
        "LOCAL_WORLD_SIZE": plan.nprocs,
    }
    if url.scheme == "tcp":
        env.update(MASTER_ADDR=url.hostname, MASTER_PORT=url.port)
    env.update(thread_env(plan.nprocs, os.environ))
    os.environ.update({k: str(v) for k, v in env.items()})
    if "OMP_NUM_THREADS" in env:  # torch read the variable at import, before it was set here
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    args = copy.copy(args)
    args.local_rank = local_index
    main_worker(args)
    # The run is done and its process group destroyed (`closing`), but gloo's threads may still be releasing the
    # last collective's tensors when Python shuts down, which aborts a finished process ("terminate called
    # without an active exception"; cleanup's barrier made it rare, not impossible: it still failed a CI run).
    # A spawned process that returned ends here instead, its output flushed: torch.multiprocessing.spawn reads
    # only its exit code. A failure raises above and takes the normal path.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def thread_env(nprocs: int, environ: dict | os._Environ) -> dict[str, str]:
    """Returns the variables a spawned process adds: OMP_NUM_THREADS=1 when several processes share the node and
    the user set none (as torchrun), else nothing."""
    return {"OMP_NUM_THREADS": "1"} if nprocs > 1 and "OMP_NUM_THREADS" not in environ else {}


def check_one_gpu_per_process(spec: str | None, local_processes: int, visible_gpus: int) -> None:
    """Raises ValueError when `local_processes` CUDA processes of one node would share a GPU: a fixed
    `--device cuda:N` for several of them, or more of them than visible GPUs (NCCL cannot run two ranks on one
    device, and two processes would split its memory)."""
    if local_processes <= 1 or spec == "cpu":
        return
    if spec and spec.startswith("cuda:"):
        raise ValueError(
            f"--device {spec} with {local_processes} processes on this node puts them all on one GPU; use "
            "--device cuda (or auto: one GPU per process, by local rank) and CUDA_VISIBLE_DEVICES to choose the GPUs"
        )
    if local_processes > visible_gpus:
        raise ValueError(
            f"{local_processes} processes on this node but {visible_gpus} visible GPU(s): two processes would "
            f"share a GPU; lower --nproc_per_node (or torchrun's) to {visible_gpus} or fewer"
        )


def resolve_device(spec: str | None, local_rank: int = 0, gpu: int | None = None) -> torch.device:
    """Returns the device for this process: 'auto' = cuda:<local rank or --gpu> if CUDA is available, else cpu."""
    spec = spec or "auto"
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        if gpu is not None and spec == "auto":
            warnings.warn(f"--gpu {gpu} ignored: CUDA is not available, running on CPU", stacklevel=2)
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"--device {spec} asked for, but CUDA is not available (use --device cpu or auto)")
    if ":" in spec:
        return torch.device(spec)
    index = gpu if gpu is not None else local_rank % max(torch.cuda.device_count(), 1)
    return torch.device("cuda", index)


def pick_backend(device: torch.device, requested: str | None = None) -> str:
    """Returns 'nccl' for CUDA and 'gloo' for CPU; nccl requested on CPU warns and gives gloo."""
    if requested == "nccl" and device.type != "cuda":
        warnings.warn("--dist-backend nccl needs CUDA; using gloo on CPU", stacklevel=2)
        return "gloo"
    return requested or ("nccl" if device.type == "cuda" else "gloo")


def init(args: argparse.Namespace) -> DistInfo:
    """Sets up this process (device, process group when world size > 1) and returns its DistInfo."""
    env = os.environ
    if all(k in env for k in LAUNCHER_ENV):
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", args.local_rank if args.local_rank is not None else 0))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        method = "env://"
    elif args.world_size > 1:
        if args.rank < 0 or not args.dist_url:
            raise ValueError(
                "--world-size > 1 without a launcher needs --rank and --dist-url tcp://MASTER:PORT"
            )
        rank, world, local, local_world, method = args.rank, args.world_size, args.gpu or 0, 1, args.dist_url
    else:
        rank, world, local, local_world, method = 0, 1, 0, 1, None
    if world > 1 and torch.cuda.is_available():
        check_one_gpu_per_process(args.device, local_world, torch.cuda.device_count())
    device = resolve_device(args.device, local, args.gpu if world == 1 else None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = None
    if world > 1:
        backend = pick_backend(device, args.dist_backend)
        if not dist.is_initialized():
            kw = {"device_id": device} if backend == "nccl" else {}
            dist.init_process_group(backend, init_method=method, world_size=world, rank=rank, **kw)
    return DistInfo(rank, world, local, device, rank == 0, backend, local_world)


def cleanup(info: DistInfo, wait: bool = True) -> None:
    """Destroys the process group created by `init` (no-op for a single process).

    On gloo with `wait` (a process that ends normally), the processes first meet at a barrier. Entering a new
    collective lets gloo's worker threads finish releasing the previous one's tensors, a release that takes the
    GIL: left to run while Python shuts down, it aborts the process ("terminate called without an active
    exception") after a run that succeeded (about 1 exit in 15 on 2 CPU cores; the process group of a
    DistributedDataParallel model stays alive until exit, so destroying it does not join those threads). Pass
    wait=False on an error path, where another process may never arrive; `closing` chooses for you."""
    if not (info.distributed and dist.is_initialized()):
        return
    if wait and info.backend == "gloo":
        dist.barrier()
    dist.destroy_process_group()


@contextlib.contextmanager
def closing(info: DistInfo) -> Iterator[DistInfo]:
    """Yields `info` and calls `cleanup` when the block ends: waiting for the other processes when it ends
    normally (return included), at once when an exception leaves it."""
    try:
        yield info
    except BaseException:
        cleanup(info, wait=False)
        raise
    cleanup(info)


def split_batch(global_batch: int, world_size: int) -> int:
    """Returns the per-process batch; raises ValueError when the global batch does not divide evenly."""
    if global_batch % world_size:
        raise ValueError(
            f"--batch-size {global_batch} is not divisible by the world size {world_size} "
            "(the batch size is global and is split over all processes)"
        )
    return global_batch // world_size


def split_workers(workers: int, nprocs: int) -> int:
    """Returns DataLoader workers per process: ceil(workers / local processes), as the originals did."""
    return math.ceil(workers / max(nprocs, 1))


def barrier(info: DistInfo) -> None:
    """Waits for all processes (no-op for a single process)."""
    if info.distributed:
        if info.backend == "nccl":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum(value: torch.Tensor | float, info: DistInfo) -> torch.Tensor:
    """Returns the sum over processes of `value` (any shape) as a new tensor on value's device."""
    t = torch.as_tensor(value)
    home = t.device
    t = t.detach().to(info.device, copy=True)
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.to(home)


def all_reduce_mean(value: torch.Tensor | float, info: DistInfo) -> torch.Tensor:
    """Returns the mean over processes of `value` (integer tensors are promoted to float)."""
    t = torch.as_tensor(value)
    if not t.is_floating_point():
        t = t.double()
    return all_reduce_sum(t, info) / info.world_size


def all_gather_list(tensor: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Returns every rank's `tensor` (n_r, ...) in rank order, on the tensor's device; n_r may differ per rank
    (single process: [a detached copy])."""
    if not info.distributed:
        return [tensor.detach().clone()]
    home = tensor.device
    t = tensor.detach().to(info.device).contiguous()
    sizes = [torch.zeros(1, dtype=torch.long, device=info.device) for _ in range(info.world_size)]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], device=info.device))
    sizes = [int(s.item()) for s in sizes]
    pad = t.new_zeros((max(sizes) - t.shape[0], *t.shape[1:]))
    parts = [t.new_empty((max(sizes), *t.shape[1:])) for _ in sizes]
    dist.all_gather(parts, torch.cat([t, pad]))
    return [p[:n].to(home) for p, n in zip(parts, sizes)]


def ranks_without(flag: torch.Tensor, info: DistInfo) -> list[int]:
    """Returns the ranks whose boolean `flag` (a 0-d tensor) is False, the same list on every rank: one all-gather
    and one host sync (single process: [0] or [])."""
    return [rank for rank, ok in enumerate(gather_flags(flag, info)[:, 0].tolist()) if not ok]


def gather_flags(flags: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Returns every rank's boolean `flags` (0-d or (k,)) as an int (world_size, k) CPU tensor, the same on every
    rank: one all-gather and one host sync."""
    t = flags.detach().reshape(-1).to(info.device, torch.int32)
    if info.distributed:
        parts = [torch.empty_like(t) for _ in range(info.world_size)]
        dist.all_gather(parts, t)
        return torch.stack(parts).cpu()
    return t[None].cpu()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Returns every rank's picklable `obj` in rank order (single process: [obj]); small objects only (RNG states)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(model: nn.Module, info: DistInfo, src: int = 0) -> None:
    """Copies rank `src`'s buffers (BatchNorm running statistics) into every rank's model, in place.

    DDP broadcasts buffers only at the start of a training forward, so after an epoch each rank holds the
    statistics of its own last batches; validation then evaluates rank 0's model, the one saved."""
    if not info.distributed:
        return
    for buf in unwrap(model).buffers():
        dist.broadcast(buf.data, src=src)


def all_gather_cat(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Returns the concatenation over ranks (rank order) of `tensor` (n_r, ...), n_r may differ per rank."""
    return torch.cat(all_gather_list(tensor, info))


def gather_in_sampler_order(
    tensor: torch.Tensor, info: DistInfo, dataset_len: int | None = None
) -> torch.Tensor:
    """All-gathers per-rank results (n_r, ...) of a DistributedSampler split into one (N, ...) tensor in dataset
    order, on every rank.

    Rank r holds the items r, r + W, r + 2W, ... of the (padded) index list, so item j of rank r goes to
    position j * W + r; the first ranks may hold one more. `dataset_len` cuts the result to that length, which
    removes exactly the duplicates the sampler appended to even out the ranks (the original counted them in
    mAP/accuracy; dropped knowingly). With shuffle=True the order is the sampler's, still without duplicates."""
    parts = all_gather_list(tensor, info)
    sizes = [p.shape[0] for p in parts]
    if any(a < b for a, b in zip(sizes, sizes[1:])) or max(sizes) - min(sizes) > 1:
        raise ValueError(f"per-rank lengths {sizes} do not follow the DistributedSampler layout")
    out = tensor.new_empty((sum(sizes), *tensor.shape[1:]))
    for rank, part in enumerate(parts):
        out[rank :: len(parts)] = part
    if dataset_len is not None:
        if dataset_len > out.shape[0]:
            raise ValueError(f"dataset_len={dataset_len} > {out.shape[0]} gathered items")
        out = out[:dataset_len]
    return out


def wrap_ddp(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """Returns `model` wrapped in DistributedDataParallel when distributed (device_ids only on CUDA), else model."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    """Returns the module inside DDP / DataParallel / torch.compile wrappers (the one way to unwrap a model)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seeds python, numpy and torch (all devices) with seed + rank; returns the seed used."""
    s = seed + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return s
