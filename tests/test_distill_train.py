"""ResKD end to end: teachers from their checkpoints (ours, mmaction, TSM), the frozen teacher, a distilled
low-resolution student trained on the synthetic data and evaluated alone (main_nViewEval.py, test_early_exit.py)."""

from __future__ import annotations

import argparse
import os

import pytest
import torch
import torch.nn.functional as F

from models import build_model, get_method
from models.reskd.distill import DistillConfig, Distiller, attach_teacher
from models.reskd.teacher import build_teacher
from ops.engine.checkpoint import read_checkpoint
from ops.engine.evaluate import run_early_exit, run_nview
from ops.engine.optim import model_param_groups
from ops.engine.train import run
from ops.opts import parse_args
from tests.run_checks import logged, top1_from_scores


def _tsn_cfg(frames: int = 2, size: int = 32, **kw):
    values = dict(preset="tsm", model="tsn", dataset="synthetic", num_classes=3, focus_arch="resnet18")
    values |= dict(focus_base_width=4, num_segments=frames, input_size=size, pretrain="none")
    return get_method("tsn").config_cls(**{**values, **kw})


def _to_mmaction(key: str) -> str:
    """torchvision ResNet name -> mmaction ConvModule name (written out independently of models/reskd/teacher.py)."""
    parts = key.split(".")
    if parts[0] in ("conv1", "bn1"):
        return f"conv1.{'conv' if parts[0] == 'conv1' else 'bn'}.{parts[1]}"
    block, leaf = ".".join(parts[:2]), parts[2:]
    if leaf[0] == "downsample":
        return f"{block}.downsample.{'conv' if leaf[1] == '0' else 'bn'}.{leaf[2]}"
    name = leaf[0]
    if name.startswith("conv") and leaf[1] == "net":  # our temporal shift wraps conv1 of each block
        return f"{block}.{name}.conv.net.{leaf[2]}"
    kind = "conv" if name.startswith("conv") else "bn"
    return f"{block}.conv{name[-1]}.{kind}.{leaf[1]}"


@pytest.mark.parametrize("model, prefix", [("tsn", "backbone."), ("tsm", "backbone.high_res_path.")])
def test_a_teacher_in_mmaction_layout_loads(model, prefix, tmp_path):
    """An mmaction recognizer (`backbone.*`, `cls_head.fc_cls.*`) or a ResKD run (its teacher under
    `backbone.high_res_path.`) rebuilds the same network; read back with weights_only."""
    src = build_model(_tsn_cfg(model=model, num_segments=2))
    state = {prefix + _to_mmaction(k): v for k, v in src.base_model.state_dict().items() if "fc" not in k}
    head = "cls_head.fc_cls_t." if "high_res" in prefix else "cls_head.fc_cls."
    state |= {head + k: v for k, v in src.new_fc.state_dict().items()}
    if "high_res" in prefix:  # a ResKD file also holds the student; it is not the teacher
        state |= {
            "backbone.low_res_path.conv1.conv.weight": torch.zeros(1),
            "cls_head.fc_cls.weight": torch.zeros(1),
        }
    path = tmp_path / "teacher.pth"
    torch.save({"meta": {}, "state_dict": state}, path)
    teacher = build_teacher(read_checkpoint(str(path)), str(path), cfg=_tsn_cfg(), frames=2)
    assert teacher.cfg.model == model and teacher.cfg.focus_arch == "resnet18" and teacher.training
    assert teacher.consensus_first == (model == "tsn")  # mmaction's TSN head averages first, its TSM head not
    want = src.state_dict()
    got = teacher.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    with pytest.raises(ValueError, match="--distill x.pth: not a teacher checkpoint"):
        build_teacher({"state_dict": {"foo.weight": torch.zeros(1)}}, "x.pth", cfg=_tsn_cfg(), frames=2)


@pytest.mark.parametrize("teacher_bn", ["train", "eval"])
def test_the_teacher_gets_no_gradient_and_keeps_its_weights(teacher_bn):
    torch.manual_seed(0)
    tcfg = _tsn_cfg(input_size=32)
    ckpt = {"state_dict": build_model(tcfg).state_dict(), "model_config": tcfg.to_dict()}
    model = build_model(_tsn_cfg(input_size=32, student_size=16))
    assert isinstance(model, Distiller) and model.student.cfg.input_size == 16
    model = attach_teacher(
        model, ckpt, "t.pth", DistillConfig("t.pth", teacher_bn=teacher_bn), model.cfg
    ).train()
    teacher = model.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.SGD(
        [p for g in model_param_groups(model, argparse.Namespace(paramwise=None)) for p in g["params"]], 0.1
    )
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in model.student.parameters()}
    assert not grouped & {id(p) for p in teacher.parameters()}
    out = model(torch.randn(2, 2, 3, 32, 32))
    assert out["kd_student"].shape == out["kd_teacher"].shape == (2, 2, 32, 1, 1)
    assert out["kd_student"].requires_grad and not out["kd_teacher"].requires_grad
    loss, parts = model.criterion()(out, torch.tensor([0, 2]))
    assert parts["loss_kd"] == pytest.approx(kd_mse(out["kd_student"], out["kd_teacher"], 100.0), rel=1e-5)
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.student.base_model.conv1.weight.grad.abs().sum() > 0
    after = teacher.state_dict()
    for k, v in before.items():
        moved = not torch.equal(after[k], v)
        # ResKD leaves the teacher's BN in train mode: its statistics move, its weights never
        assert moved == (teacher_bn == "train" and ("running_" in k or "num_batches" in k)), k
    assert not any(k.startswith("teacher") for k in model.state_dict())
    model.eval()
    assert "kd_student" not in model(torch.randn(1, 2, 3, 32, 32))


