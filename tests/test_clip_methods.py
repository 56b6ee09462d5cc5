"""The clip methods `e3d` (Efficient-3DCNNs) and `tada` (TAdaConv) in the training framework: their samplers,
crops and normalisation (the originals' data conventions), the command lines and recipes, training and
evaluation through the entry points, the originals' checkpoints, and fine-tuning with --ft_portion."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archs import RouteFuncMLP, TAdaConv2d, create_backbone
from models import build_model, config_from_args, config_from_dict
from models.clipnets.model import E3DModel
from ops.data.lists import sample_clip_interval, sample_clip_loop
from ops.data.transforms import E3D_SCALES, e3d_crop_box
from ops.engine.checkpoint import read_checkpoint
from ops.engine.distributed import DistInfo
from ops.engine.evaluate import run_nview
from ops.engine.loops import input_spec, to_input
from ops.engine.optim import build_optimizer
from ops.engine.setup import build, load_dataset_config
from ops.engine.train import run
from ops.opts import parse_args
from tests.run_checks import top1_from_scores, torch_gflops


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread (and do not slow down when the cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_efficient3dcnns_clip_sampler():
    """TemporalCenterCrop / TemporalRandomCrop with loop padding, then every `downsample`-th frame."""
    assert sample_clip_loop(100, 16, 1).tolist() == list(range(43, 59))  # centre: from n//2 - 8 (0-based)
    assert sample_clip_loop(100, 16, 2).tolist() == list(range(35, 66, 2))
    assert sample_clip_loop(10, 16, 1).tolist() == list(range(1, 11)) + list(range(1, 7))  # loop-padded
    start = int(np.random.default_rng(0).integers(0, 100 - 16 - 1 + 1))
    assert sample_clip_loop(100, 16, 1, np.random.default_rng(0)).tolist() == list(
        range(start + 1, start + 17)
    )
    # The original's random start stops one short of n - T: a 17-frame video always starts at its first frame.
    assert all(sample_clip_loop(17, 16, 1, np.random.default_rng(s))[0] == 1 for s in range(20))
    # --n_val_samples 3: windows of T frames every ceil((n - 1 - T) / 2) frames.
    clips = [sample_clip_loop(100, 16, 1, None, c, 3).tolist() for c in range(3)]
    assert clips == [list(range(1, 17)), list(range(43, 59)), list(range(85, 101))]


def test_tadaconv_interval_sampler():
    """linspace(start, start + T * rate - 1, T), truncated; start = mid / c * max / C / uniform in training."""
    assert sample_clip_interval(300, 8, 8).tolist() == [119, 128, 137, 146, 155, 164, 173, 182]
    assert sample_clip_interval(300, 8, 8, None, 0, 10).tolist() == [1, 10, 19, 28, 37, 46, 55, 64]
    assert sample_clip_interval(300, 8, 8, None, 5, 10).tolist() == [119, 128, 137, 146, 155, 164, 173, 182]
    assert sample_clip_interval(30, 8, 8).tolist() == [1, 10, 19, 28, 30, 30, 30, 30]  # clamped to the video
    start = float(np.random.default_rng(3).uniform(0, 236))
    expect = (torch.linspace(start, start + 63, 8).long() + 1).tolist()
    assert sample_clip_interval(300, 8, 8, np.random.default_rng(3)).tolist() == expect


def test_efficient3dcnns_training_crops():
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    side = int(256 * E3D_SCALES[int(ref.integers(5))])
    x, y = round(ref.random() * (340 - side)), round(ref.random() * (256 - side))
    assert tuple(e3d_crop_box(340, 256, rng, "random")) == (x, y, side, side)
    assert E3D_SCALES == pytest.approx([1.0, 2**-0.25, 2**-0.5, 2**-0.75, 0.5], rel=1e-9)
    rng = np.random.default_rng(1)
    boxes = {tuple(e3d_crop_box(340, 256, rng, "corner")) for _ in range(200)}
    positions = {(b[0], b[1]) for b in boxes if b[2] == 256}  # scale 1: centre and the four corners
    assert positions == {(42, 0), (0, 0), (84, 0)}  # on a 256-high frame top and bottom coincide
    half = int(256 * E3D_SCALES[1]) // 2  # centre box: 2 * (side // 2) from (w // 2 - side // 2, ...)
    centre = {tuple(e3d_crop_box(340, 256, rng, "center")) for _ in range(100)}
    assert (170 - half, 128 - half, 2 * half, 2 * half) in centre and all(
        b[0] + b[2] / 2 == 170 for b in centre
    )


def _args(root, tmp_path, model, *extra, script="main"):
    base = ["synthetic", "RGB", "--model", model, "--root_dataset", root, "--root_log", str(tmp_path)]
    return parse_args(base + ["-j", "0", "--seed", "0", "--input_size", "32", *extra], script=script)


def test_input_conventions_of_the_originals(data_root, tmp_path):
    """Efficient-3DCNNs: 0-255 minus the ActivityNet mean, BGR on Kinetics only; TAdaConv: RGB / 0.45 / 0.225."""
    frames = torch.randint(0, 256, (1, 2, 3, 4, 4), dtype=torch.uint8)
    mean = torch.tensor([114.7748, 107.7354, 99.4750]).view(3, 1, 1)
    for dataset, bgr, stride in (("kinetics", True, 1), ("jester", False, 2)):
        args = parse_args([dataset, "RGB", "--model", "e3d", "--root_dataset", str(tmp_path)])
        spec = input_spec(build_model(config_from_args(args, 3)))
        expect = (frames.flip(2) if bgr else frames).float() - mean
        assert torch.allclose(to_input(frames, torch.device("cpu"), spec), expect, atol=1e-5)
        assert (spec.sampling, spec.train_crop, spec.eval_scale, spec.clip_stride) == (
            "loop",
            "corner",
            (1, 1),
            stride,
        )
    model = build_model(config_from_args(_args(data_root, tmp_path, "tada", "--focus_base_width", "8"), 3))
    spec = input_spec(model)
    expect = (frames.float() / 255 - 0.45) / 0.225
    assert torch.allclose(to_input(frames, torch.device("cpu"), spec), expect, atol=1e-5)
    assert (spec.sampling, spec.clip_stride, spec.bgr) == ("interval", 8, False)


def test_command_lines_and_recipes(tmp_path):
    # The Efficient-3DCNNs README's Jester command, translated (README: "Efficient-3DCNNs and TAdaConv").
    cmd = "jester RGB --model e3d --arch mobilenet_3d --width_mult 0.5 --train_crop random --lr 0.1 "
    cmd += "--sample_duration 16 --downsample 2 --batch-size 64 -j 16 --n_val_samples 1"
    args = parse_args(cmd.split() + ["--root_dataset", str(tmp_path)])
    assert args.store_name == "jester_mobilenet_0.5x_RGB_16"  # the original's run name
    assert (args.num_segments, args.downsample, args.num_clips, args.input_size) == (16, 2, 1, 112)
    assert (args.lr, args.momentum, args.dampening, args.nesterov, args.weight_decay) == (
        0.1,
        0.9,
        0.9,
        False,
        1e-3,
    )
    assert (args.lr_type, args.lr_steps, args.epochs, args.pretrain, args.clip_gradient) == (
        "step",
        [39.0, 54.0, 64.0, 69.0, 199.0, 249.0],
        250,
        "none",
        None,
    )
    args = parse_args(["jester", "RGB", "--model", "e3d", "--root_dataset", str(tmp_path)])
    assert (args.downsample, args.train_crop, args.focus_arch) == (
        2,
        None,
        "mobilenetv2_3d",
    )  # README: jester 2
    args = parse_args(
        ["kinetics", "RGB", "--model", "tada", "--arch", "tada2d_r50", "--root_dataset", str(tmp_path)]
    )
    assert (args.num_segments, args.downsample, args.input_size, args.lr, args.nesterov, args.dropout) == (
        8,
        8,
        224,
        0.24,
        True,
        0.5,
    )
    assert (args.weight_decay, args.lr_type, args.epochs, args.pretrain) == (1e-4, "cos", 100, "imagenet")
    args = parse_args(
        ["kinetics", "RGB", "--model", "tada", "--arch", "tadaconvnextv2_t", "--root_dataset", "x"]
    )
    assert (args.num_segments, args.downsample, args.pretrain) == (16, 5, "imagenet")  # ConvNeXt-T IN-1k


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--model", "e3d", "--arch", "resnet18_3d", "--width_mult", "0.5"], "--width_mult applies to"),
        (["--model", "e3d", "--version", "1.0"], "--version applies to squeezenet_3d"),
        (["--model", "e3d", "--ft_portion", "last_layer"], "only applies with --pretrain_path"),
        (["--model", "e3d", "--dropout", "0.3"], "--dropout does not apply to --model e3d"),
        (["--model", "e3d", "--pretrain", "imagenet"], "start from scratch or from --pretrain_path"),
        (["--model", "e3d", "--sample_duration", "8", "--num_segments", "16"], "disagree"),
        (["--model", "tada", "--width_mult", "1"], "--width_mult only applies to --model e3d, not to tada"),
        (
            ["--model", "tada", "--arch", "tadaconvnextv2_t", "--focus_base_width", "8"],
            "applies to a resnet or",
        ),
        (["--model", "tada", "--drop_path", "0.1"], "drop_path applies to the TAdaConvNeXtV2"),
        (
            ["--model", "tada", "--arch", "tadaconvnextv2_t", "--momentum", "0.8"],
            "applies to --optimizer sgd",
        ),
        (["--model", "tada", "--num_segments", "2"], ">= 3 frames"),
        (["--downsample", "2"], "--downsample only applies to --model e3d / tada"),
        (["--model", "x3d", "--arch", "mobilenetv2_3d"], "does not fit --model x3d"),
        (["--model", "e3d", "--nesterov"], "--nesterov needs"),
        (["--model", "e3d", "--evaluate", "--train_crop", "center"], "--train_crop only applies to training"),
    ],
)
def test_flags_the_method_would_ignore_are_refused(flags, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_args(["kinetics", "RGB", "--root_dataset", str(tmp_path), *flags])
    assert message in capsys.readouterr().err


def _e3d_checkpoint(path, arch: str, num_classes: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Writes a released-style Efficient-3DCNNs checkpoint (DataParallel keys); returns its state_dict."""
    torch.manual_seed(seed)
    net = create_backbone(arch, num_classes=num_classes, width_mult=0.25)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"epoch": 10, "arch": "mobilenet", "state_dict": {"module." + k: v for k, v in sd.items()},
                "optimizer": {"state": {}, "param_groups": []}, "best_prec1": torch.tensor(31.7)}, path)  # fmt: skip
    return sd


