"""Building blocks of scripts/bench_vs_official.py: this project's Uni-AdaFocus-TSM side by side with the
official code (ops/tools/official_tsm.py) on the same weights, inputs and frames.

Three measurements, each in interleaved rounds (official, ours, ...) and reported as the median of the
per-round ratios official / ours (= speed-up, > 1: ours faster). Each side runs in a process of its own (`Sides`)
with the host memory setting its own scripts give it: glibc's default malloc for the official code, `--host_memory`
(default keep: ops/engine/host_memory.py) for ours, as main.py applies it; `--official_host_memory keep` gives the
official side the same setting, which compares the code alone:
- `loader`: one training clip (8 glance + 36 candidate frames, multi-scale crop, normalisation) per call,
  one process, one thread, official TSNDataSet + GroupMultiScaleCrop / Stack / ToTorchFormatTensor /
  GroupNormalize vs ops.data.dataset.VideoDataset + ops.tools.inference.normalize_frames.
- `eval`: the eval forward at batch B from uint8 frames: official (its val loop feeds normalised floats, so
  the normalisation is timed with it) vs ours plain (`model.eval()`, same input) and ours fast
  (ops.tools.inference.deploy_model + predict_with_exit, normalising only the frames it uses).
- `train`: one training step (forward, the official loss of main.py / ours of model.criterion(), backward,
  SGD with momentum), batch B.
Equality is checked first: logits (max |diff|) and the selected focus frames of the eval forward, and the
val-mode loader outputs (the training crops are random in both and drawn by different generators).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import ModelConfig, build_model
from ops.data.dataset import VideoDataset
from ops.data.dataset_config import DatasetConfig
from ops.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from ops.engine.host_memory import apply_host_memory
from ops.tools.benchmark import CLOCKS, median_ratio, train_step_fn
from ops.tools.inference import deploy_model, normalize_frames, predict_with_exit
from ops.tools.official_tsm import OfficialTSM

GLANCE, CANDIDATES, FOCUS = 8, 36, 12
POLICY_OUTPUTS = ("temporal_policy.Tconv.6.weight", "spatial_policy.encoder.9.weight")


# ------------------------------------------------------------------------------------------- models
def paired_models(off: OfficialTSM, num_classes: int, patch: int, gain: float, seed: int):
    """Returns (official model, ours) with the same weights: the official random initialisation under
    `seed`, the two policy output layers scaled by `gain` (non-uniform frame choices, as the fixtures'
    gain-25 variant), loaded into ours with strict=True (the state_dict keys are the official ones)."""
    torch.manual_seed(seed)
    official = off.build_model(num_classes, patch)
    state = official.state_dict()
    with torch.no_grad():
        for key in POLICY_OUTPUTS:
            state[key].mul_(gain)
    cfg = ModelConfig(preset="tsm", num_classes=num_classes, patch_size=patch, pretrain="none")
    ours = build_model(cfg)
    ours.load_state_dict(state, strict=True)
    return official, ours


def official_inputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official model's (images_glance (B, 8*3, S, S), images_input (B, 36*3, S, S)) of x (B, 44, 3, S, S)."""
    b, _, c, h, w = x.shape
    glance = x[:, :GLANCE].reshape(b, GLANCE * c, h, w).contiguous()  # as the official loader gives them
    return glance, x[:, GLANCE:].reshape(b, CANDIDATES * c, h, w).contiguous()