# ResKD's configs (research notes, section 3): every CNN config weighs the feature MSE by 100, the Swin config the
# per-position KL by 200 at temperature 2.
RESKD_MSE_WEIGHT, RESKD_KL_WEIGHT, RESKD_KL_T = 100.0, 200.0, 2.0


def _distilled_tsn(kd: DistillConfig) -> Distiller:
    torch.manual_seed(0)
    tcfg = _tsn_cfg(input_size=32)
    ckpt = {"state_dict": build_model(tcfg).state_dict(), "model_config": tcfg.to_dict()}
    model = build_model(_tsn_cfg(input_size=32, student_size=16))
    return attach_teacher(model, ckpt, "t.pth", kd, model.cfg).train()


def kd_mse(student: torch.Tensor, teacher: torch.Tensor, weight: float) -> float:
    """ResKD's `w_loss_kd * nn.MSELoss()`: weight x the mean over every element, in float64."""
    return weight * float(((student.detach().double() - teacher.double()) ** 2).mean())


def kd_kl(z_s: torch.Tensor, z_t: torch.Tensor, weight: float, t: float) -> float:
    """ResKD's Swin head: weight * T^2 * KLDivLoss(log_softmax(z_s / T), softmax(z_t / T), 'mean'): the pointwise
    p (log p - log q) summed and divided by positions x classes, in float64."""
    log_p, log_q = F.log_softmax(z_t.double() / t, -1), F.log_softmax(z_s.detach().double() / t, -1)
    return weight * t * t * float((log_p.exp() * (log_p - log_q)).sum()) / z_t.numel()


@pytest.mark.parametrize(
    "loss, weight, temperature",
    [("mse", None, None), ("mse", 7.5, None), ("kl", None, None), ("kl", 3.0, 4.0), ("kl", None, 0.5)],
)
def test_the_distilled_criterion_adds_the_configured_kd_term(loss, weight, temperature):
    """loss = CE(logits) + the KD term at the configured weight (default: ResKD's) and temperature, each part
    computed here from the model's outputs by the formula (not by models/reskd)."""
    model = _distilled_tsn(DistillConfig("t.pth", loss=loss, weight=weight, temperature=temperature))
    # logits of a few units (the heads start at std 0.001): a KL far from rounding noise
    with torch.no_grad():
        for seed, fc in enumerate((model.student.kd_classifier(), model.teacher.kd_classifier())):
            fc.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(seed))
    out = model(torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3)))
    y = torch.tensor([0, 2])
    total, parts = model.criterion()(out, y)
    s, t = out["kd_student"], out["kd_teacher"]
    if loss == "mse":
        kd = kd_mse(s, t, RESKD_MSE_WEIGHT if weight is None else weight)
    else:
        temp = RESKD_KL_T if temperature is None else temperature
        kd = kd_kl(s, t, RESKD_KL_WEIGHT if weight is None else weight, temp)
        # the temperature matters here: the same term at T = 1 is clearly different
        assert abs(kd_kl(s, t, RESKD_KL_WEIGHT if weight is None else weight, 1.0) - kd) > 1e-3 * abs(kd)
    cls = float(F.cross_entropy(out["logits"].detach().double(), y))  # TSN: plain CE on the consensus logits
    assert kd > 1e-4 and parts["loss_kd"] == pytest.approx(kd, rel=1e-5)
    assert parts["loss_cls"] == pytest.approx(cls, rel=1e-5)
    assert total.item() == pytest.approx(cls + kd, rel=1e-5)
    total.backward()
    assert model.student.new_fc.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())
    if loss == "kl":
        assert s.shape == t.shape == (2 * 2 * 1 * 1, 3)  # each classifier applied at every position


