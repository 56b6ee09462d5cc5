"""The registry entries of the baselines on full frames: TSN and TSM (a 2-D backbone on T frames, with or without
temporal shift) and X3D (a clip network): their config classes, backbone option and run names (the TSM code's)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from archs.names import canonical_arch, is_clip_arch
from models.baselines.model import TSNBaseline, X3DBaseline
from models.core.cli import tsm_run_name
from models.core.config import ModelConfig, require_positive
from models.core.registry import Method


@dataclass
class BaselineConfig(ModelConfig):
    """ModelConfig of a baseline: one backbone (`focus_arch`, a clip net or not as `CLIP` says; the preset's, or
    FALLBACK_ARCH when the preset's is of the other kind) on `num_segments` frames."""

    CLIP: ClassVar[bool] = False
    FALLBACK_ARCH: ClassVar[str] = "resnet50"

    def finalize(self, defaulted: set[str]) -> None:
        clip = self.CLIP
        if "focus_arch" in defaulted and is_clip_arch(self.focus_arch) != clip:
            self.focus_arch = self.FALLBACK_ARCH  # the preset's backbone is of the other kind
        if is_clip_arch(self.focus_arch) != clip or (clip and not self.focus_arch.startswith("x3d")):
            raise ValueError(
                f"backbone {self.focus_arch} does not fit --model {self.model} (--arch / --focus_arch)"
            )
        require_positive(self, ("num_segments", "input_size"))
        self.shift = self.model == "tsm"


@dataclass
class TSNConfig(BaselineConfig):
    DEFAULTS: ClassVar[dict] = {"num_segments": 8}


@dataclass
class X3DConfig(BaselineConfig):
    CLIP: ClassVar[bool] = True
    FALLBACK_ARCH: ClassVar[str] = "x3d_m"
    DEFAULTS: ClassVar[dict] = {"num_segments": 16}


def _resolve_args(args: argparse.Namespace) -> None:
    if args.arch is not None:
        try:
            args.focus_arch = canonical_arch(args.arch)
        except ValueError as exc:
            raise ValueError(f"argument --arch: {exc}") from None
    if args.shift is not None:
        raise ValueError(
            "--shift/--no_shift: choose the baseline instead (--model tsm shifts, --model tsn does not)"
        )


def _run_name(args: argparse.Namespace) -> str:
    return tsm_run_name(args, args.model.upper(), args.focus_arch, args.num_segments)


def _baseline(name: str, config_cls: type[BaselineConfig], description: str) -> Method:
    clip = config_cls.CLIP
    return Method(
        name,
        X3DBaseline if clip else TSNBaseline,
        description,
        config_cls=config_cls,
        flags=("multilabel_ce",) + (() if clip else ("consensus_first",)),
        resolve_args=_resolve_args,
        run_name=_run_name,
    )


TSN_METHOD = _baseline("tsn", TSNConfig, "TSN: a 2-D backbone on T frames, logits averaged")
TSM_METHOD = _baseline("tsm", TSNConfig, "TSM: TSN with temporal shift (blockres, 1/8 each way)")
X3D_METHOD = _baseline("x3d", X3DConfig, "X3D: a 3-D network on one T-frame clip")
