"""The dataset -> preset table and the shared recipe fields: the only place that spells a preset default, a
dataset -> preset rule or a per-dataset recipe (backbone names: archs/names.py; a method's own recipe: its
package, e.g. models/adafocus_v1/recipe.py).

A preset is the published recipe of one Uni-AdaFocus sub-project, chosen by the dataset:
- 'an'  (actnet, fcvid, minik): MobileNetV2 glance + ResNet-50 focus, T_g 16, N 48, K 16, FrameExit classifier;
- 'tsm' (something, somethingv2, jester, ucf101, hmdb51, synthetic, custom): MobileNetV2-TSM + ResNet-50-TSM,
  T_g 8, N 36, K 12;
- 'x3d' (kinetics): X3D-S glance @160 + X3D-L focus, T_g 16, N 96, K 32.
Every method starts from these values (the baselines train with the same published recipes); a method with a
recipe of its own layers it on top (`recipe(preset, dataset, own)`). Values are the original READMEs' command
lines (not the original parsers' defaults, which no published number used). `recipe` gives every
preset-dependent value of the command line (model fields and training recipe); `ModelConfig` takes its model
fields from the same table.
"""

from __future__ import annotations

from collections.abc import Mapping

DATASET_PRESET = {
    "actnet": "an",
    "fcvid": "an",
    "minik": "an",
    "something": "tsm",
    "somethingv2": "tsm",
    "jester": "tsm",
    "ucf101": "tsm",
    "hmdb51": "tsm",
    "synthetic": "tsm",
    "kinetics": "x3d",
    # A dataset given by its files (--categories, --train_list, --val_list): the TSM recipe, the one published
    # for UCF101 / HMDB51-sized data; model flags (--num_glance_segments, --model tsn, ...) override it.
    "custom": "tsm",
}
PRESETS = ("an", "tsm", "x3d")

# Values shared by every preset unless the preset or the dataset says otherwise.
COMMON = dict(
    # model
    glance_arch="mobilenetv2",
    focus_arch="resnet50",
    num_glance_segments=8,
    num_input_focus_segments=36,
    num_focus_segments=12,
    input_size=224,
    patch_size=128,
    glance_size=None,  # None: the frame size (input_size)
    glance_output_stride=32,
    stn_hidden_dim=128,
    temporal_hidden_dim=64,
    dropout=0.5,
    fc_dropout=0.2,
    hidden_dim=1024,
    shift=False,
    shift_div=8,
    shift_place="blockres",
    consensus_type="avg",
    partial_bn=False,  # TSN partial BN (the original parser's default is on; every README passes --npb)
    temperature=1.0,
    norm_ratio=0.5,
    KL_ratio=0.0,
    mc_samples=128,
    global_lr_ratio=0.5,
    local_lr_ratio=1.0,
    stn_lr_ratio=0.2,
    temporal_lr_ratio=0.2,
    classifier_lr_ratio=20.0,
    pretrain="imagenet",
    glance_width_mult=1.0,
    glance_last_channel=None,  # None: the network's own (1280)
    glance_base_width=64,
    focus_width_mult=1.0,
    focus_base_width=64,
    multilabel_ce="first",  # multi-label targets: CE of the first label, as Uni-AdaFocus (ResKD: 'sum')
    consensus_first=False,  # TSN/TSM baselines: per-frame classifier, then the average, as the TSM code
    # training recipe
    workers=16,
    epochs=50,
    batch_size=64,
    lr=0.02,
    lr_type="cos",
    lr_steps=[50.0, 100.0],
    lr_per_step=False,  # the schedule steps per epoch (TAdaConv: per iteration)
    warmup_epochs=0.0,
    warmup_start_lr=0.0,
    optimizer="sgd",
    momentum=0.9,
    dampening=0.0,
    nesterov=False,
    weight_decay=5e-4,
    clip_gradient=20.0,
    amp="fp16",
    eval_freq=1,
    print_freq=20,
    randaugment="none",  # training augmentation beyond the model's crop and flip: none (TAdaConvNeXtV2: on)
    grayscale=0.0,
)