def official_eval(model: nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official eval forward of uint8 frames (normalised as its loader does); returns (logits, focus indices
    (B, K) 0-based among the candidates)."""
    with torch.no_grad():
        out = model(*official_inputs(normalize(frames)))
    b = frames.shape[0]
    idx = out[8].view(b, FOCUS) - CANDIDATES * torch.arange(b).unsqueeze(1)
    return out[0], idx


def ours_eval(model: nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(normalize(frames))
    return out["logits"], out["focus_indices"]


def fast_fn(deployed: nn.Module, frames: torch.Tensor) -> Callable[[], torch.Tensor]:
    never = [1e8] * (deployed.num_exits - 1) + [-1e8]
    return lambda: predict_with_exit(deployed, frames, never, prepare=normalize_frames)[0]


def compare_eval(official, ours, deployed, frames: torch.Tensor) -> dict:
    """Max |logit difference| of ours (plain and fast) against the official forward, and whether the
    selected frames are the same."""
    torch.manual_seed(0)
    ref, ref_idx = official_eval(official, frames)
    torch.manual_seed(0)
    plain, idx = ours_eval(ours, frames)
    fast = fast_fn(deployed, frames)()
    return {
        "max_abs_logit_diff_plain": float((plain - ref).abs().max()),
        "max_abs_logit_diff_fast": float((fast - ref).abs().max()),
        "same_focus_frames": bool(torch.equal(idx, ref_idx)),
        "focus_frames_video0": ref_idx[0].tolist(),
    }


def official_train_step_fn(model: nn.Module, frames: torch.Tensor, num_classes: int, norm_ratio: float = 0.5):
    """One training step as the official main.py's train() (both branches, five CE terms each, the action
    norm loss; no AMP on the CPU), SGD lr 1e-4 momentum 0.9 as ops.tools.benchmark.train_step_fn."""
    model.train()
    target = torch.randint(0, num_classes, (frames.shape[0],))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        p1, p2 = model(*official_inputs(normalize(frames)))
        loss = sum(F.cross_entropy(a, target) + F.cross_entropy(b, target) for a, b in zip(p1[:5], p2[:5]))
        action_3 = p1[6]
        loss_norm = ((action_3[:, 2:4] - 1.0) ** 2).mean()
        (loss / 2 + loss_norm * norm_ratio).backward()
        optimizer.step()

    return step


# ------------------------------------------------------------------------------------------- loaders
def write_frames(root: str, videos: int, frames: int, h: int, w: int) -> tuple[str, str]:
    """Writes `videos` JPEG (q95) frame folders `vid{v}/{t:05d}.jpg` (smooth noise) and a list file
    `vid{v} frames label`; returns (frames root, list file)."""
    rng = np.random.default_rng(0)
    folder = os.path.join(root, "frames")
    rows = []
    for v in range(videos):
        os.makedirs(os.path.join(folder, f"vid{v}"), exist_ok=True)
        for t in range(1, frames + 1):
            img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
            cv2.imwrite(os.path.join(folder, f"vid{v}", f"{t:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append(f"vid{v} {frames} {v % 2}")
    lst = os.path.join(root, "list.txt")
    with open(lst, "w") as f:
        f.write("\n".join(rows) + "\n")
    return folder, lst


def official_dataset(off: OfficialTSM, folder: str, lst: str, train: bool):
    t = off.transforms
    import torchvision

    first = t.GroupMultiScaleCrop(224, [1, 0.875, 0.75, 0.66]) if train else t.GroupScale(256)
    steps = [first] + ([] if train else [t.GroupCenterCrop(224)])
    steps += [
        t.Stack(roll=False),
        t.ToTorchFormatTensor(div=True),
        t.GroupNormalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    with off.namespace():
        return off.dataset.TSNDataSet(
            folder,
            lst,
            num_segments_glancer=GLANCE,
            num_segments_focuser=CANDIDATES,
            image_tmpl="{:05d}.jpg",
            transform=torchvision.transforms.Compose(steps),
            random_shift=train,
        )


def our_dataset(folder: str, lst: str, train: bool) -> VideoDataset:
    cfg = DatasetConfig(
        name="bench",
        num_classes=2,
        categories=["a", "b"],
        frames_root=folder,
        train_list=lst,
        val_list=lst,
        image_tmpl="{:05d}.jpg",
        separator=" ",
        multi_label=False,
        flip=False,  # Something-Something: no flips (left / right are labels)
    )
    return VideoDataset(cfg, "train" if train else "val", num_glance=GLANCE, num_candidates=CANDIDATES)


def official_clip(ds, i: int) -> torch.Tensor:
    glance, cands, _ = ds[i]
    return torch.cat([glance.view(GLANCE, 3, 224, 224), cands.view(CANDIDATES, 3, 224, 224)])


def our_clip(ds: VideoDataset, i: int) -> torch.Tensor:
    return normalize_frames(ds[i][0])


def compare_loaders(off: OfficialTSM, folder: str, lst: str) -> dict:
    """Max |difference| of the val-mode clips (deterministic frames and centre crop) over all videos."""
    ods, ods_ours = official_dataset(off, folder, lst, False), our_dataset(folder, lst, False)
    diff = max(float((official_clip(ods, i) - our_clip(ods_ours, i)).abs().max()) for i in range(len(ods)))
    return {"max_abs_val_clip_diff": diff}


def summary(times: dict[str, list[float]], unit: str, per_s: Callable[[float], float]) -> dict:
    """Median of the per-round ratios official / key for every other key, plus the medians as a rate."""
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = {f"{k}_{unit}": per_s(v) for k, v in med.items()}
    for key in times:
        if key != "official":
            out[f"speedup_{key}"] = median_ratio(times, "official", key)
    out["rounds"] = len(times["official"])
    return out


# ------------------------------------------------------------------------------------------- all
def bench_frames(batch: int, gen: torch.Generator) -> torch.Tensor:
    """uint8 frames (batch, 44, 3, 224, 224): noise with a random brightness per frame, so that the frames
    differ and the temporal policy's choice is not the uniform grid."""
    noise = torch.rand(batch, GLANCE + CANDIDATES, 3, 224, 224, generator=gen)
    level = torch.rand(batch, GLANCE + CANDIDATES, 1, 1, 1, generator=gen)
    return (255 * noise * level).to(torch.uint8)


