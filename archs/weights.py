"""Loading pretrained backbone weights (ImageNet MobileNetV2 / ResNet, PySlowFast X3D) with readable errors."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

_REPO_ROOT = Path(__file__).resolve().parents[1]

# name -> (path relative to the repo root, where the file comes from)
PRETRAINED: dict[str, tuple[str, str]] = {
    "mobilenetv2": (
        "ckpt/mobilenetv2_1.0-f2a8633.pth.tar",
        "the ImageNet MobileNetV2 of https://github.com/tonylins/pytorch-mobilenet-v2 (README 'pretrained model' "
        "link; the Uni-AdaFocus repository also ships it as ckpt/mobilenetv2_1.0-f2a8633.pth.tar)",
    ),
    "mobilenetv2_torchvision": (
        "ckpt/mobilenet_v2-b0353104.pth",
        "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth (torchvision MobileNet_V2_Weights."
        "IMAGENET1K_V1, the ImageNet MobileNetV2 AdaFocus V1 starts its glance network from)",
    ),
    "resnet18": ("ckpt/resnet18-f37072fd.pth", "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    "resnet34": ("ckpt/resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
    "resnet50": (
        "ckpt/resnet50-0676ba61.pth",
        "https://download.pytorch.org/models/resnet50-0676ba61.pth (torchvision ResNet50_Weights.IMAGENET1K_V1)",
    ),
    "resnet101": (
        "ckpt/resnet101-63fe2227.pth",
        "https://download.pytorch.org/models/resnet101-63fe2227.pth (torchvision ResNet101_Weights.IMAGENET1K_V1)",
    ),
    "resnet152": (
        "ckpt/resnet152-394f9c45.pth",
        "https://download.pytorch.org/models/resnet152-394f9c45.pth (torchvision ResNet152_Weights.IMAGENET1K_V1)",
    ),
    "x3d_s": (
        "archs/X3D_ckpt/x3d_s.pyth",
        "the PySlowFast model zoo, https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_s.pyth (also in the "
        "Uni-AdaFocus-X3D README's Google Drive folder)",
    ),
    "x3d_m": ("archs/X3D_ckpt/x3d_m.pyth", "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_m.pyth"),
    "x3d_l": (
        "archs/X3D_ckpt/x3d_l.pyth",
        "the PySlowFast model zoo, https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_l.pyth (also in the "
        "Uni-AdaFocus-X3D README's Google Drive folder)",
    ),
    "mobilenetv2_3d": (
        "ckpt/kinetics_mobilenetv2_1.0x_RGB_16_best.pth",
        "the Efficient-3DCNNs README's Google Drive folder (Kinetics-600 3D-MobileNetV2 1.0x; "
        "https://drive.google.com/open?id=1eggpkmy_zjb62Xra6kQviLa67vzP_FR8)",
    ),
    "tadaconvnextv2_t": (
        "ckpt/convnext_tiny_1k_224_ema.pth",
        "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224_ema.pth (the ImageNet-1k ConvNeXt-T that "
        "TAdaConv initialises TAdaConvNeXtV2-T from, converted on loading)",
    ),
    "tadaconvnextv2_s": (
        "ckpt/convnext_small_1k_224_ema.pth",
        "https://dl.fbaipublicfiles.com/convnext/convnext_small_1k_224_ema.pth (the ImageNet-1k ConvNeXt-S that "
        "TAdaConv initialises TAdaConvNeXtV2-S from, converted on loading)",
    ),
    "tadaconvnextv2_b": (
        "ckpt/convnext_base_1k_224_ema.pth",
        "https://dl.fbaipublicfiles.com/convnext/convnext_base_1k_224_ema.pth (the ImageNet-1k ConvNeXt-B that "
        "TAdaConv initialises TAdaConvNeXtV2-B from, converted on loading)",
    ),
    "tada2d_r50": (
        "ckpt/resnet50-0676ba61.pth",
        "https://download.pytorch.org/models/resnet50-0676ba61.pth (the ImageNet ResNet-50 that TAdaConv "
        "initialises TAda2D from, factorised into TAdaConv shapes on loading)",
    ),
}


class WeightsError(RuntimeError):
    """A weights file is missing or does not fit the module."""


class UnreadableFileError(ValueError):
    """A file that torch.load cannot open safely; `unsafe` is True when it was refused because unpickling it
    needs more than tensors and plain python types (building those objects runs code from the file)."""

    def __init__(self, message: str, *, unsafe: bool):
        super().__init__(message)
        self.unsafe = unsafe


class LoadResult(NamedTuple):
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]


def pretrained_path(name: str, root: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Returns the conventional local path of backbone `name`'s pretrained file under `root` (default: the
    environment variable ADAFOCUS_WEIGHTS, else the repo root), e.g. `<root>/archs/X3D_ckpt/x3d_s.pyth`.

    Raises WeightsError saying where to download the file and where to put it when it is missing.
    """
    if name not in PRETRAINED:
        raise WeightsError(
            f"no pretrained weights known for {name!r}; known: {', '.join(sorted(PRETRAINED))}"
        )
    rel, source = PRETRAINED[name]
    if root is None:
        root = os.environ.get("ADAFOCUS_WEIGHTS") or _REPO_ROOT
    path = Path(root)
    path = path / rel
    if must_exist and not path.is_file():
        raise WeightsError(
            f"pretrained weights for {name!r} not found at {path}.\nDownload them from {source}\nand save the file as {path}."
        )
    return path


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


