"""Every method's resolved training recipe against the values of its original's configuration files and README
command lines, cited by path (repository: path) in each row; the table covers every method and dataset the README
names (datasets without a published recipe of that method are listed in NO_SOURCE with the reason)."""

import pytest

from models import get_method, method_names
from models.core.recipes import DATASET_PRESET
from ops.opts import parse_args

# Repositories: UA = LeapLabTHU/Uni-AdaFocus, V1 = blackfeather-wang/AdaFocus, V2 = LeapLabTHU/AdaFocusV2,
# E3D = okankop/Efficient-3DCNNs, TADA = alibaba-mmai-research/TAdaConv, RKD = CVMI-Lab/ResKD.
UA_AN = "UA: Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics/README.md"
UA_TSM = "UA: Uni-AdaFocus-TSM with Experiments on Sth-Sth V1&V2 and Jester/README.md"
UA_X3D = "UA: Uni-AdaFocus-X3D with Experiments on Kinetics-400/README.md"
V1_AN = "V1: Experiments on ActivityNet, FCVID and Mini-Kinetics/README.md + conf/default.yaml"
V2_AN = "V2: Experiments on ActivityNet, FCVID and Mini-Kinetics/scripts/train.sh"
V2_SS = "V2: Experiments on Sth-Sth and Jester/README.md"
E3D = "E3D: README.md (training commands) + opts.py"
TADA2D = "TADA: configs/projects/tada/k400/tada2d_8x8.yaml < tada2d_k400.yaml < pool/run/training/from_scratch_large.yaml"
CNX = "TADA: configs/projects/tadaconvnextv2/tadaconvnextv2_{}_k400_16f.yaml < pool/run/training/from_scratch_large.yaml"
RKD = "RKD: configs/myconfig/rkd/{} < configs/_base_/schedules/sgd_rkd_50e.py, configs/_base_/models/rkd_*.py"

# The recipe every SGD original shares unless its row says otherwise: per-epoch schedule, no warm-up, the model's
# own optimizer groups (every parameter decayed), no drop path, no RandAugment / grayscale.
BASE = dict(
    optimizer="sgd",
    lr_per_step=False,
    warmup=(0.0, 0.0),
    paramwise="model",
    drop_path=None,
    randaugment="none",
    grayscale=0.0,
)
UA_AN_VALUES = dict(
    BASE, lr_type="cos", epochs=50, dropout=0.2, fc_dropout=0.2, clip=None, momentum=0.9, crop="tsm"
)
UA_TSM_VALUES = dict(
    BASE, lr_type="cos", epochs=50, batch=64, lr=0.02, dropout=0.5, clip=20.0, amp="fp16", crop="tsm"
)
TADA_VALUES = dict(
    BASE,
    lr_type="cos",
    lr_per_step=True,
    epochs=100,
    dropout=0.5,
    clip=None,
    amp="none",
    paramwise="model",  # TAdaConv's groups (test_tada_param_groups_are_tadaconvs)
)
RKD_VALUES = dict(
    BASE,
    lr=0.01,
    batch=64,
    wd=1e-4,
    paramwise="rkd",
    clip=20.0,
    lr_type="cos",
    dropout=0.5,
    amp="none",
    crop="tsm",
)

