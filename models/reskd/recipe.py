"""ResKD's recipe, the defaults of a `--distill` run of one of its students (`--model tsn` / `--model tsm`), read
from CVMI-Lab/ResKD:
- `configs/_base_/schedules/sgd_rkd_50e.py`: SGD lr 0.01 ("for 8 gpus", 8 videos each: batch 64, `videos_per_gpu=8`
  in every config), momentum 0.9, weight decay 1e-4, `constructor='RKDOptimizerConstructor'` (`--paramwise rkd`),
  `grad_clip=dict(max_norm=20, norm_type=2)`, `lr_config=dict(policy='CosineAnnealing', min_lr=0)` (mmcv: per
  epoch, no warm-up), `total_epochs = 50`;
- `configs/_base_/models/rkd_r152_r50.py`, `rkd_r50_r50.py`, `rkd_tsm_tsm.py`: RKD2DHead (the average of the
  pooled features over the frames, then dropout and fc: `--consensus_first`) with `dropout_ratio=0.5`,
  `w_loss_kd=100.0` (the default of `--kd_weight`), `low_img_res` 112 (the RKD default: `--student_size 112`);
  no fp16 hook (`configs/_base_/default_runtime.py`): float32;
- per dataset, `configs/myconfig/rkd/`: `rkd_r152_1x1x16_200e_actnet.py` / `rkd_r50_1x1x16_200e_actnet.py` and
  `rkd_r152_1x1x16_200e_fcvid.py`: 16 segments, `total_epochs = 200`, `multi_class=True` (the soft multi-hot CE:
  `--multilabel_ce sum`); `rkd_r152_1x1x8_100e_minik.py`, `rkd_r50_1x1x8_100e_minik.py` and
  `rkd_tsm_1x1x8_100e_sthv2.py`: 8 segments, `total_epochs = 100`; every one `evaluation = dict(interval=2)`.
Other students (any model can be distilled here) keep their method's recipe.
"""

from __future__ import annotations

import argparse

STUDENTS = ("tsn", "tsm")  # the students of ResKD's configs (RKD2DHead on ResNet / ResNetTSM)
RECIPE = {
    "*": dict(
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        nesterov=False,
        dampening=0.0,
        weight_decay=1e-4,
        paramwise="rkd",
        clip_gradient=20.0,
        lr_type="cos",
        lr_per_step=False,
        warmup_epochs=0.0,
        batch_size=64,
        epochs=50,
        eval_freq=2,
        amp="none",
        dropout=0.5,
        consensus_first=True,
        student_size=112,
    ),
    "actnet": dict(num_segments=16, epochs=200, multilabel_ce="sum"),
    "fcvid": dict(num_segments=16, epochs=200, multilabel_ce="sum"),
    "minik": dict(num_segments=8, epochs=100),
    "somethingv2": dict(num_segments=8, epochs=100),
}


def distill_recipe(args: argparse.Namespace) -> dict:
    """Returns ResKD's values for a run with `--distill` of one of its students (STUDENTS) on args.dataset, else
    {} (the method's recipe stands)."""
    if not getattr(args, "distill", None) or args.model not in STUDENTS:
        return {}
    return {**RECIPE["*"], **RECIPE.get(args.dataset, {})}
