"""The preset table: the only place that spells a preset default, a dataset -> preset rule, a per-dataset
recipe or a backbone alias.

A preset is the published recipe of one Uni-AdaFocus sub-project, chosen by the dataset:
- 'an'  (actnet, fcvid, minik): MobileNetV2 glance + ResNet-50 focus, T_g 16, N 48, K 16, FrameExit classifier;
- 'tsm' (something, somethingv2, jester, ucf101, hmdb51, synthetic, custom): MobileNetV2-TSM + ResNet-50-TSM,
  T_g 8, N 36, K 12;
- 'x3d' (kinetics): X3D-S glance @160 + X3D-L focus, T_g 16, N 96, K 32.
Values are the original READMEs' command lines (not the original parsers' defaults, which no published number
used). `recipe(preset, dataset)` gives every preset-dependent value of the command line (model fields and
training recipe); `models.config.ModelConfig` takes its model fields from the same table.
"""

from __future__ import annotations

import argparse

# Accepted spellings of the backbone names -> the names of archs.BACKBONES.
ARCH_ALIASES = {
    "mbv2": "mobilenetv2",
    "mobilenetv2": "mobilenetv2",
    "mobilenet_v2": "mobilenetv2",
    "resnet18": "resnet18",
    "res18": "resnet18",
    "resnet34": "resnet34",
    "res34": "resnet34",
    "resnet50": "resnet50",
    "res50": "resnet50",
    "resnet101": "resnet101",
    "res101": "resnet101",
    "resnet152": "resnet152",
    "res152": "resnet152",
    "x3d_s": "x3d_s",
    "x3d_m": "x3d_m",
    "x3d_l": "x3d_l",
    # Efficient-3DCNNs (3-D networks of Köpüklü et al.; `_3d` keeps them apart from the 2-D ImageNet nets)
    "mobilenet_3d": "mobilenet_3d",
    "mbv1_3d": "mobilenet_3d",
    "mobilenetv2_3d": "mobilenetv2_3d",
    "mbv2_3d": "mobilenetv2_3d",
    "shufflenet_3d": "shufflenet_3d",
    "shufflenetv2_3d": "shufflenetv2_3d",
    "squeezenet_3d": "squeezenet_3d",
    "resnet18_3d": "resnet18_3d",
    "resnet50_3d": "resnet50_3d",
    "resnet101_3d": "resnet101_3d",
    "resnext101_3d": "resnext101_3d",
    # TAdaConv
    "tada2d_r50": "tada2d_r50",
    "tada2d": "tada2d_r50",
    "tadaconvnextv2_t": "tadaconvnextv2_t",
    "tadaconvnextv2_s": "tadaconvnextv2_s",
    "tadaconvnextv2_b": "tadaconvnextv2_b",
}
E3D_ARCHS = ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d", "squeezenet_3d")
E3D_ARCHS += ("resnet18_3d", "resnet50_3d", "resnet101_3d", "resnext101_3d")
E3D_WIDTH_ARCHS = ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d")  # read width_mult
TADA_ARCHS = ("tada2d_r50", "tadaconvnextv2_t", "tadaconvnextv2_s", "tadaconvnextv2_b")
# Clip networks that can serve as a Uni-AdaFocus glance or focus ('x3d' preset) besides X3D: they keep the time
# axis (Efficient-3DCNNs mobile nets built without temporal strides; TAda2D has none) and end in a Linear.
UA_CLIP_ARCHS = E3D_WIDTH_ARCHS + ("tada2d_r50",)
# 3-D networks on whole clips; the others are per-frame 2-D networks
CLIP_ARCHS = ("x3d_s", "x3d_m", "x3d_l") + E3D_ARCHS + TADA_ARCHS
# The Efficient-3DCNNs `--model` name of each network (its checkpoints store it as `arch`; its run names use it).
E3D_ORIGINAL_NAMES = {
    "mobilenet_3d": "mobilenet",
    "mobilenetv2_3d": "mobilenetv2",
    "shufflenet_3d": "shufflenet",
    "shufflenetv2_3d": "shufflenetv2",
    "squeezenet_3d": "squeezenet",
    "resnet18_3d": "resnet",
    "resnet50_3d": "resnet",
    "resnet101_3d": "resnet",
    "resnext101_3d": "resnext",
}
# Input conventions of the clip networks' published weights: (mean, std, pixel scale) of the normalisation
# (x / scale - mean) / std, and the datasets whose frames the original fed in BGR order. Efficient-3DCNNs:
# 0-255 values minus the ActivityNet mean (its --mean_dataset default), std 1; its Kinetics loader reads
# videos with cv2 and never converts, so its Kinetics models saw BGR (Jester / UCF-101 frames: RGB).
# TAdaConv: RGB in [0, 1], mean 0.45, std 0.225.
E3D_INPUT = ((114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 1.0)
E3D_BGR_DATASETS = ("kinetics",)
TADA_INPUT = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 255.0)
# How a backbone is spelled in run names (the original AN command line says `--glance_arch mbv2`).
RUN_NAME_ARCH = {"mobilenetv2": "mbv2"}

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
    momentum=0.9,
    dampening=0.0,
    nesterov=False,
    weight_decay=5e-4,
    clip_gradient=20.0,
    amp="fp16",
    eval_freq=1,
    print_freq=20,
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