def test_distillation_flags_are_refused_where_they_cannot_apply(capsys):
    for argv, msg in [
        (["--kd_loss", "kl"], "--kd_loss only applies with --distill TEACHER_CKPT"),
        (["--distill", "t.pth", "--evaluate"], "--distill only applies to training"),
        (["--distill", "t.pth", "--kd_T", "4"], "--kd_T only applies to --kd_loss kl"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(["synthetic", "RGB", *argv])
        assert msg in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["synthetic", "RGB", "--paramwise", "rkd"], script="nview")
    assert "--paramwise only applies to training" in capsys.readouterr().err


UA = (
    "--eval-freq 1 --input_size 64 --student_size 32 --glance_size 32 --patch_size 16 --num_glance_segments 4 "
    "--num_input_focus_segments 8 --num_focus_segments 2 --glance_base_width 8 --focus_base_width 8 "
    "--stn_hidden_dim 8 --temporal_hidden_dim 8 --batch-size 4 --lr 0.01 -j 0 --seed 0"
).split()


def test_a_distilled_uniadafocus_trains_and_evaluates_without_the_teacher(data_root, tmp_path):
    """Teacher at 64 px -> Uni-AdaFocus whose networks see 32 px (resized in the model); the checkpoint holds the
    student alone and evaluates (main_nViewEval.py, test_early_exit.py) after the teacher file is gone."""
    tcfg = _tsn_cfg(frames=4, size=64, focus_base_width=8)  # frames = the student's glance frames
    teacher_path = str(tmp_path / "teacher.pth")
    torch.save({"state_dict": build_model(tcfg).state_dict(), "model_config": tcfg.to_dict()}, teacher_path)
    common = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", str(tmp_path), *UA]
    args = parse_args([*common, "--epochs", "1", "--distill", teacher_path, "--paramwise", "rkd"])
    pairs = []  # the (student, teacher) maps of every training step, as the criterion receives them
    forward = Distiller.forward

    def recording(self, x):
        out = forward(self, x)
        if "kd_student" in out:
            pairs.append((out["kd_student"].detach().clone(), out["kd_teacher"].clone()))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Distiller, "forward", recording)
        metrics = run(args)
    # 12 training videos in batches of 4; the logged loss_kd is the epoch mean of ResKD's 100 x MSE per step
    (train,) = logged(args.log_dir, "train")
    assert len(pairs) == 3 and pairs[0][0].shape == pairs[0][1].shape == (4, 4, 64, 2, 2)  # (B, T_g, C, h, w)
    expected = sum(kd_mse(s, t, RESKD_MSE_WEIGHT) for s, t in pairs) / len(pairs)
    assert expected > 1e-4 and train["loss_kd"] == pytest.approx(expected, rel=1e-5)
    assert "loss_cls" in train
    os.remove(teacher_path)
    ckpt = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    cfg = ckpt["model_config"]
    assert (ckpt["epoch"], cfg["student_size"], cfg["glance_size"], cfg["input_size"]) == (1, 32, 32, 64)
    assert not any("teacher" in k for k in ckpt["state_dict"])
    resume = ["--resume", os.path.join(args.run_dir, "ckpt.pth.tar")]
    scores = str(tmp_path / "scores.npz")
    again = run_nview(parse_args([*common, *resume, "--save_scores", scores], script="nview"))
    val_list = os.path.join(data_root, "synthetic", "val_videofolder.txt")
    top1 = top1_from_scores(scores, val_list)
    assert again["top1"] == pytest.approx(top1) and metrics["top1"] == pytest.approx(top1)
    curves = run_early_exit(parse_args([*common, *resume, "--criteria", "confidence"], script="early_exit"))
    # the last operating point sends every video to the last exit: the accuracy of the full model
    assert curves["confidence"][-1]["metric"] == pytest.approx(top1)


def test_a_224_teacher_distils_a_112_student_that_evaluates_alone(data_root, tmp_path):
    """The ResKD setting at its own sizes: a TSN teacher on 224 px clips, a TSN student that sees them resized to
    112 px in the model; training runs end to end, the student's checkpoint evaluates with the teacher file gone,
    and its network runs at 112 px."""
    tcfg = _tsn_cfg(frames=2, size=224)
    teacher_path = str(tmp_path / "teacher.pth")
    torch.save({"state_dict": build_model(tcfg).state_dict(), "model_config": tcfg.to_dict()}, teacher_path)
    flags = "--model tsn --arch resnet18 --focus_base_width 4 --num_segments 2 --input_size 224 --student_size 112"
    common = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", str(tmp_path), *flags.split()]
    common += "--pretrain none --batch-size 4 --lr 0.01 -j 0 --seed 0".split()
    args = parse_args([*common, "--epochs", "1", "--distill", teacher_path])
    metrics = run(args)
    os.remove(teacher_path)
    ckpt = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    assert ckpt["model_config"]["student_size"] == 112
    assert not any("teacher" in k for k in ckpt["state_dict"])
    again = run_nview(
        parse_args([*common, "--resume", os.path.join(args.run_dir, "ckpt.pth.tar")], script="nview")
    )
    assert again["top1"] == pytest.approx(metrics["top1"])
    student = build_model(get_method("tsn").config_cls(**{**tcfg.to_dict(), "student_size": 112})).eval()
    seen = []
    conv = next(m for m in student.student.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape[-2:])))
    student(torch.zeros(1, 2, 3, 224, 224))
    assert seen == [(112, 112)]
