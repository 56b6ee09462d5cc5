"""AdaFocus V1's command lines: its README's `key=value` form through the one parser, and the five training command
lines of that README run as written (plus small epochs, batch_size, workers, pretrain=none and tiny widths and
sizes) on a tiny ActivityNet-layout dataset, each stage from the previous one's checkpoint; then its evaluation
command, main_nViewEval.py with --save_scores and test_early_exit.py on the result."""

from __future__ import annotations

import os
import shlex

import cv2
import numpy as np
import pytest
import torch

from models import build_model, config_from_args
from models.adafocus_v1.cli import translate_argv
from ops.engine.checkpoint import read_checkpoint
from ops.engine.evaluate import run_early_exit, run_nview
from ops.engine.train import run
from ops.opts import parse_args
from tests.run_checks import run_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The AdaFocus V1 README (ActivityNet sub-project), verbatim.
README = {
    "stage0_glancer": "CUDA_VISIBLE_DEVICES=0,1 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=0 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.01 epochs=15 dist_url=tcp://127.0.0.1:8857 random_patch=true patch_size=128 glance_size=224 eval_freq=5 consensus=gru hidden_dim=1024 pretrain_glancer=true",
    "stage0_focuser": "CUDA_VISIBLE_DEVICES=0,1 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=0 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.01 epochs=15 dist_url=tcp://127.0.0.1:8857 random_patch=true patch_size=128 glance_size=224 eval_freq=5 consensus=gru hidden_dim=1024 pretrain_glancer=false",
    "stage1": "CUDA_VISIBLE_DEVICES=0,1 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=1 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.0005 fc_lr=0.05 epochs=50 dist_url=tcp://127.0.0.1:8857 random_patch=true patch_size=128 glance_size=224 eval_freq=5 consensus=gru hidden_dim=1024 pretrained_glancer=PATH_TO_CHECKPOINTS pretrained_focuser=PATH_TO_CHECKPOINTS",
    "stage2": "CUDA_VISIBLE_DEVICES=0 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=2 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.0005 fc_lr=0.05 epochs=50 random_patch=false patch_size=128 glance_size=224 action_dim=49 eval_freq=5 consensus=gru hidden_dim=1024 resume=PATH_TO_CHECKPOINTS multiprocessing_distributed=false distributed=false",
    "stage3": "CUDA_VISIBLE_DEVICES=0 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=3 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.0005 fc_lr=0.005 epochs=10 random_patch=false patch_size=128 glance_size=224 action_dim=49 eval_freq=5 consensus=gru hidden_dim=1024 resume=PATH_TO_CHECKPOINTS multiprocessing_distributed=false distributed=false",
    "evaluate": "CUDA_VISIBLE_DEVICES=0 python main_dist.py dataset=actnet data_dir=PATH_TO_DATASET train_stage=3 batch_size=64 workers=8 dropout=0.8 lr_type=cos backbone_lr=0.0005 fc_lr=0.005 epochs=10 random_patch=false patch_size=128 glance_size=224 action_dim=49 eval_freq=5 consensus=gru hidden_dim=1024 resume=PATH_TO_CHECKPOINTS multiprocessing_distributed=false distributed=false evaluate=true",
}
SMALL = "epochs=1 batch_size=2 workers=0 pretrain=none"
TINY_KEYS = "num_segments=3 input_size=64 glance_size=64 patch_size=32 hidden_dim=16 hidden_state_dim=16"
TINY_FLAGS = [
    "--glance_width_mult",
    "0.25",
    "--glance_last_channel",
    "16",
    "--focus_base_width",
    "4",
    "--seed",
    "0",
]


def readme_argv(name: str, data: str, *checkpoints: str) -> list[str]:
    """The README line's main_dist.py arguments, PATH_TO_DATASET = data, the PATH_TO_CHECKPOINTS in order."""
    tokens = shlex.split(README[name])
    fills = list(checkpoints)
    out = []
    for token in tokens[tokens.index("main_dist.py") + 1 :]:
        if "PATH_TO_CHECKPOINTS" in token:
            token = token.replace("PATH_TO_CHECKPOINTS", fills.pop(0))
        out.append(token.replace("PATH_TO_DATASET", data))
    assert not fills
    return out