# Recipes of other methods (their originals' published values). A method's entry holds, each optional:
# "*" (every dataset), a preset name and a dataset name (values layered in that order, on top of the preset's
# values and, unless "own_recipe" is set, the dataset's Uni-AdaFocus recipe above); "datasets": the datasets it
# has a recipe for; "stages": the values of each training stage's README command line (for flags the dataset
# entry leaves unset).
METHOD_RECIPES: dict[str, dict] = {
    "adafocus_v2": {
        "an": dict(
            num_glance_segments=16,
            num_input_focus_segments=16,
            num_focus_segments=16,
            dropout=0.2,
            fc_dropout=0.2,
            stn_hidden_dim=2048,
            lr=0.002,
            batch_size=32,
            weight_decay=1e-4,
            clip_gradient=None,
            global_lr_ratio=0.5,
            stn_lr_ratio=0.1,
            classifier_lr_ratio=5.0,
            amp="none",
            coarse_to_fine=True,
        ),
        "minik": dict(lr=0.003, batch_size=48, fc_dropout=0.2),
        "tsm": dict(
            num_glance_segments=8,
            num_input_focus_segments=12,
            num_focus_segments=12,
            stn_hidden_dim=1024,
            lr=0.01,
            batch_size=32,
            weight_decay=5e-4,
            global_lr_ratio=0.5,
            stn_lr_ratio=0.01,
            amp="none",
            coarse_to_fine=False,
        ),
        "something": dict(weight_decay=5e-4),
        "jester": dict(weight_decay=5e-4),
        # The demo (on top of the synthetic Uni-AdaFocus recipe): N = K = 4 patch frames, uniform (V2 selects no
        # frames), the focus budget of the Uni-AdaFocus demo (with 8, focus pretraining reached training accuracy
        # 0.58 instead of 0.99: half the clips per step); the 'tsm' lr 0.01 at batch 32 scaled to batch 16; the
        # policy at Uni-AdaFocus's ratio 0.2 (V2's 0.01 barely moves it in the demo's 300 steps).
        "synthetic": dict(
            num_input_focus_segments=4,
            num_focus_segments=4,
            stn_hidden_dim=256,
            lr=0.005,
            batch_size=16,
            stn_lr_ratio=0.2,
        ),
    },
    # AdaFocus V1, ActivityNet code (conf/default.yaml and the README's command lines, which set dropout 0.8,
    # patch 128, workers 8; FCVID and Mini-Kinetics use the same values, no others are published).
    "adafocus_v1": {
        "own_recipe": True,
        "datasets": ("actnet", "fcvid", "minik", "synthetic"),
        "*": dict(
            glance_arch="mobilenetv2",
            focus_arch="resnet50",
            num_segments=16,
            input_size=224,
            patch_size=128,
            glance_size=224,
            glance_output_stride=32,
            dropout=0.8,
            workers=8,
            batch_size=64,
            lr_type="cos",
            lr_steps=[50.0, 100.0],
            momentum=0.9,
            weight_decay=1e-4,
            clip_gradient=None,  # clip_grad: 20 is defined but never applied
            amp="fp16",
            eval_freq=5,
            pretrain="imagenet",
            partial_bn=False,
            action_dim=49,
            policy_hidden_dim=1024,
            gru_hidden_dim=1024,
            gamma=0.7,
            policy_lr=3e-4,
            reward="random",
            continuous=False,
            action_std=0.25,
            pretrain_net="glancer",
            finetune_focus=False,
        ),
        "stages": {
            0: dict(lr=0.01, epochs=15),
            1: dict(lr=5e-4, fc_lr=0.05, epochs=50),
            2: dict(lr=5e-4, fc_lr=0.05, epochs=50),  # PPO: Adam at policy_lr; lr and fc_lr are not used
            3: dict(lr=5e-4, fc_lr=0.005, epochs=10),
        },
        # The demo: the synthetic preset's small ResNet-18 nets (width 16) at 128 px, 8 frames, CPU-sized widths.
        "synthetic": dict(
            glance_arch="resnet18",
            focus_arch="resnet18",
            glance_base_width=16,
            focus_base_width=16,
            glance_output_stride=16,
            num_segments=8,
            input_size=128,
            patch_size=64,
            glance_size=80,
            policy_hidden_dim=256,
            gru_hidden_dim=256,
            dropout=0.5,
            workers=2,
            batch_size=16,
            epochs=5,
            amp="none",
            eval_freq=1,
            pretrain="none",
        ),
    },
    # The recipes of the originals of the clip methods (their README / config values), on top of the preset's:
    # - e3d (Efficient-3DCNNs README commands and opts.py): SGD lr 0.1, momentum 0.9 with dampening 0.9, weight
    #   decay 1e-3, batch 64, 250 epochs, lr x0.1 at epochs 40, 55, 65, 70, 200, 250 of its 1-based count (= 39,
    #   54, ... here, where epochs count from 0), no gradient clipping, no mixed precision, 16 x 112^2 clips;
    # - tada (configs/projects/tada/k400/tada2d_8x8.yaml): SGD-Nesterov lr 0.24 at batch 128, cosine over 100
    #   epochs (its 8 warm-up epochs are not reproduced), weight decay 1e-4, head dropout 0.5, 8 frames at 224^2,
    #   ImageNet initialisation.
    # Per dataset: the Efficient-3DCNNs README trains Jester with --downsample 2; the built-in synthetic data gets
    # short runs (5 epochs, batch 16, the lr scaled linearly to that batch).
    "e3d": {
        "*": dict(
            lr=0.1,
            lr_type="step",
            lr_steps=[39.0, 54.0, 64.0, 69.0, 199.0, 249.0],
            momentum=0.9,
            dampening=0.9,
            weight_decay=1e-3,
            batch_size=64,
            epochs=250,
            clip_gradient=None,
            amp="none",
            input_size=112,
            pretrain="none",
            downsample=1,
        ),
        "jester": dict(downsample=2),
        "synthetic": dict(workers=2, epochs=5, batch_size=16, lr=0.025),
    },
    "tada": {
        "*": dict(
            lr=0.24,
            lr_type="cos",
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-4,
            batch_size=128,
            epochs=100,
            clip_gradient=None,
            amp="none",
            dropout=0.5,
            input_size=224,
            pretrain="imagenet",
            downsample=8,
        ),
        "synthetic": dict(workers=2, epochs=5, batch_size=16, lr=0.03, pretrain="none"),
    },
}

