"""ops.opts: the original README command lines of both families parse unchanged; presets; clear errors."""

import shlex

import pytest

from models import config_from_args
from models.core.recipes import dataset_preset
from ops.opts import DATASETS, build_parser, parse_args

# Copied from the original READMEs (UA-AN, UA-TSM, UA-X3D), without the launcher prefix.
AN_COMMON = (
    "--root_log LOG_DIR --workers 16 --num_segments 48 --dropout 0.2 --fc_dropout {fcd} "
    "--epochs 50 --lr {lr} --lr_type cos --lr_steps 0 0 --batch_size {bs} --momentum 0.9 --weight_decay {wd} "
    "--patch_size 128 --global_lr_ratio 0.5 --stn_lr_ratio 0.2 --classifier_lr_ratio 20.0 "
    "--temporal_lr_ratio 0.2 --KL_ratio 0.0 --norm_ratio {nr} --hidden_dim 1024 --stn_hidden_dim 128 "
    "--temporal_hidden_dim 64 --num_glance_segments 16 --num_focus_segments 16 --temperature 1.0"
)
AN_README = {
    "actnet": dict(fcd=0.2, lr=0.002, bs=32, wd="2e-4", nr="1.00", extra=""),
    "fcvid": dict(fcd=0.2, lr=0.004, bs=64, wd="1e-4", nr="1.00", extra=" --print-freq 50"),
    "minik": dict(fcd=0.1, lr=0.003, bs=48, wd="1e-4", nr="0.75", extra=" --print-freq 50"),
}
TSM_README = (
    "{ds} RGB --dist-url 'tcp://127.0.0.1:12345' --dist-backend 'nccl' --multiprocessing-distributed "
    "--world-size 1 --rank 0 --root_log LOG_DIR --root_model LOG_DIR --arch resnet50 "
    "--num_glance_segments 8 --num_input_focus_segments {n} --num_focus_segments {k} "
    "--gd 20 -j 16 --lr_steps 0 0 --lr_type cos --epochs 50 --batch-size 64 --lr 0.02 --wd {wd} "
    "--dropout 0.5 --consensus_type=avg --eval-freq=1 --shift --shift_div=8 --shift_place=blockres --npb "
    "--print-freq=50 --patch_size {p} --stn_hidden_dim 128 --temporal_hidden_dim 64 --global_lr_ratio 0.5 "
    "--stn_lr_ratio 0.20 --temporal_lr_ratio 0.20 --temperature 1.0  --norm_ratio {nr}"
)
X3D_README = (
    "kinetics RGB --dist-url 'tcp://127.0.0.1:12345' --dist-backend 'nccl' --multiprocessing-distributed "
    "--world-size 1 --rank 0 --root_log LOG_DIR --root_model LOG_DIR --arch resnet50 "
    "--num_glance_segments 16 --num_input_focus_segments 96 --num_focus_segments 32 "
    "--gd 20 -j 24 --lr_steps 0 0 --lr_type cos --epochs 50 --batch-size 64 --lr 0.005 --wd 5e-5 "
    "--dropout 0.5 --consensus_type=avg --eval-freq=1 --shift --shift_div=8 --shift_place=blockres --npb "
    "--print-freq=50 --glance_size 160 --patch_size 128 --stn_hidden_dim 128 --temporal_hidden_dim 64 "
    "--global_lr_ratio 0.5 --stn_lr_ratio 0.40 --temporal_lr_ratio 0.40 --temperature 1.0  --norm_ratio 0.50"
)


def an_cmd(ds: str) -> list[str]:
    v = AN_README[ds]
    return shlex.split(
        f"--glance_arch mbv2 --dataset {ds} --data_dir PATH_TO_DATASET " + AN_COMMON.format(**v) + v["extra"]
    )


def fail(argv, capsys, script="main") -> str:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv, script=script)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("ds", ["actnet", "fcvid", "minik"])
def test_an_readme_commands(ds):
    v = AN_README[ds]
    with pytest.warns(UserWarning, match="--hidden_dim does nothing"):  # in the README commands, a no-op
        a = parse_args(an_cmd(ds) + ["--local_rank=3"])  # the legacy launcher appends --local_rank
    assert (a.dataset, a.preset, a.modality, a.data_dir, a.local_rank) == (
        ds,
        "an",
        "RGB",
        "PATH_TO_DATASET",
        3,
    )
    assert (a.num_segments, a.num_input_focus_segments, a.num_glance_segments, a.num_focus_segments) == (
        48,
        48,
        16,
        16,
    )
    assert (a.batch_size, a.weight_decay, a.lr, a.fc_dropout) == (v["bs"], float(v["wd"]), v["lr"], v["fcd"])
    assert (a.eval_freq, a.lr_type, a.lr_steps, a.epochs, a.workers) == (1, "cos", [0.0, 0.0], 50, 16)
    assert (a.patch_size, a.norm_ratio, a.classifier_lr_ratio, a.KL_ratio) == (128, float(v["nr"]), 20.0, 0.0)
    assert a.print_freq == (50 if v["extra"] else 20)
    assert a.store_name == f"UniAdaFocus_{ds}_mbv2_segment48_e50"
    assert (
        a.run_dir == a.log_dir == f"LOG_DIR/UniAdaFocus_{ds}_mbv2_segment48_e50"
    )  # AN: root_model = root_log
    assert a.clip_gradient is None and a.model == "uniadafocus" and a.shift is False
    assert "hidden_dim" in a.explicit and "lr" in a.explicit and "glance_size" not in a.explicit