@pytest.fixture(scope="module")
def an_data(tmp_path_factory) -> str:
    """A tiny ActivityNet-layout dataset: 3 classes, 2 training and 2 validation videos of 8 frames (48 x 64)."""
    root = tmp_path_factory.mktemp("actnet")
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for i, split in enumerate(["train"] * 2 + ["val"] * 2):
        name, label = f"{split}{i}", i % 3
        os.makedirs(root / "frames" / name)
        for t in range(1, 9):
            img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            img[..., label] = 255
            cv2.imwrite(str(root / "frames" / name / f"image_{t:05d}.jpg"), img)
        rows[split].append(f"{name},8,{label}")
    (root / "classInd.txt").write_text("".join(f"class{c}\n" for c in range(3)))
    for split, lines in rows.items():
        (root / f"actnet_{split}_split.txt").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def chain(an_data, tmp_path_factory) -> dict:
    """Runs the five README training lines in order; returns {name: checkpoint path} (+ 'args' per stage)."""
    log = str(tmp_path_factory.mktemp("runs"))
    extra = SMALL.split() + TINY_KEYS.split() + TINY_FLAGS + ["--root_log", log]
    out, all_args = {}, {}
    steps = [
        ("stage0_glancer", ()),
        ("stage0_focuser", ()),
        ("stage1", ("stage0_glancer", "stage0_focuser")),  # pretrained_glancer, pretrained_focuser
        ("stage2", ("stage1",)),  # resume
        ("stage3", ("stage2",)),
    ]
    for name, previous in steps:
        argv = readme_argv(name, an_data, *(out[p] for p in previous))
        args = parse_args(argv + extra)
        run(args)
        out[name] = os.path.join(args.run_dir, "ckpt.best.pth.tar")  # the original kept only the best
        all_args[name] = args
    out["args"] = all_args
    out["extra"] = extra
    return out