def test_ft_portion_last_layer_trains_only_the_classifier(tmp_path):
    """As the original's lr-0 groups: with last_layer only `classifier.*` changes (BatchNorm statistics adapt,
    as in the original's training mode); with complete everything does."""
    sd = _e3d_checkpoint(tmp_path / "k600.pth", "mobilenet_3d", 600)
    flags = ["--arch", "mobilenet_3d", "--width_mult", "0.25", "--pretrain_path", str(tmp_path / "k600.pth")]
    for portion in ("last_layer", "complete"):
        args = _args(
            str(tmp_path), tmp_path, "e3d", *flags, "--ft_portion", portion, "--n_finetune_classes", "4"
        )
        model = build_model(config_from_args(args, 4)).load_pretrained()
        assert isinstance(model, E3DModel) and model.net.classifier[0].p == 0.9  # the fine-tuning head
        assert all(torch.equal(model.net.state_dict()[k], v) for k, v in sd.items() if "classifier" not in k)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = build_optimizer(model.param_groups(), args)
        criterion = model.criterion()
        for _ in range(2):
            optimizer.zero_grad()
            loss, _ = criterion(model(torch.randn(2, 4, 3, 32, 32)), torch.tensor([1, 3]))
            loss.backward()
            optimizer.step()
        changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        params = {k for k, _ in model.named_parameters()}
        if portion == "last_layer":
            assert changed & params == {"net.classifier.1.weight", "net.classifier.1.bias"}
            assert any(k.endswith("running_mean") for k in changed)
        else:
            assert changed >= params
    with pytest.raises(ValueError, match="differs from the dataset's 3 classes"):
        config_from_args(_args(str(tmp_path), tmp_path, "e3d", *flags, "--n_finetune_classes", "4"), 3)