# What torch's weights_only unpickler says when a file names a function or class outside its allowlist (as
# opposed to a damaged or foreign file: unknown opcodes, truncated data, no zip directory).
_REFUSED = re.compile(r"GLOBAL|allowlisted|call reduce for")


def _unpickler_reason(exc: BaseException) -> str:
    # torch re-raises the unpickler's error inside a long generic message; its first line is the useful part.
    inner = exc.__context__ if isinstance(exc.__context__, pickle.UnpicklingError) else exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0].split(" Please use ")[0] if lines else type(exc).__name__


def load_torch_file(
    path: str | os.PathLike,
    *,
    trust: bool = False,
    safe_globals: Sequence = (),
    trust_hint: str = "",
    map_location="cpu",
) -> object:
    """Returns the object stored in a `torch.save` file, read with weights_only=True: tensors, containers, plain
    python types and the types in `safe_globals` only, so nothing in the file runs. trust=True reads the full pickle
    instead, which runs whatever code the file holds.

    Raises UnreadableFileError naming the file: unsafe=True (message ending with `trust_hint`) when the file needs
    other objects; unsafe=False when it is damaged (e.g. truncated) or was not written by torch.save."""
    try:
        if trust:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        if exc.filename is not None:
            raise  # missing or unreadable file: the OS error names it
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc  # torch's zip reader on a cut file
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if not trust and _REFUSED.search(reason):
            raise UnreadableFileError(
                f"{path}: refused to open: it holds more than tensors and plain python types ({reason}); "
                f"building those objects would run code from the file. {trust_hint}".rstrip(),
                unsafe=True,
            ) from exc
        raise _damaged(path, reason) from exc
    except Exception as exc:  # damaged or foreign files: torch raises RuntimeError, EOFError, KeyError, ...
        first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else ""
        raise _damaged(path, f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from exc


def _damaged(path: str | os.PathLike, reason: str) -> UnreadableFileError:
    return UnreadableFileError(
        f"{path}: not a readable torch.save file (damaged, e.g. truncated, or of another kind): {reason}",
        unsafe=False,
    )


def extract_state_dict(obj: object, source: str = "<object>") -> dict[str, torch.Tensor]:
    """Returns the flat state_dict inside a checkpoint object: a plain state_dict, or one under `state_dict`
    (Uni-AdaFocus / TSM checkpoints), `model_state` (PySlowFast `.pyth`) or `model`; a leading `module.` (DDP) is
    stripped from every key."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: expected a state_dict or a checkpoint dict, got {type(obj).__name__}")
    for wrapper in ("state_dict", "model_state", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            obj = inner
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor: not a state_dict"
            )
        out[key] = value
    return strip_module_prefix(out)


_WEIGHTS_HINT = (
    "If you trust the file, save its tensors as a plain state_dict (torch.save(state_dict, new_file)) and use "
    "that file, or call archs.load_weights(..., weights_only=False)"
)


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns the state_dict with a leading `module.` (DDP / DataParallel) removed from every key."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def read_state_dict(path_or_url: str | os.PathLike, *, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Returns the state_dict stored in a file (or at a URL the caller gave; downloaded through torch.hub's cache)."""
    source = str(path_or_url)
    if _is_url(source):
        obj = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=weights_only)
    else:
        if not Path(source).is_file():
            raise WeightsError(f"weights file not found: {source}")
        try:
            obj = load_torch_file(source, trust=not weights_only, trust_hint=_WEIGHTS_HINT)
        except UnreadableFileError as exc:
            raise WeightsError(f"weights file {exc}") from exc
    return extract_state_dict(obj, source)


