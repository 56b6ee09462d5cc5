"""The registry entry of AdaFocus V1: its flags (its own and the glance + focus flags it shares, GLANCE_FLAGS), the
stage rules of its command line, its run name, its `key=value` command-line form (models/adafocus_v1/cli.py) and
its training schedule (stages 0-3)."""

from __future__ import annotations

import argparse

from models.adafocus_v1.cli import translate_argv
from models.adafocus_v1.config import REWARDS, AdaFocusV1Config
from models.adafocus_v1.model import AdaFocusV1
from models.adafocus_v1.recipe import DATASETS, stage_recipe
from models.core.cli import GLANCE_FLAGS
from models.core.registry import Method

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
    if args.dataset not in DATASETS:
        raise ValueError(
            f"--model {NAME} runs on {', '.join(DATASETS)} (the ActivityNet code), not on {args.dataset}"
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
    for key, value in stage_recipe(stage, args.dataset).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.fc_lr is not None:
        if args.fc_lr <= 0 or args.lr is None or args.lr <= 0:
            raise ValueError(f"--fc_lr {args.fc_lr} and --lr {args.lr} must be > 0")
        args.fc_lr_ratio = args.fc_lr / args.lr


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
    flags=OWN_FLAGS + GLANCE_FLAGS,
    add_arguments=add_arguments,
    resolve_args=resolve_args,
    has_policy=True,
    run_name=run_name,
    translate_argv=translate_argv,
    schedule=SCHEDULE,
)
