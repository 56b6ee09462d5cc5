"""Checkpoints: atomic save, resume (ours and the original implementation's files), RNG restore, fine-tuning.

Our file (`{run_dir}/ckpt.pth.tar`, copied to `ckpt.best.pth.tar` when best) holds
  state_dict (no `module.` prefix), optimizer, scaler, epoch (= epochs finished = where to resume),
  best_metric, args (resolved, plain types), rng (per rank: python / numpy / torch / own CUDA device / loader
  generator), format.
Everything in it loads with ``torch.load(weights_only=True)``. The original files hold `state_dict` (with
`module.` when saved from DDP), `epoch`, `best_prec1` (TSM/X3D) or `best_acc1` (AN), `optimizer`, `scaler`.
Efficient-3DCNNs files are of the same kind (`state_dict` with `module.`, plus `arch`); TAdaConv / PySlowFast files
hold `model_state`. A model whose keys carry a prefix the originals lack (`original_prefix`, e.g. 'net.') gets it
added to such files' keys.
Every checkpoint is opened with weights_only (plus numpy scalars, for the originals); a file that needs more is
refused unless the caller trusts it (`--trust_checkpoint`), because unpickling it would run code from the file.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from archs.weights import UnreadableFileError, load_torch_file, strip_module_prefix
from ops.engine.distributed import unwrap as _unwrap

# The framework's checkpoint format, whatever the method (files written before this name say "uniadafocus-ckpt-1";
# their layout is the same and they load unchanged).
FORMAT = "videorecognition-ckpt-1"
HEAD_WORDS = ("fc", "projection", "classifier", "head")
TRUST_FLAG = "--trust_checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that cannot be opened: damaged, not a checkpoint, or refused (`unsafe`) as needing code to load."""

    def __init__(self, message: str, *, unsafe: bool = False):
        super().__init__(message)
        self.unsafe = unsafe


def jsonable(value):
    """Returns `value` converted to plain python types (dict/list/str/int/float/bool/None) for JSON and safe pickles."""
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (np.generic, torch.Tensor)) and getattr(value, "ndim", 0) == 0:
        return value.item()
    return str(value)


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); the previous file at the path is intact."""


def check_writable(folder: str, flag: str) -> None:
    """Creates `folder` and writes (then removes) a small file in it; raises CheckpointSaveError naming `flag` and
    the reason when that fails, so that a run is refused before its first step rather than at its first save."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_check_") as f:
            f.write(b"0")
            f.flush()
    except OSError as exc:
        raise CheckpointSaveError(f"{flag}: cannot write into {folder}: {exc.strerror or exc}") from exc


class RNGWorldSizeError(ValueError):
    """The checkpoint's RNG states were saved by another number of processes than this run has."""


def get_rng_state(generator: torch.Generator | None = None) -> dict:
    """Returns this process's RNG states: python, numpy, torch (CPU), its own CUDA device's (when CUDA is initialised)
    and `generator`'s, all weights_only-safe."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": (version, list(keys), gauss),
        "numpy": (name, torch.from_numpy(np_keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device: the one this process runs on
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def rank_states(states: list[dict]) -> dict:
    """Returns the checkpoint's 'rng' entry for the per-rank states (rank order) of every process of a run."""
    return {"world_size": len(states), "ranks": list(states)}


def restore_rng(
    ckpt: Mapping, generator: torch.Generator | None = None, *, rank: int = 0, world_size: int = 1
) -> bool:
    """Restores this rank's RNG states saved by `save_checkpoint` (from a checkpoint dict or its 'rng'); returns
    False if none were saved. Raises RNGWorldSizeError when they were saved by another number of processes (each
    rank's states exist only for the world size that made them)."""
    state = ckpt["rng"] if "rng" in ckpt else ckpt
    if not state or ("torch" not in state and "ranks" not in state):
        return False
    states = state["ranks"] if "ranks" in state else [state]  # files of one process (or rank 0 only)
    if len(states) != world_size:
        raise RNGWorldSizeError(
            f"RNG states saved by {len(states)} process(es), this run has {world_size}: each process is "
            "reseeded instead, so the resumed run does not replay the original draws"
        )
    state = states[rank]
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if isinstance(cuda, torch.Tensor) and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)  # the current device, set by ops.engine.distributed.init
    elif isinstance(cuda, list) and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # older files: every device's state, saved by one process
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])
    return True