def test_e3d_trains_resumes_original_checkpoints_and_evaluates_views(data_root, tmp_path):
    _e3d_checkpoint(tmp_path / "k600.pth", "mobilenet_3d", 600)
    flags = ["--arch", "mobilenet_3d", "--width_mult", "0.25", "--sample_duration", "4", "--downsample", "2"]
    flags += ["--pretrain_path", str(tmp_path / "k600.pth"), "--ft_portion", "last_layer", "-b", "4"]
    args = _args(data_root, tmp_path, "e3d", *flags, "--epochs", "1", "--train_crop", "random")
    metrics = run(args)
    assert args.store_name == "synthetic_mobilenet_0.25x_RGB_4"
    ckpt = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    cfg = ckpt["model_config"]
    assert (ckpt["epoch"], cfg["model"], cfg["num_segments"], cfg["input_size"]) == (1, "e3d", 4, 32)
    # The original's file layout: DataParallel keys without our `net.`, its arch name and epoch count.
    original = {"epoch": 1, "arch": "mobilenet", "best_prec1": torch.tensor(metrics["top1"])}
    original["state_dict"] = {"module." + k[4:]: v for k, v in ckpt["state_dict"].items()}
    torch.save(original, tmp_path / "synthetic_mobilenet_0.25x_RGB_4_best.pth")
    for path in (
        os.path.join(args.run_dir, "ckpt.pth.tar"),
        str(tmp_path / "synthetic_mobilenet_0.25x_RGB_4_best.pth"),
    ):
        scores = str(tmp_path / "one_view.npz")
        evaluate = ["--resume", path, "--evaluate", "--save_scores", scores]
        again = run(_args(data_root, tmp_path, "e3d", *flags[:8], *evaluate))
        # the saved model's accuracy on the validation list, argmax against the list's labels (computed here)
        top1 = top1_from_scores(scores, os.path.join(data_root, "synthetic", "val_videofolder.txt"))
        assert again["top1"] == metrics["top1"] == pytest.approx(top1)
    scores = tmp_path / "scores.npz"
    views = run_nview(
        _args(
            data_root,
            tmp_path,
            "e3d",
            *flags[:8],
            "--resume",
            path,
            "--test_crops",
            "3",
            "--n_val_samples",
            "2",
            "--save_scores",
            str(scores),
            script="nview",
        )  # fmt: skip
    )
    saved = np.load(scores)
    assert views["views"] == 6 and saved["logits"].shape == (9, 3) and saved["exit_logits"].shape == (9, 1, 3)
    # a view: one clip of 4 frames at 32 px through the network (PyTorch's own counter); a video: 6 views
    model = build_model(config_from_dict(ckpt["model_config"])).eval()
    per_view = torch_gflops(model, torch.zeros(1, 4, 3, 32, 32))
    assert views["gflops_per_view"] == pytest.approx(per_view, rel=1e-9)
    assert views["gflops"] == pytest.approx(6 * per_view, rel=1e-9)
    # Efficient-3DCNNs' test.py averages the views' softmax scores: logits = log(mean softmax) of the raw views
    raw = torch.from_numpy(saved["view_logits"])
    assert raw.shape == (9, 6, 3)
    torch.testing.assert_close(
        torch.from_numpy(saved["logits"]).softmax(-1), raw.softmax(-1).mean(1), rtol=1e-5, atol=1e-6
    )
    run_nview(_args(data_root, tmp_path, "e3d", *flags[:8], "--resume", path, "--test_crops", "3",
                    "--n_val_samples", "2", "--save_scores", str(scores), "--view_fusion", "logits", script="nview"))  # fmt: skip
    again = np.load(scores)
    np.testing.assert_array_equal(again["view_logits"], saved["view_logits"])
    np.testing.assert_allclose(again["logits"], saved["view_logits"].mean(1), rtol=1e-6, atol=1e-6)


