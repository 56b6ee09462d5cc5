"""The registry entry of AdaFocus V1: its flags, their checks (the method's part of the one validation step), its
run name, its `key=value` command-line form (models/v1_cli.py) and its training schedule (stages 0-3)."""

from __future__ import annotations

import argparse

from models import presets
from models.adafocus_v1 import REWARDS, AdaFocusV1, AdaFocusV1Config
from models.config import require_positive
from models.registry import Method
from models.rl import grid_actions
from models.v1_cli import translate_argv

NAME = "adafocus_v1"
OWN_FLAGS = (
    "train_stage",
    "pretrain_net",
    "pretrained_glancer",
    "pretrained_focuser",
    "finetune_focus",
    "fc_lr",
    "gru_hidden_dim",
    "policy_hidden_dim",
    "action_dim",
    "continuous",
    "action_std",
    "gamma",
    "policy_lr",
    "reward",
)
# Uni-AdaFocus flags that mean the same here (defined by the uniadafocus entry's arguments).
SHARED_FLAGS = (
    "patch_size",
    "glance_size",
    "glance_arch",
    "glance_output_stride",
    "glance_width_mult",
    "glance_last_channel",
    "glance_base_width",
)
# Stage -> flags that only that stage reads (given for another stage they would be ignored: refused).
STAGE_ONLY = {
    "pretrain_net": (0,),
    "pretrained_glancer": (1, 2, 3),
    "pretrained_focuser": (1, 2, 3),
    "finetune_focus": (3,),
}
SCHEDULE = (
    ("--train_stage", "0", "--pretrain_net", "glancer"),
    ("--train_stage", "0", "--pretrain_net", "focuser"),
    ("--train_stage", "1", "--pretrained_glancer", "{0}", "--pretrained_focuser", "{1}"),
    ("--train_stage", "2", "--tune_from", "{2}"),
    ("--train_stage", "3", "--tune_from", "{3}"),
)