PRESET_VALUES: dict[str, dict] = {
    "an": dict(
        dropout=0.2,
        clip_gradient=None,
        num_glance_segments=16,
        num_input_focus_segments=48,
        num_focus_segments=16,
        norm_ratio=1.0,
    ),
    "tsm": dict(shift=True),
    "x3d": dict(
        workers=24,
        lr=0.005,
        weight_decay=5e-5,
        glance_arch="x3d_s",
        focus_arch="x3d_l",
        num_glance_segments=16,
        num_input_focus_segments=96,
        num_focus_segments=32,
        glance_size=160,
        stn_lr_ratio=0.4,
        temporal_lr_ratio=0.4,
    ),
}

DATASET_RECIPES: dict[str, dict] = {
    "actnet": dict(lr=0.002, batch_size=32, weight_decay=2e-4, amp="none"),
    "fcvid": dict(lr=0.004, batch_size=64, weight_decay=1e-4),
    "minik": dict(lr=0.003, batch_size=48, weight_decay=1e-4, fc_dropout=0.1, norm_ratio=0.75),
    "something": dict(weight_decay=1e-3),
    "jester": dict(weight_decay=1e-3, norm_ratio=0.25),
    # The built-in demo: small ResNet-18 (width 16) glance and focus nets (faster than MobileNetV2 to train on
    # a CPU), native 128 px frames, the pattern readable only at 1:1, hence no norm loss (it pulls the region
    # to the whole frame). lr: the TSM README's 0.02 at batch 64, scaled linearly to batch 16 (at 0.02 the
    # spatial policy saturates at the whole frame in epoch 0). Glance at 64 px, half the frame: the glyph's 1-px
    # pattern is averaged away there (at 80 px aliasing let the glance read some of it), so the glance reads
    # the hue only, as the task intends, and costs 0.64x.
    "synthetic": dict(
        workers=2,
        epochs=5,
        batch_size=16,
        lr=0.005,
        num_glance_segments=8,
        num_input_focus_segments=16,
        num_focus_segments=4,
        input_size=128,
        patch_size=64,
        glance_size=64,
        glance_arch="resnet18",
        focus_arch="resnet18",
        glance_base_width=16,
        focus_base_width=16,
        glance_output_stride=16,
        norm_ratio=0.0,
        pretrain="none",
        amp="none",
        eval_freq=1,
        shared_crop=True,  # the demo: with independent crops the learned policies stay at the glance's accuracy
        local_lr_ratio=0.1,  # the demo: keeps the pretrained focus reading the pattern (README, the demo paragraph)
    ),
}


def dataset_preset(dataset: str) -> str:
    """Returns the preset ('an' | 'tsm' | 'x3d') of a dataset name; raises ValueError for an unknown one."""
    if dataset not in DATASET_PRESET:
        raise ValueError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASET_PRESET)})")
    return DATASET_PRESET[dataset]


def preset_datasets(preset: str) -> list[str]:
    """Returns the datasets that use `preset`."""
    return [d for d, p in DATASET_PRESET.items() if p == preset]


def recipe(preset: str, dataset: str | None = None, own: Mapping | None = None) -> dict:
    """Returns a copy of every preset-dependent value for `preset`, with `dataset`'s own recipe on top, then a
    method's own recipe `own` for every dataset ("*"), the preset and the dataset, layered in that order (with
    `own["own_recipe"]` the dataset's recipe above is skipped: the method has published its own)."""
    if preset not in PRESET_VALUES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    own = own or {}
    layers = (
        PRESET_VALUES[preset],
        {} if own.get("own_recipe") else DATASET_RECIPES.get(dataset or "", {}),
        own.get("*", {}),
        own.get(preset, {}),
        own.get(dataset or "", {}),
    )
    out = dict(COMMON)
    for layer in layers:
        out.update(layer)
    return out
