"""The command-line flags of distillation (ResKD), a group of the shared parser."""

from __future__ import annotations

import argparse


def add_arguments(g: argparse._ArgumentGroup) -> None:
    """Adds the distillation flags (--distill TEACHER_CKPT and the KD term's)."""
    g.add_argument(
        "--distill",
        metavar="TEACHER_CKPT",
        help="train the model as a student under this frozen teacher (ours, an mmaction/ResKD recognizer or a "
        "TSM checkpoint; its network is read from the file); the saved checkpoint holds the student only",
    )
    g.add_argument(
        "--kd_loss",
        choices=("mse", "kl"),
        help="mse: feature-map MSE after bilinear up-sampling to the teacher's grid (default, ResKD's CNNs); kl: "
        "per-position logit KL (ResKD's Swin head; the classifiers applied at every position)",
    )
    g.add_argument("--kd_weight", type=float, help="weight of the KD term (ResKD: 100 for mse, 200 for kl)")
    g.add_argument("--kd_T", type=float, help="--kd_loss kl: temperature (2)")
    g.add_argument(
        "--teacher_bn",
        choices=("train", "eval"),
        help="the teacher's BatchNorm: train (default, as ResKD: running statistics move, weights frozen) or "
        "eval (frozen statistics)",
    )