def test_tada_trains_and_its_original_checkpoints_evaluate(data_root, tmp_path):
    flags = ["--arch", "tada2d_r50", "--focus_base_width", "8", "--num_segments", "3", "--downsample", "2"]
    args = _args(data_root, tmp_path, "tada", *flags, "--epochs", "1", "-b", "4")
    assert args.store_name == "tada2d_r50_3x2_synthetic_e1" and args.nesterov and args.pretrain == "none"
    metrics = run(args)
    ckpt = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    # The official `.pyth` layout: {'model_state': backbone.* / head.*, 'epoch', 'cfg'}, no `module.`.
    state = {k[4:]: v for k, v in ckpt["state_dict"].items()}
    torch.save({"epoch": 1, "model_state": state, "cfg": "{}"}, tmp_path / "checkpoint_epoch_00001.pyth")
    scores = str(tmp_path / "scores.npz")
    again = run(_args(data_root, tmp_path, "tada", *flags, "--resume", str(tmp_path / "checkpoint_epoch_00001.pyth"),
                      "--evaluate", "--save_scores", scores))  # fmt: skip
    top1 = top1_from_scores(scores, os.path.join(data_root, "synthetic", "val_videofolder.txt"))
    assert again["top1"] == metrics["top1"] == pytest.approx(top1)


