"""Staged training in the one training loop: per stage, which parameters learn, which modules stay in eval mode,
where the patches come from and whether the model takes its own training step (PPO).

A stage names submodules by their path in the model; `apply_trainable` freezes everything else (so the optimizer
and DDP see only the stage's parameters and every one of them gets a gradient), `apply_modes` puts the listed
modules in eval mode after `model.train()`. The AdaFocus V1 table (`adafocus_v1_stage`) is the released
ActivityNet code's `train_mode` and optimizer of each `train_stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

PATCH_SOURCES = ("frames", "random", "sampled", "greedy")


@dataclass(frozen=True)
class Stage:
    """One training stage.

    trains: submodule paths whose parameters learn (`frozen` paths inside them excepted); eval_modules: submodules
    kept in eval mode while the model trains; patches: 'frames' (no patches: full frames), 'random', 'sampled'
    (policy samples) or 'greedy' (policy argmax / mean); own_step: the model's own training step (PPO) replaces
    forward + loss + backward."""

    number: int
    description: str
    trains: tuple[str, ...]
    frozen: tuple[str, ...] = ()
    eval_modules: tuple[str, ...] = ()
    patches: str = "frames"
    own_step: bool = False

    def __post_init__(self) -> None:
        if self.patches not in PATCH_SOURCES:
            raise ValueError(f"patches must be one of {PATCH_SOURCES}, got {self.patches!r}")


def apply_trainable(model: nn.Module, stage: Stage) -> list[str]:
    """Sets requires_grad: True for the stage's `trains` paths (minus `frozen`), False elsewhere; returns the
    names of the trainable parameters."""
    model.requires_grad_(False)
    for path in stage.trains:
        model.get_submodule(path).requires_grad_(True)
    for path in stage.frozen:
        model.get_submodule(path).requires_grad_(False)
    return [name for name, p in model.named_parameters() if p.requires_grad]


def apply_modes(model: nn.Module, stage: Stage) -> None:
    """Puts the stage's `eval_modules` in eval mode (call after `model.train()`)."""
    for path in stage.eval_modules:
        model.get_submodule(path).eval()


def adafocus_v1_stage(number: int, pretrain_net: str = "glancer", finetune_focus: bool = False) -> Stage:
    """Returns AdaFocus V1's stage `number` (0-3) for a model with `glancer.net`, `focuser.net` (+ `focuser.policy`,
    a PPOAgent) and `classifier`.

    0: pretrain the glance (`pretrain_net='glancer'`) or focus network with its own classifier on full frames;
    1: focus net + GRU classifier on random patches, glance net frozen (eval); 2: the policy alone by PPO, every
    other module in eval mode (the released code; single process); 3: the GRU classifier on the greedy policy's
    patches, glance/focus/policy in eval mode (the released code; `finetune_focus`: the focus net learns too,
    the paper's stage 3)."""
    if number == 0:
        if pretrain_net not in ("glancer", "focuser"):
            raise ValueError(f"pretrain_net must be 'glancer' or 'focuser', got {pretrain_net!r}")
        net = f"{pretrain_net}.net"
        return Stage(0, f"pretrain the {pretrain_net} on full frames", (net,))
    if number == 1:
        return Stage(
            1,
            "focus net + GRU classifier on random patches",
            ("focuser.net", "classifier"),
            frozen=("focuser.net.fc",),
            eval_modules=("glancer",),
            patches="random",
        )
    if number == 2:
        return Stage(
            2,
            "policy by PPO (single process)",
            ("focuser.policy.policy",),
            eval_modules=("glancer", "focuser.net", "classifier"),
            patches="sampled",
            own_step=True,
        )
    if number == 3:
        trains = ("focuser.net", "classifier") if finetune_focus else ("classifier",)
        eval_modules = ("glancer", "focuser.policy") + (() if finetune_focus else ("focuser.net",))
        return Stage(
            3,
            "GRU classifier"
            + (" and focus net" if finetune_focus else "")
            + " on the greedy policy's patches",
            trains,
            frozen=("focuser.net.fc",) if finetune_focus else (),
            eval_modules=eval_modules,
            patches="greedy",
        )
    raise ValueError(f"train_stage must be 0, 1, 2 or 3, got {number}")