def cycling(load: Callable[[int], torch.Tensor], n: int) -> Callable[[], torch.Tensor]:
    """A callable loading clip 1, 2, ..., n - 1, 0, 1, ... of `load` on successive calls."""
    state = [0]

    def call() -> torch.Tensor:
        state[0] = (state[0] + 1) % n
        return load(state[0])

    return call


def side_factories(off: OfficialTSM, side: str, args, data: tuple[str, str] | None) -> dict[str, Callable]:
    """The timed callables of one side, each built on first use (a training step switches its model to train
    mode): official 'loader', 'eval', 'train'; ours 'loader', 'plain', 'fast', 'fused', 'train'."""
    official, ours = paired_models(off, 174, args.patch, args.gain, args.seed)
    model = official if side == "official" else ours
    del official, ours
    model.eval()
    x = bench_frames(args.batch, torch.Generator().manual_seed(args.seed))
    xt = x[: args.train_batch]

    def official_loader() -> Callable:
        ds = official_dataset(off, *data, True)
        return cycling(lambda i: official_clip(ds, i), len(ds))

    def our_loader() -> Callable:
        ds = our_dataset(*data, True)
        return cycling(lambda i: our_clip(ds, i), len(ds))

    if side == "official":
        return {
            "loader": official_loader,
            "eval": lambda: lambda: official_eval(model, x),
            "train": lambda: official_train_step_fn(model, xt, 174),
        }
    return {
        "loader": our_loader,
        "plain": lambda: lambda: ours_eval(model, x),
        "fast": lambda: fast_fn(deploy_model(model), x),
        "fused": lambda: fast_fn(deploy_model(model, fuse=True), x),
        "train": lambda: train_step_fn(model, xt, 174),
    }


def side_worker(conn, root: str, side: str, args, data: tuple[str, str] | None) -> None:
    """One side of the comparison in a process of its own, with its own host memory setting (`side_host_memory`:
    by default glibc's malloc for the official code, as its scripts run, and `--host_memory keep` for ours, as our
    entry scripts apply it). Answers each message (a callable's name) with the seconds (args.clock) of one call,
    until it receives None."""
    apply_host_memory(side_host_memory(side, args))
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    factories = side_factories(OfficialTSM(root), side, args, data)
    fns: dict[str, Callable] = {}
    now = CLOCKS[args.clock]
    conn.send("ready")
    while (name := conn.recv()) is not None:
        torch.set_num_threads(1 if name == "loader" else args.threads)  # the loader: one process, one thread
        fn = fns.get(name) or fns.setdefault(name, factories[name]())
        start = now()
        fn()
        conn.send(now() - start)


def side_host_memory(side: str, args) -> str:
    """The host memory setting of a side: `--official_host_memory` (default release: glibc's behaviour, as the
    official scripts run) or `--host_memory` (default keep, as ours run)."""
    return args.official_host_memory if side == "official" else args.host_memory


def thp_alloc(host_memory: str) -> bool:
    """torch's THP_MEM_ALLOC_ENABLE for a side: on with glibc's default malloc (a 2 MiB page faulted in at a time,
    about half the system time of 4 KiB pages: the faster setting there), off when freed memory is kept (nothing
    is faulted in again; the setting would fragment the heap)."""
    return host_memory == "release"