def _state(path: str) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _same(a: dict, b: dict, prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def test_readme_lines_resolve_to_the_published_settings(an_data):
    args = parse_args(readme_argv("stage1", an_data, "g.pth", "f.pth"))
    assert (args.model, args.dataset, args.data_dir, args.train_stage) == (
        "adafocus_v1",
        "actnet",
        an_data,
        1,
    )
    assert (args.lr, args.fc_lr, args.fc_lr_ratio, args.epochs, args.batch_size) == (
        5e-4,
        0.05,
        100.0,
        50,
        64,
    )
    assert (args.dropout, args.patch_size, args.glance_size, args.gru_hidden_dim, args.eval_freq) == (
        0.8,
        128,
        224,
        1024,
        5,
    )
    assert (args.pretrained_glancer, args.pretrained_focuser, args.weight_decay, args.momentum) == (
        "g.pth",
        "f.pth",
        1e-4,
        0.9,
    )
    assert args.multiprocessing_distributed and args.dist_url == "tcp://127.0.0.1:8857" and args.amp == "fp16"
    assert args.store_name == "AdaFocusV1_actnet_stage1_p128_e50"
    stage2 = parse_args(readme_argv("stage2", an_data, "s1.pth"))
    assert stage2.tune_from == "s1.pth" and not stage2.resume and not stage2.multiprocessing_distributed
    assert (stage2.action_dim, stage2.policy_hidden_dim, stage2.policy_lr, stage2.gamma) == (
        49,
        1024,
        3e-4,
        0.7,
    )
    evaluate = parse_args(readme_argv("evaluate", an_data, "s3.pth"))
    assert evaluate.evaluate and evaluate.resume == "s3.pth" and evaluate.tune_from is None


def test_key_value_form_rules(an_data, capsys):
    base = ["dataset=actnet", f"data_dir={an_data}", "train_stage=1"]
    # later tokens override earlier ones; `key=` is hydra's null (the default)
    assert parse_args(base + ["epochs=3", "epochs=7", "resume="]).epochs == 7
    assert translate_argv(["--dataset", "actnet"]) is None  # not this form
    assert translate_argv(base + ["--glance_width_mult", "0.5"])[-2:] == ["--glance_width_mult", "0.5"]
    for tokens, message in [
        (["epoch=3"], "unknown AdaFocus V1 key 'epoch'"),
        (["clip_grad=5"], "'clip_grad' is not supported: defined but never applied"),
        (["npb=false"], "'npb' is not supported: the original never reads it"),  # no partial BN either way
        (["consensus=fc"], "consensus=fc is not supported"),
        (["random_patch=false"], "random_patch=false does not fit train_stage=1"),
        (["distributed=false"], "distributed=false contradicts"),
        (["amp=maybe"], "amp=maybe: expected true or false"),
        (["pretrain_glancer=true"], "--pretrain_net is not used in --train_stage 1"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(base + tokens)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["dataset=actnet", f"data_dir={an_data}"])
    assert "--train_stage is required to train --model adafocus_v1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["something", "RGB", "--method", "adafocus_v1", "--train_stage", "1"])
    assert "runs on actnet, fcvid, minik, synthetic" in capsys.readouterr().err


def test_main_py_reads_the_key_value_form_from_its_command_line(an_data, capsys):
    status = run_script(
        "main.py", ["dataset=actnet", f"data_dir={an_data}", "train_stage=2", "hidden_dims=8"]
    )
    assert status == 2 and "unknown AdaFocus V1 key 'hidden_dims'" in capsys.readouterr().err


def test_readme_training_lines_run_stage_after_stage(chain):
    s0g, s0f = _state(chain["stage0_glancer"]), _state(chain["stage0_focuser"])
    s1, s2, s3 = (_state(chain[f"stage{i}"]) for i in (1, 2, 3))
    # stage 1 starts from the two stage-0 networks: the glance net stays frozen, the focus net's stage-0 head too
    assert _same(s1, s0g, "glancer.") and _same(s1, s0f, "focuser.net.fc.")
    assert not _same(s1, s0f, "focuser.net.layer1.")  # the focus network trained in stage 1
    # stage 2 trains the policy alone (policy_old then copies it)
    assert _same(s2, s1, "glancer.") and _same(s2, s1, "focuser.net.") and _same(s2, s1, "classifier.")
    assert not _same(s2, s1, "focuser.policy.policy.")
    policy = {k.replace("policy_old.", "policy."): v for k, v in s2.items() if ".policy_old." in k}
    assert _same(s2, policy, "focuser.policy.policy.")
    # stage 3 trains the GRU classifier alone
    assert _same(s3, s2, "glancer.") and _same(s3, s2, "focuser.") and not _same(s3, s2, "classifier.")
    for name in ("stage0_glancer", "stage1", "stage2", "stage3"):
        ckpt = read_checkpoint(chain[name])
        assert ckpt["epoch"] == 1 and ckpt["model_config"]["train_stage"] == int(name[5])
    assert chain["args"]["stage2"].tune_from == chain["stage1"]


def our_page_commands() -> list[list[str]]:
    """The commands of the first `bash` block of this project's page docs/adafocus_v1.md, one argv each."""
    with open(os.path.join(ROOT, "docs", "adafocus_v1.md"), encoding="utf-8") as f:
        text = f.read()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [argv for argv in (shlex.split(line, comments=True) for line in block.splitlines()) if argv]


def test_our_v1_page_shows_the_lines_run_here():
    commands = our_page_commands()
    expected = []  # the V1 README's lines, `python main.py` in place of `python main_dist.py`
    for line in README.values():
        tokens = shlex.split(line)
        expected.append(["python", "main.py"] + tokens[tokens.index("main_dist.py") + 1 :])
    assert commands[: len(expected)] == expected
    evaluation = [argv[:2] for argv in commands[len(expected) :]]
    assert evaluation == [["python", "main_nViewEval.py"], ["python", "test_early_exit.py"]]


def test_readme_evaluation_line_and_the_evaluation_scripts(chain, an_data, tmp_path):
    metrics = run(parse_args(readme_argv("evaluate", an_data, chain["stage3"]) + chain["extra"]))
    # the evaluation lines of our README (the form), with the tiny model's sizes appended
    scores = str(tmp_path / "scores.npz")
    fills = {"DIR": an_data, "CKPT": chain["stage3"], "FILE": scores}
    nview, early_exit = ([fills.get(t, t) for t in argv[2:]] for argv in our_page_commands()[-2:])
    tiny = "--patch_size 32 --num_segments 3 --input_size 64 --glance_size 64 --gru_hidden_dim 16"
    tiny += " --policy_hidden_dim 16"
    tail = tiny.split() + TINY_FLAGS + ["--root_log", str(tmp_path), "-j", "0"]
    result = run_nview(parse_args(nview + tail, script="nview"))
    assert result["mAP"] == pytest.approx(metrics["mAP"]) and result["views"] == 1
    saved = np.load(scores)
    assert saved["logits"].shape == (2, 3) and saved["exit_logits"].shape == (2, 3, 3)
    np.testing.assert_array_equal(saved["logits"], saved["exit_logits"][:, -1])
    assert list(saved["ids"]) == ["val2", "val3"]
    early = parse_args(early_exit + tail, script="early_exit")
    curves = run_early_exit(early)
    assert set(curves) == {"confidence", "entropy"} and len(curves["confidence"]) == 35  # q = 0.5 .. 3.9
    assert os.path.isfile(os.path.join(early.log_dir, "log_early_exit_1views_confidence.csv"))


def _official_layout(state: dict[str, torch.Tensor]) -> dict:
    """Our state_dict as the original code saves it: sub-dicts, torchvision-layout MobileNetV2 keys."""
    inverse = {1: {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}}
    expand = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    glancer = {}
    for key, value in state.items():
        if key.startswith("glancer."):
            parts = key[len("glancer.net.") :].split(".")
            if len(parts) > 3 and parts[0] == "features" and parts[2] == "conv":
                block = int(parts[1])
                parts[3] = inverse.get(block, expand)[parts[3]]
            glancer["net." + ".".join(parts)] = value
    policy = {
        k[len("focuser.policy.policy.") :]: v
        for k, v in state.items()
        if k.startswith("focuser.policy.policy.")
    }
    return {
        "epoch": 11,
        "glancer": glancer,
        "focuser": {k[len("focuser.") :]: v for k, v in state.items() if k.startswith("focuser.")},
        "fc": {k[len("classifier.") :]: v for k, v in state.items() if k.startswith("classifier.")},
        "policy": policy,
        "best_acc": np.float64(0.5),
        "optimizer": None,
        "scaler": None,
    }


def test_an_original_layout_checkpoint_evaluates_like_ours(chain, an_data, tmp_path):
    original = str(tmp_path / "128s3_checkpoint.pth.tar")
    torch.save(_official_layout(_state(chain["stage3"])), original)
    flags = f"--method adafocus_v1 --dataset actnet --data_dir {an_data} --patch_size 32 -j 0 --root_log {tmp_path}"
    flags += " --num_segments 3 --input_size 64 --glance_size 64 --gru_hidden_dim 16 --policy_hidden_dim 16"
    scores = {}
    for name, path in (("ours", chain["stage3"]), ("original", original)):
        scores[name] = str(tmp_path / f"{name}.npz")
        run_nview(
            parse_args(
                flags.split() + TINY_FLAGS + ["--resume", path, "--save_scores", scores[name]], "nview"
            )
        )
    ours, theirs = np.load(scores["ours"]), np.load(scores["original"])
    np.testing.assert_array_equal(ours["exit_logits"], theirs["exit_logits"])


@pytest.mark.parametrize("entries", ["whole", "own entry only"])
def test_original_stage0_files_start_stage1(chain, an_data, tmp_path, entries):
    """Stage-0 files in the original's layout (globalcnn.pth.tar / localcnn.pth.tar: no policy yet; the whole
    checkpoint or only the entry its stage 1 reads) initialise the stage-1 model as our own stage-0 files do."""
    files = {}
    for part in ("glancer", "focuser"):
        layout = _official_layout(_state(chain[f"stage0_{part}"]))
        layout["policy"] = None
        layout["focuser"] = {k: v for k, v in layout["focuser"].items() if k.startswith("net.")}
        if entries != "whole":
            layout = {part: layout[part]}
        files[part] = str(tmp_path / f"{part}.pth.tar")
        torch.save(layout, files[part])
    args = parse_args(readme_argv("stage1", an_data, files["glancer"], files["focuser"]) + chain["extra"])
    state = build_model(config_from_args(args, num_classes=3)).load_pretrained().state_dict()
    assert _same(state, _state(chain["stage0_glancer"]), "glancer.")
    assert _same(state, _state(chain["stage0_focuser"]), "focuser.net.")
    assert not _same(state, _state(chain["stage0_glancer"]), "focuser.net.layer1.")  # each part from its file


def test_the_demo_starts_each_stage_from_the_previous_ones_best_checkpoint(monkeypatch, tmp_path):
    import scripts.demo as demo
    from models import get_method

    seen = []
    monkeypatch.setattr(demo, "run", seen.append)
    common = [
        "synthetic",
        "RGB",
        "--method",
        "adafocus_v1",
        "--root_dataset",
        str(tmp_path),
        "--root_log",
        str(tmp_path),
    ]
    args, ckpt = demo.run_schedule(common, get_method("adafocus_v1").schedule)
    best = [os.path.join(a.run_dir, "ckpt.best.pth.tar") for a in seen]
    assert (seen[2].pretrained_glancer, seen[2].pretrained_focuser) == (best[0], best[1])
    assert (seen[3].tune_from, seen[4].tune_from, ckpt) == (best[2], best[3], best[4])