ROWS = [
    # (argv, expected, source)
    (["actnet", "RGB"], dict(UA_AN_VALUES, lr=0.002, batch=32, wd=2e-4, amp="none"), UA_AN + " (main.py)"),
    (
        ["fcvid", "RGB"],
        dict(UA_AN_VALUES, lr=0.004, batch=64, wd=1e-4, amp="fp16"),
        UA_AN + " (main_semiAMP.py)",
    ),
    (
        ["minik", "RGB"],
        dict(UA_AN_VALUES, lr=0.003, batch=48, wd=1e-4, fc_dropout=0.1, amp="fp16"),
        UA_AN + " (main_semiAMP.py)",
    ),
    (["something", "RGB"], dict(UA_TSM_VALUES, wd=1e-3), UA_TSM),
    (["somethingv2", "RGB"], dict(UA_TSM_VALUES, wd=5e-4), UA_TSM),
    (["jester", "RGB"], dict(UA_TSM_VALUES, wd=1e-3), UA_TSM),
    (["kinetics", "RGB"], dict(UA_TSM_VALUES, lr=0.005, wd=5e-5), UA_X3D),
    *[
        (
            ["--method", "adafocus_v1", "--dataset", ds, "--train_stage", str(stage)],
            dict(
                BASE,
                lr=lr,
                fc_lr_ratio=ratio,
                batch=64,
                wd=1e-4,
                lr_type="cos",
                epochs=epochs,
                dropout=0.8,
                clip=None,  # clip_grad: 20 is defined, never applied
                amp="fp16",  # amp: true
                policy_lr=3e-4,
                crop="tsm",
            ),
            V1_AN + f" (stage {stage})",
        )
        for ds in ("actnet", "fcvid", "minik")
        for stage, lr, ratio, epochs in (
            (0, 0.01, 1.0, 15),
            (1, 5e-4, 100.0, 50),
            (2, 5e-4, 100.0, 50),
            (3, 5e-4, 10.0, 10),
        )
    ],
    *[
        (
            [ds, "RGB", "--method", "adafocus_v2"],
            dict(
                BASE,
                lr=lr,
                batch=batch,
                wd=1e-4,
                lr_type="cos",
                epochs=50,
                dropout=0.2,
                fc_dropout=0.2,
                clip=None,
                amp="none",
                concat_branches=False,
                crop="tsm",
            ),
            V2_AN,
        )
        for ds, lr, batch in (("actnet", 0.002, 32), ("fcvid", 0.002, 32), ("minik", 0.003, 48))
    ],
    *[
        (
            [ds, "RGB", "--method", "adafocus_v2"],
            dict(
                BASE,
                lr=0.01,
                batch=32,
                wd=5e-4,
                lr_type="cos",
                epochs=50,
                dropout=0.5,
                clip=20.0,
                amp="none",
                concat_branches=False,
                crop="tsm",
            ),
            V2_SS,
        )
        for ds in ("something", "somethingv2", "jester")
    ],
    *[
        (
            [ds, "RGB", "--model", "e3d"] + flags,
            dict(
                BASE,
                lr=0.1,
                momentum=0.9,
                dampening=0.9,
                batch=64,
                wd=1e-3,
                lr_type="step",
                lr_steps=[
                    39.0,
                    54.0,
                    64.0,
                    69.0,
                    199.0,
                    249.0,
                ],  # opts.py [40, 55, 65, 70, 200, 250], 1-based
                epochs=250,
                dropout=None,
                clip=None,
                amp="none",
                crop=crop,
            ),
            E3D,
        )
        for ds, flags, crop in (
            ("jester", ["--train_crop", "random", "--lr", "0.1", "--batch_size", "64"], "random"),
            ("ucf101", ["--train_crop", "random", "--lr", "0.1", "--batch_size", "64"], "random"),
            ("kinetics", [], "corner"),  # opts.py: --train_crop corner
        )
    ],
    (
        ["kinetics", "RGB", "--model", "tada", "--arch", "tada2d_r50"],
        dict(
            TADA_VALUES,
            lr=0.24,
            batch=128,
            wd=1e-4,
            momentum=0.9,
            nesterov=True,
            warmup=(8.0, 0.01),
            crop="jitter",
            frames=(8, 8),
        ),
        TADA2D,
    ),
    *[
        (
            ["kinetics", "RGB", "--model", "tada", "--arch", f"tadaconvnextv2_{size[0]}"],
            dict(
                TADA_VALUES,
                optimizer="adamw",
                lr=lr,
                batch=batch,
                wd=0.02,
                warmup=(8.0, 1e-6),
                drop_path=drop_path,
                crop="rrc",
                randaugment="rand-m9-n4-mstd0.5-inc1",
                grayscale=0.2,
                boost_new_lr=True,
                frames=(16, 5),
            ),
            CNX.format(size),
        )
        for size, lr, batch, drop_path in (
            ("tiny", 5e-4, 512, 0.2),
            ("small", 2.5e-4, 256, 0.4),
            ("base", 2.5e-4, 256, 0.6),
        )
    ],
    *[
        (
            argv + ["--distill", "teacher.pth"],
            dict(RKD_VALUES, epochs=epochs, frames=(frames, None), multilabel_ce=ce),
            RKD.format(config),
        )
        for argv, epochs, frames, ce, config in (
            (["actnet", "RGB", "--model", "tsn"], 200, 16, "sum", "rkd_r152_1x1x16_200e_actnet.py"),
            (["fcvid", "RGB", "--model", "tsn"], 200, 16, "sum", "rkd_r152_1x1x16_200e_fcvid.py"),
            (["minik", "RGB", "--model", "tsn"], 100, 8, "first", "rkd_r152_1x1x8_100e_minik.py"),
            (["somethingv2", "RGB", "--model", "tsm"], 100, 8, "first", "rkd_tsm_1x1x8_100e_sthv2.py"),
        )
    ],
]

# (method, dataset) pairs of the README without a recipe of their own in the original repositories.
NO_SOURCE = {
    ("uniadafocus", "ucf101"): "the tsm preset's (no published Uni-AdaFocus run)",
    ("uniadafocus", "hmdb51"): "the tsm preset's (no published Uni-AdaFocus run)",
    ("uniadafocus", "custom"): "the tsm preset's (README: Your own data)",
    (
        "tada",
        "somethingv2",
    ): "TAdaConv's SSV2 configs (segment sampling, label-swapping flip) are not reproduced",
}
# Methods whose recipe is by design the preset's (the comparison baselines of the Uni-AdaFocus tables).
PRESET_RECIPE = ("tsn", "tsm", "x3d")