def _atomic_write(path: str, write) -> None:
    # Write next to the target, fsync, then rename: a crash leaves the old file or the new one, never half of one.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth.tar", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_checkpoint(
    run_dir: str,
    model: nn.Module,
    *,
    epoch: int,
    best_metric: float | None = None,
    is_best: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    scaler=None,
    args: argparse.Namespace | Mapping | None = None,
    generator: torch.Generator | None = None,
    extra: Mapping | None = None,
    filename: str = "ckpt.pth.tar",
    rng: Mapping | None = None,
) -> str:
    """Writes `{run_dir}/{filename}` atomically (and `ckpt.best.pth.tar` when is_best); returns the path.

    `epoch` is the number of finished epochs (the epoch to resume at), as the originals stored it. `rng`: every
    rank's RNG states (`rank_states`, gathered by the caller); default: this process's alone."""
    os.makedirs(run_dir, exist_ok=True)
    state = {
        "format": FORMAT,
        "epoch": int(epoch),
        "state_dict": strip_module_prefix(_unwrap(model).state_dict()),
        "best_metric": None if best_metric is None else float(best_metric),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "args": jsonable(args) if args is not None else None,
        "rng": dict(rng) if rng is not None else rank_states([get_rng_state(generator)]),
    }
    if extra:
        state.update(extra)
    path = os.path.join(run_dir, filename)
    target = path
    # Serialised in memory first: torch.save reports a failed file write (disk full) as a bare RuntimeError of its
    # zip writer; the file's own write raises the OSError that says why.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        _atomic_write(path, lambda f: f.write(buffer.getbuffer()))
        if is_best:
            target = path.replace(".pth.tar", ".best.pth.tar")

            def copy(f):
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, f)

            _atomic_write(target, copy)
    except OSError as exc:
        raise CheckpointSaveError(
            f"saving {target} failed ({exc.strerror or exc}); the file there before (if any) is intact"
        ) from exc
    return path


def _numpy_safe_globals() -> list:
    # Original checkpoints may hold numpy scalars (AN's best mAP); allow exactly those types, not arbitrary pickles.
    types = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    return types + [scalar, (scalar, "numpy.core.multiarray.scalar")]


def read_checkpoint(
    path: str, map_location="cpu", *, trust: bool = False, convert: Callable[[dict], dict] | None = None
) -> dict:
    """Returns the raw checkpoint dict (a bare state_dict is wrapped as {'state_dict': ...}; a `model_state` entry,
    as in PySlowFast / TAdaConv files, is also offered as 'state_dict').

    The file is read with weights_only (numpy scalars allowed); trust=True reads the full pickle, which runs code
    from the file. `convert` (a model's `convert_checkpoint`) turns a dict of another layout into ours first.
    Raises CheckpointError naming the file when it is refused, damaged or not a checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = load_torch_file(
            path,
            trust=trust,
            safe_globals=_numpy_safe_globals(),
            trust_hint=f"Pass {TRUST_FLAG} to load it anyway, only if you trust the file.",
            map_location=map_location,
        )
    except UnreadableFileError as exc:
        raise CheckpointError(f"checkpoint {exc}", unsafe=exc.unsafe) from exc
    if convert is not None and isinstance(ckpt, Mapping):
        try:
            ckpt = convert(dict(ckpt))
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
    if (
        isinstance(ckpt, Mapping)
        and "state_dict" not in ckpt
        and ckpt
        and all(isinstance(v, torch.Tensor) for v in ckpt.values())
    ):
        ckpt = {"state_dict": dict(ckpt)}
    if (
        isinstance(ckpt, Mapping)
        and "state_dict" not in ckpt
        and isinstance(ckpt.get("model_state"), Mapping)
    ):
        ckpt = {**ckpt, "state_dict": ckpt["model_state"]}  # PySlowFast-style files (TAdaConv's `.pyth`)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise CheckpointError(f'{path}: not a checkpoint (no "state_dict" entry)')
    return dict(ckpt)


def _optimizer_compatible(optimizer: torch.optim.Optimizer, saved: Mapping) -> str | None:
    """Returns None when `saved` fits the optimizer's param-group layout, else the reason it does not."""
    groups = saved.get("param_groups", [])
    if len(groups) != len(optimizer.param_groups):
        return f"{len(groups)} param groups saved, {len(optimizer.param_groups)} expected"
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    for a, b in zip(optimizer.param_groups, groups):
        if len(a["params"]) != len(b["params"]):
            return f'group "{a.get("name", "?")}" has {len(a["params"])} params, saved {len(b["params"])}'
    by_id = dict(zip(ids, params))
    for i, st in saved.get("state", {}).items():
        buf = st.get("momentum_buffer") if isinstance(st, Mapping) else None
        if buf is not None and i in by_id and buf.shape != by_id[i].shape:
            return f"momentum buffer {tuple(buf.shape)} does not fit parameter {tuple(by_id[i].shape)}"
    return None