def test_an_early_exit_command_and_new_style_local_rank():
    with pytest.warns(UserWarning, match="--hidden_dim"):
        a = parse_args(
            an_cmd("actnet") + ["--evaluate", "--resume", "ckpt/actnet_p128.pth.tar", "--local-rank=1"],
            script="early_exit",
        )
    assert (a.evaluate, a.resume, a.local_rank, a.script) == (
        True,
        "ckpt/actnet_p128.pth.tar",
        1,
        "early_exit",
    )
    assert a.criteria == ["confidence", "entropy"]


@pytest.mark.parametrize(
    "ds,n,k,p,wd,nr",
    [
        ("something", 24, 8, 96, "1e-3", "0.50"),
        ("somethingv2", 48, 16, 128, "5e-4", "0.50"),
        ("jester", 36, 12, 128, "1e-3", "0.25"),
    ],
)
def test_tsm_readme_commands(ds, n, k, p, wd, nr):
    a = parse_args(shlex.split(TSM_README.format(ds=ds, n=n, k=k, p=p, wd=wd, nr=nr)))
    assert (a.dataset, a.preset, a.modality) == (ds, "tsm", "RGB")
    assert (a.num_glance_segments, a.num_input_focus_segments, a.num_focus_segments, a.patch_size) == (
        8,
        n,
        k,
        p,
    )
    assert (a.batch_size, a.weight_decay, a.clip_gradient, a.workers, a.eval_freq) == (
        64,
        float(wd),
        20.0,
        16,
        1,
    )
    assert (a.lr, a.dropout, a.norm_ratio, a.stn_lr_ratio, a.print_freq) == (0.02, 0.5, float(nr), 0.2, 50)
    assert (a.dist_url, a.dist_backend, a.multiprocessing_distributed) == (
        "tcp://127.0.0.1:12345",
        "nccl",
        True,
    )
    assert (a.world_size, a.rank, a.partial_bn, a.shift) == (1, 0, False, True)
    assert a.num_segments is None and (a.glance_arch, a.focus_arch) == ("mobilenetv2", "resnet50")
    assert a.store_name == f"TSM_{ds}_RGB_resnet50_shift8_blockres_avg_segment8_e50_cos"
    assert a.run_dir == f"LOG_DIR/{a.store_name}"


def test_tsm_early_exit_readme_command():
    argv = shlex.split(TSM_README.format(ds="something", n=36, k=12, p=128, wd="1e-3", nr="0.50"))
    a = parse_args(argv + ["--evaluate", "--resume", "ckpt/sthv1_p128_8and12.pth.tar"], script="early_exit")
    assert a.evaluate and a.resume == "ckpt/sthv1_p128_8and12.pth.tar" and a.num_focus_segments == 12


@pytest.mark.parametrize(
    "script,extra",
    [
        ("main", ""),
        ("nview", " --evaluate --test_crops 3 --resume c.pth.tar"),
        ("early_exit", " --evaluate --test_crops 3 --resume c.pth.tar"),
    ],
)
def test_x3d_readme_commands(script, extra):
    a = parse_args(shlex.split(X3D_README + extra), script=script)
    assert (a.preset, a.glance_arch, a.focus_arch, a.glance_size, a.patch_size) == (
        "x3d",
        "x3d_s",
        "x3d_l",
        160,
        128,
    )
    assert (a.num_glance_segments, a.num_input_focus_segments, a.num_focus_segments) == (16, 96, 32)
    assert (a.lr, a.weight_decay, a.workers, a.stn_lr_ratio, a.temporal_lr_ratio) == (
        0.005,
        5e-5,
        24,
        0.4,
        0.4,
    )
    # --shift is in the X3D README but X3D has no shift: it only names the run, as in the original.
    assert a.shift is True and config_from_args(a, 400).shift is False
    assert a.store_name == "UniAdaFocus_kinetics_RGB_x3d_s_x3d_l_segment16_p128_e50_cos"  # what ran
    assert a.test_crops == (3 if extra else 1) and a.evaluate == bool(extra)