def resolved(argv: list[str]) -> dict:
    """The resolved recipe of a command line, as the run's args.json records it."""
    args = parse_args(argv + ["--root_dataset", "/nonexistent"])
    cfg = get_method(args.model).config_cls.from_args(args)
    spec = get_method(args.model).model_cls.input_spec(cfg)
    out = dict(
        optimizer=args.optimizer,
        lr=args.lr,
        batch=args.batch_size,
        wd=args.weight_decay,
        paramwise=args.paramwise or "model",
        lr_type=args.lr_type,
        lr_steps=args.lr_steps,
        lr_per_step=args.lr_per_step,
        warmup=(args.warmup_epochs, args.warmup_start_lr),
        epochs=args.epochs,
        dropout=None if args.model == "e3d" else args.dropout,
        fc_dropout=args.fc_dropout,
        drop_path=getattr(args, "drop_path", None),
        amp=args.amp,
        clip=args.clip_gradient,
        crop=args.train_crop or spec.train_crop,
        randaugment=args.randaugment,
        grayscale=args.grayscale,
        momentum=args.momentum,
        nesterov=args.nesterov,
        dampening=args.dampening,
        multilabel_ce=args.multilabel_ce,
        frames=(args.num_segments, getattr(args, "downsample", None)),
    )
    for key in ("policy_lr", "fc_lr_ratio", "concat_branches", "boost_new_lr"):
        out[key] = getattr(args, key, None)
    return out


@pytest.mark.parametrize("argv,expected,source", ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_recipe_equals_the_originals_config(argv, expected, source):
    got = resolved(argv)
    wrong = {
        k: (got[k], v)
        for k, v in expected.items()
        if got[k] != v and not (isinstance(v, float) and got[k] == pytest.approx(v))
    }
    assert not wrong, f"{source}: (ours, original) {wrong}"


def test_the_table_covers_every_method_and_dataset_of_the_readme():
    covered = set()
    for argv, _, _ in ROWS:
        args = parse_args(argv + ["--root_dataset", "/nonexistent"])
        covered.add((args.model, args.dataset))
    readme = {
        "uniadafocus": [d for d in DATASET_PRESET if d != "synthetic"],
        "adafocus_v1": ["actnet", "fcvid", "minik"],
        "adafocus_v2": ["actnet", "fcvid", "minik", "something", "somethingv2", "jester"],
        "e3d": ["jester", "ucf101", "kinetics"],
        "tada": ["kinetics", "somethingv2"],
    }
    built_in = {n for n in method_names() if get_method(n).model_cls.__module__.startswith("models.")}
    assert set(readme) | set(PRESET_RECIPE) == built_in  # (a test may have registered a toy method)
    missing = {(m, d) for m, ds in readme.items() for d in ds} - covered - set(NO_SOURCE)
    assert not missing
    assert not set(NO_SOURCE) & covered


@pytest.mark.parametrize("method", PRESET_RECIPE)
def test_baselines_take_the_presets_recipe(method):
    for dataset in ("actnet", "something", "kinetics"):
        if method == "x3d" and dataset != "kinetics":
            continue
        args = parse_args([dataset, "RGB", "--model", method, "--root_dataset", "/nonexistent"])
        ua = parse_args([dataset, "RGB", "--root_dataset", "/nonexistent"])
        keys = ("optimizer", "lr", "batch_size", "weight_decay", "lr_type", "epochs", "amp", "clip_gradient")
        assert [getattr(args, k) for k in keys] == [getattr(ua, k) for k in keys]


def test_reskd_recipe_fills_only_what_the_command_line_leaves_unset():
    base = ["actnet", "RGB", "--model", "tsn", "--distill", "t.pth", "--root_dataset", "/nonexistent"]
    args = parse_args(base + ["--lr", "0.02", "--amp", "fp16", "--dropout", "0.3", "--num_segments", "8"])
    assert (args.lr, args.amp, args.dropout, args.num_segments) == (0.02, "fp16", 0.3, 8)
    assert (args.paramwise, args.clip_gradient, args.student_size, args.consensus_first) == (
        "rkd",
        20.0,
        112,
        True,
    )
    plain = parse_args(["actnet", "RGB", "--model", "tsn", "--root_dataset", "/nonexistent"])
    assert (plain.paramwise, plain.dropout, plain.student_size, plain.amp) == (None, 0.2, None, "none")
    # a student ResKD never trained (our extension) keeps its method's recipe
    ua = parse_args(["actnet", "RGB", "--distill", "t.pth", "--root_dataset", "/nonexistent"])
    assert (ua.lr, ua.paramwise, ua.student_size) == (0.002, None, None)


def test_the_reskd_page_command_gets_reskds_recipe():
    import os
    import shlex

    with open(
        os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "reskd.md"), encoding="utf-8"
    ) as f:
        section = f.read()
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    train = next(shlex.split(line, comments=True) for line in block.splitlines() if "main.py " in line)
    assert train[:2] == ["python", "main.py"]
    got = resolved(train[2:])
    argv, expected, source = next(
        r for r in ROWS if r[0][:3] == ["actnet", "RGB", "--model"] and "--distill" in r[0]
    )
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    assert not wrong, f"{source}: (ours, original) {wrong}"