def _remap_shift_keys(
    sd: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    # ImageNet files have `layer1.0.conv1.weight`; a TSM-wrapped net expects `layer1.0.conv1.net.weight`.
    out = dict(sd)
    for key in expected:
        if ".net." in key and key not in out:
            plain = key.replace(".net.", ".", 1)
            if plain in out and plain not in expected:
                out[key] = out.pop(plain)
    return out


def _listing(title: str, keys: list[str], limit: int = 20) -> str:
    more = f"\n    ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return f"  {title} ({len(keys)}):\n" + "\n".join(f"    {k}" for k in keys[:limit]) + more


def load_weights(
    module: nn.Module,
    path_or_url: str | os.PathLike | Mapping,
    *,
    strict: bool = True,
    prefix: str | None = None,
    prefix_map: Mapping[str, str] | None = None,
    weights_only: bool = True,
) -> LoadResult:
    """Loads weights into `module` and returns LoadResult(missing, unexpected, mismatched) key lists.

    `path_or_url`: a file (plain state_dict, or a dict holding it under `state_dict` / `model_state` / `model`), an
    http(s) URL (only downloaded because the caller passed one), or an in-memory state_dict.
    `prefix`: keep only checkpoint keys starting with it and strip it (e.g. 'global_CNN.' of a full model checkpoint).
    `prefix_map`: rename checkpoint key prefixes {old: new} after that. Plain conv keys are matched to TSM-wrapped
    ones (`conv1.weight` -> `conv1.net.weight`) automatically.
    strict=True: any missing / unexpected key or shape mismatch raises WeightsError naming the file and the keys.
    strict=False: matching entries are loaded; the rest is only reported in the result.
    """
    source = "<state_dict>" if isinstance(path_or_url, Mapping) else str(path_or_url)
    if isinstance(path_or_url, Mapping):
        sd = extract_state_dict(path_or_url, source)
    else:
        sd = read_state_dict(path_or_url, weights_only=weights_only)
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise WeightsError(f"{source}: no key starts with prefix {prefix!r}")
    for old, new in (prefix_map or {}).items():
        sd = {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in sd.items()}
    expected = module.state_dict()
    sd = _remap_shift_keys(sd, expected)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs module {tuple(expected[k].shape)}"
        for k, v in sd.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        parts = [f"load_weights: {source} does not fit {type(module).__name__}:"]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if keys:
                parts.append(_listing(title, keys))
        raise WeightsError("\n".join(parts))
    bad = {m.split(":", 1)[0] for m in mismatched}
    usable = {k: v for k, v in sd.items() if k in expected and k not in bad}
    module.load_state_dict(usable, strict=False)
    return LoadResult(missing, unexpected, mismatched)
