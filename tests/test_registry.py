"""The method registry and the model interface: a toy method added from outside trains, evaluates, is counted
and rebuilt from its checkpoint through the unchanged entry points; partial BN survives DDP; the AMP scope of each
preset. (That every trainable parameter gets a gradient, so DDP needs no unused-parameter search, is checked with
the training forward in tests/test_model_grads.py.)"""

from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from models import ModelConfig, build_model, config_from_dict, get_method
from models.core.registry import Method, register_method, unregister_method
from ops.engine.checkpoint import read_checkpoint
from ops.engine.evaluate import run_nview
from ops.engine.flops import exit_gflops
from ops.engine.train import run
from ops.opts import build_parser, parse_args
from tests.run_checks import logged, top1_from_scores
from tests.test_model_grads import tiny_input, tiny_model
from tests.toy_method.model import Toy, ToyConfig


@pytest.fixture
def toy():
    from tests import toy_method  # the one import line: importing the package registers the method

    register_method(toy_method.METHOD)  # again after an earlier test's cleanup (the same entry: no error)
    yield toy_method.METHOD
    unregister_method("toy")


def colour_dataset(root) -> list[str]:
    """A linearly separable custom dataset: class c's videos are frames of one solid colour (red, green, blue,
    brightness varying per video), 4 training and 2 validation videos per class; returns its flags."""
    os.makedirs(root / "frames")
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    rows = {"train": [], "val": []}
    for c, colour in enumerate(colours):
        for v in range(6):
            name = f"c{c}_v{v}"
            os.makedirs(root / "frames" / name)
            frame = np.clip(np.array(colour) * (0.7 + 0.1 * v), 0, 255).astype(np.uint8)
            image = np.full((40, 40, 3), frame[::-1])  # OpenCV writes BGR
            for t in range(1, 5):
                cv2.imwrite(str(root / "frames" / name / f"img_{t:05d}.jpg"), image)
            rows["train" if v < 4 else "val"].append(f"{name} 4 {c}\n")
    (root / "classes.txt").write_text("red\ngreen\nblue\n")
    for split, lines in rows.items():
        (root / f"{split}.txt").write_text("".join(lines))
    return ["custom", "RGB", "--categories", str(root / "classes.txt"), "--frames_root", str(root / "frames")]


def test_toy_method_runs_through_the_unchanged_entry_points(toy, tmp_path):
    """The toy method trains on a task it can solve (the frames' mean colour gives the class): the training loss
    falls epoch after epoch and the saved model classifies every validation video (top-1 computed here)."""
    assert "--toy_hidden" in build_parser().format_help()
    data = colour_dataset(tmp_path / "data")
    train_list, val_list = str(tmp_path / "data" / "train.txt"), str(tmp_path / "data" / "val.txt")
    lists = ["--train_list", train_list, "--val_list", val_list]
    common = [*data, "--model", "toy", "--root_log", str(tmp_path), "--toy_hidden", "8", "-j", "0"]
    common += ["--input_size", "32", "--lr", "0.1"]
    args = parse_args([*common, *lists, "--epochs", "4", "-b", "4", "--seed", "0"])
    assert (args.toy_hidden, args.num_segments, args.store_name) == (8, 3, "TOY_custom_RGB_segment3_e4")
    metrics = run(args)
    losses = [r["loss"] for r in logged(args.log_dir, "train")]
    assert len(losses) == 4 and all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]
    assert "glance_top1" not in metrics  # one exit
    ckpt = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    cfg = config_from_dict(ckpt["model_config"])
    assert type(cfg) is ToyConfig and (cfg.toy_hidden, cfg.num_classes, cfg.num_segments) == (8, 3, 3)
    model = build_model(cfg)
    model.load_state_dict(ckpt["state_dict"])
    # default FLOPs of a VideoModel: fvcore over the whole eval forward (T frames x 3 x hidden, then hidden x C)
    assert exit_gflops(model) == [(3 * 3 * 8 + 8 * 3) / 1e9]
    scores = str(tmp_path / "scores.npz")
    resume = ["--resume", args.run_dir + "/ckpt.pth.tar", "--save_scores", scores]
    again = run_nview(parse_args([*common, *lists[2:], *resume], script="nview"))
    assert top1_from_scores(scores, val_list) == 100.0 == metrics["top1"] == again["top1"]
    assert again["gflops"] == pytest.approx(exit_gflops(model)[0])


def test_method_flags_are_refused_for_other_methods(toy, capsys):
    with pytest.raises(SystemExit):
        parse_args(["synthetic", "RGB", "--toy_hidden", "8"])
    assert "--toy_hidden only applies to --model toy, not to uniadafocus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["synthetic", "RGB", "--model", "toy", "--patch_size", "32"])
    # every method that reads --patch_size is named (uniadafocus and the others sharing the flag)
    assert re.search(
        r"--patch_size only applies to --model uniadafocus( / \w+)*, not to toy", capsys.readouterr().err
    )
    with pytest.raises(ValueError, match="already registered"):
        register_method(Method("toy", Toy, "another toy"))
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")


def test_partial_bn_is_frozen_before_ddp_and_survives_train(tmp_path):
    cfg = ModelConfig(
        preset="tsm",
        model="tsn",
        focus_arch="resnet18",
        focus_base_width=4,
        num_classes=3,
        num_segments=2,
        input_size=32,
        partial_bn=True,
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    bns = [m for m in model.base_model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].weight.requires_grad and not any(b.weight.requires_grad for b in bns[1:])
    # a file store: no TCP port to race for (a TCP rendezvous in the test process once hung on a loaded machine)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.1)
        stats = bns[1].running_mean.clone()
        for _ in range(2):  # a second step fails in DDP if a registered parameter got no gradient
            ddp.eval()
            ddp.train()  # what the engine calls each epoch: BN after the first must stay frozen
            assert bns[0].training and not any(b.training for b in bns[1:])
            opt.zero_grad()
            ddp(torch.randn(2, 2, 3, 32, 32))["logits"].sum().backward()
            opt.step()
        assert torch.equal(bns[1].running_mean, stats)  # eval-mode BN: statistics untouched
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("preset,scope", [("an", "backbones"), ("x3d", "backbones"), ("tsm", "model")])
def test_amp_scope(preset, scope):
    model, cfg = tiny_model(preset)
    assert model.amp_scope == scope
    model.train()
    seen = {}
    first_conv = next(m for m in model.global_CNN.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    head = {"an": "global_CNN_fc.1", "tsm": "global_CNN.new_new_fc", "x3d": "global_CNN_head.3"}[preset]
    for name, module in [
        ("backbone", first_conv),
        ("head", model.get_submodule(head)),
        ("policy", model.spatial_policy.encoder[0]),
    ]:
        module.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, o.dtype) and None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tiny_input(cfg))
    assert seen["backbone"] == torch.bfloat16 and seen["policy"] == torch.float32
    assert seen["head"] == (torch.bfloat16 if scope == "model" else torch.float32)
    if scope == "backbones":
        assert out["logits"].dtype == torch.float32 and out["glance_frame_logits"].dtype == torch.float32