def add_arguments(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a(
        "--train_stage",
        type=int,
        choices=(0, 1, 2, 3),
        help="0: pretrain the glance or focus net on full frames; 1: focus net + GRU classifier on random patches; "
        "2: the policy by PPO (single process); 3: the GRU classifier on the policy's patches (required by main.py; "
        "evaluation: 3)",
    )
    a("--pretrain_net", choices=("glancer", "focuser"), help="stage 0: the network to pretrain (glancer)")
    a(
        "--pretrained_glancer",
        help="checkpoint whose glance network initialises this run (the original's or ours)",
    )
    a(
        "--pretrained_focuser",
        help="checkpoint whose focus network initialises this run (the original's or ours)",
    )
    a(
        "--finetune_focus",
        action="store_const",
        const=True,
        help="stage 3: fine-tune the focus net too (the paper); default: the GRU classifier alone (the code)",
    )
    a("--fc_lr", type=float, help="learning rate of the GRU classifier (stage 1: 0.05, stage 3: 0.005)")
    a("--gru_hidden_dim", type=int, help="GRU classifier width (V1 hidden_dim, 1024)")
    a("--policy_hidden_dim", type=int, help="policy encoder and GRU width (V1 hidden_state_dim, 1024)")
    a("--action_dim", type=int, help="patch positions of the policy's grid, a square (49 = 7 x 7)")
    a(
        "--continuous",
        action="store_const",
        const=True,
        help="the Something-Something code's Gaussian policy (BatchNorm encoder) instead of the grid",
    )
    a("--action_std", type=float, help="standard deviation of the Gaussian policy (0.25)")
    a("--gamma", type=float, help="PPO discount (0.7)")
    a("--policy_lr", type=float, help="PPO Adam learning rate, constant (3e-4)")
    a("--reward", choices=REWARDS, help="random: confidence gain over a random patch (default); prev; conf")


def resolve_args(args: argparse.Namespace) -> None:
    """The stage (required for training), its README values for unset flags, the classifier's lr ratio."""
    datasets = presets.method_datasets(NAME)
    if datasets is not None and args.dataset not in datasets:
        raise ValueError(
            f"--model {NAME} runs on {', '.join(datasets)} (the ActivityNet code), not on {args.dataset}"
        )
    training = args.script == "main" and not args.evaluate
    if args.train_stage is None:
        if training:
            raise ValueError(
                f"--train_stage is required to train --model {NAME}: 0 (pretrain the glance or focus net), "
                "1 (focus net + classifier on random patches), 2 (policy by PPO) or 3 (classifier)"
            )
        args.train_stage = 3
    stage = args.train_stage
    for key, stages in STAGE_ONLY.items():
        if getattr(args, key) is not None and stage not in stages:
            raise ValueError(
                f"--{key} is not used in --train_stage {stage} (only in {', '.join(map(str, stages))})"
            )
    for flag in ("shift", "arch"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} does not apply to --model {NAME}")
    for key, value in presets.stage_recipe(NAME, stage, args.dataset).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.fc_lr is not None:
        if args.fc_lr <= 0 or args.lr is None or args.lr <= 0:
            raise ValueError(f"--fc_lr {args.fc_lr} and --lr {args.lr} must be > 0")
        args.fc_lr_ratio = args.fc_lr / args.lr


def finalize(cfg: AdaFocusV1Config, defaulted: set[str]) -> None:
    """Checks the V1 fields (errors name the flag) and derives the classifier's lr ratio when not given."""
    if cfg.train_stage is None:
        cfg.train_stage = 3
    if cfg.train_stage not in (0, 1, 2, 3):
        raise ValueError(f"train_stage must be 0, 1, 2 or 3, got {cfg.train_stage}")
    require_positive(
        cfg,
        ("num_segments", "input_size", "patch_size", "glance_size", "gru_hidden_dim", "policy_hidden_dim"),
    )
    if cfg.patch_size > cfg.input_size:
        raise ValueError(f"patch_size {cfg.patch_size} exceeds input_size {cfg.input_size}")
    if not cfg.focus_arch.startswith("resnet"):
        raise ValueError(f"focus_arch {cfg.focus_arch}: AdaFocus V1's focus network is a ResNet")
    if presets.is_clip_arch(cfg.glance_arch):
        raise ValueError(f"glance_arch {cfg.glance_arch}: AdaFocus V1's glance network is a 2-D CNN")
    if cfg.glance_output_stride != 32 and not cfg.glance_arch.startswith("resnet"):
        raise ValueError(
            f"glance_output_stride {cfg.glance_output_stride}: only a ResNet glance has a dilated form"
        )
    if cfg.reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {cfg.reward!r}")
    if cfg.pretrain_net not in ("glancer", "focuser"):
        raise ValueError(f"pretrain_net must be glancer or focuser, got {cfg.pretrain_net!r}")
    if not cfg.continuous:
        grid_actions(cfg.action_dim)  # raises for a non-square action_dim
    if cfg.action_std <= 0 or cfg.policy_lr <= 0 or not 0 <= cfg.gamma <= 1:
        raise ValueError(
            f"action_std {cfg.action_std} and policy_lr {cfg.policy_lr} must be > 0, gamma {cfg.gamma} in [0, 1]"
        )
    if cfg.fc_lr_ratio is None:
        values = presets.METHOD_RECIPES[NAME]["stages"][cfg.train_stage]
        cfg.fc_lr_ratio = values["fc_lr"] / values["lr"] if "fc_lr" in values else 1.0
    cfg.shift = False


def run_name(args: argparse.Namespace) -> str:
    """`AdaFocusV1_{dataset}_stage{s}[_{net}]_p{P}_e{epochs}` (the original wrote to hydra's dated folders)."""
    net = f"_{args.pretrain_net}" if args.train_stage == 0 else ""
    return f"AdaFocusV1_{args.dataset}_stage{args.train_stage}{net}_p{args.patch_size}_e{args.epochs}"


METHOD = Method(
    NAME,
    AdaFocusV1,
    "AdaFocus V1: glance MobileNetV2, a PPO policy picks one patch per frame, focus ResNet-50, GRU classifier "
    "(16 exits); trained in stages 0-3 (--train_stage)",
    config_cls=AdaFocusV1Config,
    flags=OWN_FLAGS + SHARED_FLAGS,
    add_arguments=add_arguments,
    finalize=finalize,
    resolve_args=resolve_args,
    has_policy=True,
    run_name=run_name,
    translate_argv=translate_argv,
    schedule=SCHEDULE,
)