def test_presets_fill_defaults_and_flags_override(monkeypatch):
    monkeypatch.setenv("ADAFOCUS_DATA", "/data/root")
    a = parse_args(["kinetics", "RGB"])
    assert (a.glance_arch, a.focus_arch, a.num_glance_segments, a.num_input_focus_segments) == (
        "x3d_s",
        "x3d_l",
        16,
        96,
    )
    assert (a.num_focus_segments, a.patch_size, a.glance_size, a.root_dataset) == (32, 128, 160, "/data/root")
    assert a.explicit == [] and a.root_model == a.root_log == "log" and a.trust_checkpoint is False
    assert parse_args(["kinetics", "RGB", "--resume", "c.pth", "--trust_checkpoint"]).trust_checkpoint is True
    a = parse_args(
        ["something", "RGB", "--patch_size", "96", "--focus_arch", "res50", "--root_dataset", "/x"]
    )
    assert (a.patch_size, a.focus_arch, a.root_dataset, a.num_input_focus_segments) == (
        96,
        "resnet50",
        "/x",
        36,
    )
    assert a.explicit == ["focus_arch", "patch_size", "root_dataset"]
    a = parse_args(["--dataset", "minik"])  # AN form, no positional: README recipe of minik
    assert (a.lr, a.batch_size, a.weight_decay, a.fc_dropout, a.norm_ratio) == (0.003, 48, 1e-4, 0.1, 0.75)
    a = parse_args(
        [
            "--dataset",
            "actnet",
            "--num_input_focus_segments",
            "32",
            "--num_glance_segments",
            "8",
            "--num_focus_segments",
            "8",
        ]
    )
    assert (a.num_segments, a.num_input_focus_segments) == (32, 32)  # either spelling of N
    a = parse_args(["synthetic", "RGB", "--no_shift", "--partialbn", "--gd", "0", "--amp"])
    assert (a.shift, a.partial_bn, a.clip_gradient, a.amp) == (False, True, None, "auto")  # by GPU capability
    assert a.pretrain == "none" and a.store_name == "TSM_synthetic_RGB_resnet18_avg_segment8_e5_none_cos"
    assert (a.glance_arch, a.glance_size, a.glance_output_stride) == ("resnet18", 64, 16)
    with pytest.raises(SystemExit):  # only a ResNet glance has a dilated form
        parse_args(["synthetic", "RGB", "--glance_arch", "mbv2", "--glance_output_stride", "16"])
    # positionals may come after flags (parse_intermixed_args)
    assert parse_args(["--lr", "0.1", "jester", "RGB"]).lr == 0.1
    a = parse_args(["something", "RGB", "--input_size", "112", "--patch_size", "64"])  # glance follows S
    assert (a.input_size, a.glance_size, a.patch_size) == (112, 112, 64)


def test_baselines_and_store_name_override():
    a = parse_args(["something", "RGB", "--model", "tsm", "--arch", "mobilenetv2"])
    assert (a.focus_arch, a.num_segments, a.shift) == ("mobilenetv2", 8, True)
    assert a.store_name == "TSM_something_RGB_mbv2_shift8_blockres_avg_segment8_e50_cos"
    a = parse_args(["kinetics", "RGB", "--model", "x3d", "--num_segments", "4", "--store_name", "mine"])
    assert (a.focus_arch, a.num_segments, a.shift, a.store_name, a.run_dir) == (
        "x3d_l",
        4,
        False,
        "mine",
        "log/mine",
    )
    assert (
        parse_args(["jester", "RGB", "--model", "tsn", "--focus_arch", "resnet18"]).focus_arch == "resnet18"
    )
    a = parse_args(["--dataset", "fcvid", "--model", "tsn", "--suffix", "try2", "--root_model", "ck"])
    assert a.store_name == "TSN_fcvid_RGB_resnet50_avg_segment8_e50_cos_try2" and a.run_dir.startswith("ck/")