class Sides:
    """The two worker processes (official, ours); `rounds(calls, warmup, rounds)` times (side, name) calls in
    interleaved rounds as ops.tools.benchmark.timed_rounds does in one process."""

    def __init__(self, root: str, args, data: tuple[str, str] | None) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: no allocator state or thread pool inherited
        self.conns, self.procs = {}, []
        saved = os.environ.get("THP_MEM_ALLOC_ENABLE")
        for side in ("official", "ours"):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=side_worker, args=(child, root, side, args, data), daemon=True)
            os.environ["THP_MEM_ALLOC_ENABLE"] = str(
                int(thp_alloc(side_host_memory(side, args)))
            )  # read at spawn
            proc.start()
            self.conns[side] = parent
            self.procs.append(proc)
        if saved is None:
            del os.environ["THP_MEM_ALLOC_ENABLE"]
        else:
            os.environ["THP_MEM_ALLOC_ENABLE"] = saved
        for conn in self.conns.values():
            conn.recv()  # "ready"

    def call(self, side: str, name: str) -> float:
        self.conns[side].send(name)
        return self.conns[side].recv()

    def rounds(self, calls: dict[str, tuple[str, str]], warmup: int, rounds: int) -> dict[str, list[float]]:
        for _ in range(warmup):
            for side, name in calls.values():
                self.call(side, name)
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(rounds):
            for key, (side, name) in calls.items():
                times[key].append(self.call(side, name))
        return times

    def close(self) -> None:
        for conn in self.conns.values():
            conn.send(None)
        for proc in self.procs:
            proc.join()


def run(off: OfficialTSM, args, log: Callable[[str], None]) -> dict:
    """The three measurements (args: batch, train_batch, rounds, loader_rounds, threads, clock, patch,
    videos, frame_size, seed, skip, host_memory): outputs compared here, timings in one process per side."""
    settings = {side: side_host_memory(side, args) for side in ("official", "ours")}
    result: dict = {"host_memory": settings, "thp_alloc": {k: thp_alloc(v) for k, v in settings.items()}}
    skip = set(args.skip.split(",")) if args.skip else set()
    with tempfile.TemporaryDirectory() as tmp:
        data = None
        if "loader" not in skip:
            w, h = (int(v) for v in args.frame_size.split("x"))
            data = write_frames(tmp, args.videos, 60, h, w)
            torch.set_num_threads(1)
            result["loader"] = compare_loaders(off, *data)
        torch.set_num_threads(args.threads)
        if "eval" not in skip:
            official, ours = paired_models(off, 174, args.patch, args.gain, args.seed)
            official.eval(), ours.eval()
            x = bench_frames(args.batch, torch.Generator().manual_seed(args.seed))
            result["eval_equal"] = compare_eval(official, ours, deploy_model(ours), x)
            result["eval_equal"]["max_abs_logit_diff_fused"] = compare_eval(
                official, ours, deploy_model(ours, fuse=True), x
            )["max_abs_logit_diff_fast"]
            log(f"eval outputs: {result['eval_equal']}")
            del official, ours
        sides = Sides(off.dir, args, data)
        try:
            if data is not None:
                calls = {"official": ("official", "loader"), "ours": ("ours", "loader")}
                times = sides.rounds(calls, 1, args.loader_rounds)
                result["loader"].update(summary(times, "clips_per_s", lambda s: 1.0 / s))
                log(f"loader: {result['loader']}")
            if "eval" not in skip:
                calls = {
                    k: ("official" if k == "official" else "ours", "eval" if k == "official" else k)
                    for k in ("official", "plain", "fast", "fused")
                }
                times = sides.rounds(calls, 1, args.rounds)
                result["eval"] = summary(times, "videos_per_s", lambda s: args.batch / s)
                log(f"eval: {result['eval']}")
            if "train" not in skip and args.train_batch > 0:
                calls = {"official": ("official", "train"), "ours": ("ours", "train")}
                result["train"] = summary(
                    sides.rounds(calls, 1, args.rounds), "steps_per_s", lambda s: 1.0 / s
                )
                log(f"train: {result['train']}")
        finally:
            sides.close()
    return result