def with_model_prefix(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Returns `state` with the model's `original_prefix` (e.g. 'net.') added when none of its keys carries it:
    the original implementation's files name the network's modules without the wrapper our model adds."""
    prefix = getattr(model, "original_prefix", "")
    if prefix and state and not any(k.startswith(prefix) for k in state):
        return {prefix + k: v for k, v in state.items()}
    return dict(state)


def load_checkpoint(
    path: str,
    model: nn.Module | None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler=None,
    strict: bool = True,
    map_location="cpu",
    *,
    trust: bool = False,
) -> dict:
    """Loads model (+ optimizer, scaler when given and compatible) from our or an original checkpoint.

    Returns the checkpoint dict with normalised keys: 'epoch' (int, 0 if absent), 'best_metric' (float or None,
    from best_metric / best_prec1 / best_acc1), 'args', 'rng', 'optimizer_loaded' (bool). `trust`: see
    read_checkpoint."""
    convert = getattr(_unwrap(model), "convert_checkpoint", None) if model is not None else None
    ckpt = read_checkpoint(path, map_location, trust=trust, convert=convert)
    state = strip_module_prefix(ckpt["state_dict"])
    if model is not None:
        target = _unwrap(model)
        state = with_model_prefix(state, target)
        own = target.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"{path} does not match the model: {len(missing)} missing keys {missing[:10]}, "
                f"{len(unexpected)} unexpected keys {unexpected[:10]}"
            )
        target.load_state_dict(state, strict=strict)
    ckpt["optimizer_loaded"] = False
    saved_opt = ckpt.get("optimizer")
    if optimizer is not None and saved_opt:
        reason = _optimizer_compatible(optimizer, saved_opt)
        if reason is None:
            optimizer.load_state_dict(saved_opt)
            ckpt["optimizer_loaded"] = True
        else:
            warnings.warn(
                f"{path}: optimizer state skipped ({reason}); momentum restarts from zero", stacklevel=2
            )
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    best = next(
        (ckpt[k] for k in ("best_metric", "best_prec1", "best_acc1") if ckpt.get(k) is not None), None
    )
    ckpt["best_metric"] = None if best is None else float(best)
    ckpt["epoch"] = int(ckpt.get("epoch") or 0)
    ckpt.setdefault("args", None)
    ckpt.setdefault("rng", None)
    return ckpt


def tune_from(
    path: str, model: nn.Module, verbose: bool = True, *, trust: bool = False
) -> dict[str, list[str]]:
    """Initialises `model` from a checkpoint, dropping head weights whose shape differs (another class count).

    Returns {'loaded', 'dropped', 'missing', 'unexpected'} key lists; a shape mismatch outside the heads
    (keys containing fc / projection / classifier / head) means another architecture and raises ValueError.
    `trust`: see read_checkpoint."""
    target = _unwrap(model)
    own = target.state_dict()
    convert = getattr(target, "convert_checkpoint", None)
    state = with_model_prefix(
        strip_module_prefix(read_checkpoint(path, trust=trust, convert=convert)["state_dict"]), target
    )
    # TSM's shift wrapper renames conv weights to `.net.`; accept files saved with or without it (as TSM did).
    for k in list(state):
        if k not in own and k.replace(".net", "") in own:
            state[k.replace(".net", "")] = state.pop(k)
    for k in own:
        if k not in state and k.replace(".net", "") in state:
            state[k] = state.pop(k.replace(".net", ""))
    dropped, wrong = [], []
    for k in [k for k in state if k in own and state[k].shape != own[k].shape]:
        (dropped if any(w in k.lower() for w in HEAD_WORDS) else wrong).append(
            f"{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}"
        )
        state.pop(k)
    if wrong:
        raise ValueError(
            f"{path}: shape mismatch outside the classifier heads (another architecture?): {wrong}"
        )
    unexpected = sorted(k for k in state if k not in own)
    for k in unexpected:
        state.pop(k)
    target.load_state_dict(state, strict=False)
    missing = sorted(k for k in own if k not in state)
    report = {"loaded": sorted(state), "dropped": dropped, "missing": missing, "unexpected": unexpected}
    if verbose:
        print(f"=> fine-tuning from {path}: {len(state)} tensors loaded")
        for name in ("dropped", "missing", "unexpected"):
            if report[name]:
                print(f"   {name} ({len(report[name])}): " + ", ".join(report[name]))
    return report