@pytest.mark.parametrize(
    "argv,script,needle",
    [
        (["something", "RGB", "--foo"], "main", "unrecognized arguments: --foo"),
        (["something", "RGB", "--temporal_pool"], "main", "--temporal_pool is not supported"),
        (["something", "RGB", "--dense_sample"], "main", "--dense_sample is not supported"),
        (["something", "RGB", "--test_crops", "4"], "main", "argument --test_crops: invalid choice: 4"),
        (["something", "Flow"], "main", "modality: 'Flow' is not supported"),
        (
            ["something", "RGB", "--consensus_type", "max"],
            "main",
            "argument --consensus_type: invalid choice",
        ),
        (["something", "RGB", "--glance_arch", "vgg"], "main", "unknown backbone 'vgg'"),
        (["something", "RGB", "--fc_dropout", "0.3"], "main", "--fc_dropout is only used by the AN preset"),
        (["something", "RGB", "--data_dir", "d"], "main", "--data_dir is only used by the AN datasets"),
        (["something", "RGB", "--num_segments", "8"], "main", "--num_segments is not used by Uni-AdaFocus"),
        (
            ["something", "RGB", "--num_focus_segments", "40"],
            "main",
            "num_focus_segments (K=40) must be <=",
        ),
        (["--dataset", "actnet", "--num_segments", "48", "--num_glance_segments", "10"], "main", "divisible"),
        (
            ["--dataset", "actnet", "--num_segments", "48", "--num_input_focus_segments", "24"],
            "main",
            "disagree",
        ),
        (
            ["--dataset", "actnet", "fcvid"],
            "main",
            "positional dataset 'fcvid' and --dataset 'actnet' disagree",
        ),
        ([], "main", "the dataset is required"),
        (["ucf", "RGB"], "main", "invalid choice 'ucf'"),
        (["something", "RGB", "--lr", "-1"], "main", "--lr must be > 0"),
        (["something", "RGB", "--patch_size", "300"], "main", "patch_size 300 exceeds input_size 224"),
        (["something", "RGB", "--start-epoch", "50"], "main", "--start-epoch 50 must be in [0, --epochs=50)"),
        (["something", "RGB", "--device", "tpu"], "main", "argument --device"),
        (
            ["something", "RGB", "--criteria", "entropy"],
            "main",
            "--exit_criterion (--criteria) is only used by test_early_exit.py",
        ),
        (["something", "RGB"], "nview", "--resume CHECKPOINT is required by main_nViewEval.py"),
        (["something", "RGB", "--model", "tsn", "--patch_size", "96"], "main", "--patch_size only applies"),
        (
            ["something", "RGB", "--model", "x3d", "--arch", "resnet50"],
            "main",
            "resnet50 does not fit --model x3d",
        ),
        (["something", "RGB", "--glance_size", "256"], "main", "glance_size 256 exceeds input_size 224"),
        (["--dataset", "actnet", "--shift"], "main", "the AN preset has no temporal shift"),
        (["kinetics", "RGB", "--focus_arch", "resnet50"], "main", "the x3d preset needs a clip backbone"),
        (["jester", "RGB", "--glance_arch", "x3d_s"], "main", "the tsm preset needs a 2-D backbone"),
        (["something", "RGB", "--model", "tsn", "--shift"], "main", "choose the baseline instead"),
        (
            ["something", "RGB", "--trust_checkpoint"],
            "main",
            "--trust_checkpoint only applies to the file of",
        ),
        (["something", "RGB", "--dropout", "1.5"], "main", "dropout must be in [0, 1)"),
        (
            ["something", "RGB", "--model", "tsn", "--glance_base_width", "8"],
            "main",
            "--glance_base_width only",
        ),
        (["something", "RGB", "--temp", "2"], "main", "unrecognized arguments: --temp"),  # no abbreviations
    ],
)
def test_bad_input_names_the_flag(argv, script, needle, capsys):
    assert needle in fail(argv, capsys, script)


def test_help_documents_no_ops_and_additions():
    text = build_parser().format_help()
    for needle in (
        "--trust_checkpoint",
        "runs code from the file",
        "--shared_crop",
        "--resize_backend {pil,cv2}",
        "--method",
        "no-op",
        "--root_dataset",
        "ADAFOCUS_DATA",
        "--save_scores",
        "--nproc_per_node",
        "only names the run",
    ):
        assert needle in text
    with pytest.raises(ValueError):
        parse_args(["something", "RGB"], script="train")


def test_preset_table_covers_every_dataset():
    from ops.data import dataset_config as dc

    # the built-in table, and a dataset given by its files
    assert set(dc.DATASETS) | {dc.CUSTOM} == set(DATASETS)
    assert dataset_preset(dc.CUSTOM) == "tsm"
    assert {dataset_preset(d) for d in ("actnet", "fcvid", "minik")} == {"an"} and dataset_preset(
        "kinetics"
    ) == "x3d"


def test_glance_size_follows_input_size_unless_given():
    assert parse_args(["something", "RGB", "--input_size", "192"]).glance_size == 192
    assert parse_args(["something", "RGB", "--glance_size", "112"]).glance_size == 112
    assert parse_args(["kinetics", "RGB"]).glance_size == 160