# Flags that only one preset reads (anywhere else they would be silently ignored, so they are refused).
PRESET_ONLY = {"fc_dropout": "an", "classifier_lr_ratio": "an", "hidden_dim": "an"}
# Width options and the kind of network each applies to: (the field naming that network, its name prefix(es)).
WIDTH_FLAGS = {
    "glance_width_mult": ("glance_arch", "mobilenetv2"),
    "glance_last_channel": ("glance_arch", "mobilenetv2"),
    "glance_base_width": ("glance_arch", ("resnet", "tada2d")),
    "focus_width_mult": ("focus_arch", "mobilenetv2"),
    "focus_base_width": ("focus_arch", ("resnet", "tada2d")),
}
# Compatibility flags of the original command lines that change nothing here (a warning says so).
NO_OPS = {
    "hidden_dim": "the AN classifier's MLP width is 4096 in the original code whatever --hidden_dim says"
}


def canonical_arch(name: str) -> str:
    """Returns the backbone name of archs.BACKBONES for `name` ('mbv2' -> 'mobilenetv2'); raises ValueError."""
    key = name.lower().replace("-", "_")
    if key not in ARCH_ALIASES:
        raise ValueError(f"unknown backbone {name!r} (choose from {', '.join(sorted(set(ARCH_ALIASES)))})")
    return ARCH_ALIASES[key]