def test_tada_imagenet_initialisation_factorises_resnet50(tmp_path, monkeypatch):
    """`--pretrain imagenet` reads the 2-D ResNet-50 file (ckpt/resnet50-*.pth under ADAFOCUS_WEIGHTS) into
    TAda2D's shapes; route functions and b_avgpool_bn keep their zero initialisation, the head is new."""
    from archs import resnet50

    src = resnet50(base_width=8)
    (tmp_path / "ckpt").mkdir()
    torch.save(src.state_dict(), tmp_path / "ckpt" / "resnet50-0676ba61.pth")
    monkeypatch.setenv("ADAFOCUS_WEIGHTS", str(tmp_path))
    args = parse_args(
        ["kinetics", "RGB", "--model", "tada", "--focus_base_width", "8", "--root_dataset", "x"]
    )
    model = build_model(config_from_args(args, 400)).load_pretrained()
    net = model.net.backbone
    assert torch.equal(net.conv3.res_2.conv_branch.b.weight[0, 0], src.layer2[1].conv2.weight)
    assert torch.equal(net.conv1.a_bn.running_var, src.bn1.running_var)
    assert not net.conv3.res_2.conv_branch.b_rf.b.weight.any()
    assert not net.conv3.res_2.conv_branch.b_avgpool_bn.weight.any()


def test_tada_activations_flag_gives_the_same_training_step_up_to_rounding(data_root, tmp_path):
    flags = ["--arch", "tada2d_r50", "--focus_base_width", "8", "--num_segments", "3", "--downsample", "2"]
    steps = {}
    for extra in ([], ["--tada_activations"]):
        args = _args(data_root, tmp_path, "tada", *flags, *extra)
        torch.manual_seed(0)
        model, _ = build(args, DistInfo(), load_dataset_config(args))
        convs = [m for m in model.modules() if isinstance(m, TAdaConv2d)]
        assert convs and all(m.calibrate_activations == bool(extra) for m in convs)
        with torch.no_grad():  # calibrations away from one (the route functions start at exactly one)
            for m in model.modules():
                if isinstance(m, RouteFuncMLP):
                    m.b.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        x = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        torch.manual_seed(3)  # the head's dropout
        loss = F.cross_entropy(model.double()(x)["logits"], torch.tensor([0, 1]))
        loss.backward()
        steps[bool(extra)] = (
            loss.detach(),
            [p.grad.clone() for p in model.parameters() if p.grad is not None],
        )
    (loss_g, grads_g), (loss_a, grads_a) = steps[False], steps[True]
    torch.testing.assert_close(loss_a, loss_g, rtol=1e-10, atol=1e-12)  # float64: the same function
    assert len(grads_a) == len(grads_g) > 0
    for a, g in zip(grads_a, grads_g):
        torch.testing.assert_close(a, g, rtol=1e-8, atol=1e-10)
    with pytest.warns(UserWarning, match="--tada_activations does nothing: --model e3d"):
        args = _args(data_root, tmp_path, "e3d", "--tada_activations")
        build(args, DistInfo(), load_dataset_config(args))