def arch_type(name: str) -> str:
    """argparse `type=` for backbone flags: canonical_arch with argparse's error type."""
    try:
        return canonical_arch(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def is_clip_arch(name: str) -> bool:
    """True for 3-D clip networks (X3D), False for per-frame 2-D networks."""
    return canonical_arch(name) in CLIP_ARCHS


def dataset_preset(dataset: str) -> str:
    """Returns the preset ('an' | 'tsm' | 'x3d') of a dataset name; raises ValueError for an unknown one."""
    if dataset not in DATASET_PRESET:
        raise ValueError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASET_PRESET)})")
    return DATASET_PRESET[dataset]


def preset_datasets(preset: str) -> list[str]:
    """Returns the datasets that use `preset`."""
    return [d for d, p in DATASET_PRESET.items() if p == preset]


def recipe(preset: str, dataset: str | None = None, method: str | None = None) -> dict:
    """Returns a copy of every preset-dependent value for `preset`, with `dataset`'s own recipe on top, then
    `method`'s recipes for every dataset, the preset and the dataset (METHOD_RECIPES), if it has any."""
    if preset not in PRESET_VALUES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    own = METHOD_RECIPES.get(method or "", {})
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


def dataset_recipe(dataset: str, method: str | None = None) -> dict:
    """Returns `recipe` of the dataset's preset, the dataset and the method."""
    return recipe(dataset_preset(dataset), dataset, method)


def method_datasets(method: str) -> tuple[str, ...] | None:
    """Returns the datasets a method of METHOD_RECIPES has a recipe for (None: any dataset)."""
    return METHOD_RECIPES.get(method, {}).get("datasets")


def stage_recipe(method: str, stage: int, dataset: str | None = None) -> dict:
    """Returns the values of training stage `stage` of a staged method (METHOD_RECIPES[method]['stages']) that
    the dataset's entry of the method does not set."""
    own = METHOD_RECIPES[method]
    dataset_values = own.get(dataset or "", {})
    return {k: v for k, v in own["stages"][stage].items() if k not in dataset_values}


def clip_input(arch: str, dataset: str | None) -> tuple[tuple, tuple, float, bool] | None:
    """Returns (mean, std, pixel scale, bgr) of the input convention of clip network `arch`'s published
    weights on `dataset` (E3D_INPUT / TADA_INPUT), or None for the others (ImageNet RGB, as the frames)."""
    arch = canonical_arch(arch)
    if arch in E3D_ARCHS:
        return (*E3D_INPUT, dataset in E3D_BGR_DATASETS)
    if arch in TADA_ARCHS:
        return (*TADA_INPUT, False)
    return None


def run_name_arch(arch: str) -> str:
    """Returns how a backbone is spelled in run names."""
    return RUN_NAME_ARCH.get(arch, arch)


def tsm_run_name(args: argparse.Namespace, prefix: str, arch: str, frames: int) -> str:
    """Returns the run name in the form of the TSM code (also used by the Uni-AdaFocus TSM/X3D code):
    `{prefix}_{dataset}_{modality}_{arch}[_shift{div}_{place}]_{consensus}_segment{frames}_e{epochs}`, then
    `_{pretrain}` unless imagenet and `_{lr_type}` unless step."""
    arch = run_name_arch(arch)
    if args.shift:
        arch += f"_shift{args.shift_div}_{args.shift_place}"
    parts = [
        prefix,
        args.dataset,
        args.modality,
        arch,
        args.consensus_type,
        f"segment{frames}",
        f"e{args.epochs}",
    ]
    name = "_".join(parts)
    if args.pretrain != "imagenet":
        name += f"_{args.pretrain}"
    if args.lr_type != "step":
        name += f"_{args.lr_type}"
    return name


def check_preset_flags(dataset: str, explicit: set[str]) -> None:
    """Raises ValueError for a flag of `explicit` that the dataset's preset does not read (PRESET_ONLY)."""
    preset = dataset_preset(dataset)
    for key in sorted(explicit):
        owner = PRESET_ONLY.get(key, preset)
        if owner != preset:
            users = ", ".join(preset_datasets(owner))
            raise ValueError(
                f"--{key} is only used by the {owner.upper()} preset ({users}), not by {dataset}"
            )
