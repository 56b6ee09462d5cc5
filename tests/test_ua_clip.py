"""Uni-AdaFocus with an Efficient-3DCNNs glance and a TAda2D focus (the 'x3d' preset's clip path with
`--glance_arch mobilenetv2_3d --focus_arch tada2d_r50`): the glance keeps every frame, each network sees its own
input convention, every parameter trains, the GFLOPs are the parts' counts at their clips, and the published
weights (an Efficient-3DCNNs checkpoint, the factorised ImageNet ResNet-50) load."""

from __future__ import annotations

import pytest
import torch

from archs import create_backbone, resnet50
from models import build_model, config_from_args
from ops.data.transforms import normalize
from ops.engine.flops import gflops_breakdown
from ops.opts import parse_args
from tests.run_checks import torch_gflops

TINY = ["--glance_arch", "mobilenetv2_3d", "--focus_arch", "tada2d_r50", "--glance_width_mult", "0.2"]
TINY += ["--focus_base_width", "8", "--num_glance_segments", "4", "--num_input_focus_segments", "8"]
TINY += ["--num_focus_segments", "3", "--input_size", "64", "--glance_size", "32", "--patch_size", "32"]
TINY += ["--stn_hidden_dim", "8", "--temporal_hidden_dim", "8", "--pretrain", "none"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(tmp_path, *extra):
    args = parse_args(["kinetics", "RGB", "--root_dataset", str(tmp_path), *TINY, *extra])
    torch.manual_seed(0)
    return build_model(config_from_args(args, 5)), args


def test_forward_backward_and_every_parameter_trains(tmp_path):
    model, args = _model(tmp_path)
    assert args.store_name.startswith(
        "UniAdaFocus_kinetics_RGB_mobilenetv2_3d_tada2d_r50_segment4_p32"
    )  # what ran
    x = normalize(torch.randint(0, 256, (2, 12, 3, 64, 64), dtype=torch.uint8))
    model.train()
    out = model(x)
    assert out["exit_logits"].shape == (2, 2, 5) and out["focus_frame_logits"].shape == (2, 3, 5)
    assert out["glance_frame_logits"].shape == (2, 4, 5)  # one per glance frame: no temporal stride
    loss, _ = model.criterion()(out, torch.tensor([1, 3]))
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    assert sorted(k for k in model.state_dict() if "_CNN_head" in k) == [
        "global_CNN_head.1.bias",
        "global_CNN_head.1.weight",
        "local_CNN_head.1.bias",
        "local_CNN_head.1.weight",
    ]
    with torch.no_grad():
        fm = model.global_CNN.featmap(torch.zeros(1, 3, 4, 32, 32))
    assert fm.shape == (1, 1280, 4, 1, 1)


def test_each_network_sees_its_published_input_convention(tmp_path):
    model, _ = _model(tmp_path)
    frames = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    x = normalize(frames)  # what the engine feeds (ImageNet RGB)
    e3d = normalize(
        frames, (114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 1.0, bgr=True
    )  # Kinetics: BGR 0-255
    assert torch.allclose(model.glance_adapter(x), e3d, atol=1e-4)
    tada = normalize(frames, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    assert torch.allclose(model.focus_adapter(x), tada, atol=1e-5)
    assert not any("adapter" in k for k in model.state_dict())


def test_eval_logits_are_the_two_clip_nets_on_their_inputs(tmp_path):
    """Exit 0 is the Efficient-3DCNNs net's own forward on the 4 glance frames (resized to 32 px, BGR 0-255 minus its
    mean); the final logits add the TAda2D net's own forward on the K = 3 patches (RGB / 0.45 / 0.225) cropped from
    the candidates the temporal policy selects (the spec's inverse-CDF rule, written out in tests/test_policies.py)."""
    from models.core.patches import deformable_patch_grid
    from models.uniadafocus.encoders import share_x3d_heads
    from tests.official import contract_state_dict
    from tests.test_policies import reference_selection

    model, _ = _model(tmp_path)
    # nonzero heads, a temporal policy far from uniform
    model.load_state_dict(contract_state_dict(model, 25.0))
    share_x3d_heads(model)  # the per-frame heads copy the nets' classifiers, as after loading weights
    model.eval()
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (2, 12, 3, 64, 64), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        out = model(normalize(frames))
        glance = torch.nn.functional.interpolate(
            frames[:, :4].flatten(0, 1).float(), size=(32, 32), mode="bilinear", align_corners=False
        )
        mean = torch.tensor([114.7748, 107.7354, 99.4750]).view(3, 1, 1)  # B, G, R
        glance = (glance.flip(1) - mean).view(2, 4, 3, 32, 32).transpose(1, 2)
        glance_logits = model.global_CNN(glance)
        thresholds = [(i + 0.5) / 3 for i in range(3)]
        idx = [reference_selection(w, 8, 3, thresholds) for w in out["weights_T"].double().tolist()]
        assert out["focus_indices"].tolist() == idx
        chosen = torch.stack([normalize(frames[b, 4:][idx[b]]) for b in range(2)])  # (2, 3, 3, 64, 64)
        boxes = out["actions"].repeat_interleave(3, dim=0)  # one box per video for its K frames
        patches = deformable_patch_grid(chosen.flatten(0, 1), boxes, 32, 64, 32, 64)
        imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        patches = ((patches * imagenet_std + imagenet_mean) - 0.45) / 0.225
        focus_logits = model.local_CNN(patches.view(2, 3, 3, 32, 32).transpose(1, 2))
    assert glance_logits.shape == focus_logits.shape == (2, 5)
    # logits of about 0.1 (the contract weights): RGB instead of BGR for the glance moves them by 4e-4, the next
    # candidate instead of the chosen one by 3e-2; here the resize and the input conversion run in the other order
    # (rounding: far below 1e-5)
    torch.testing.assert_close(out["glance_logits"], glance_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["exit_logits"][:, 0], glance_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["logits"], glance_logits + focus_logits, atol=1e-5, rtol=1e-5)


def test_gflops_are_the_parts_counted_at_their_clips(tmp_path):
    """Glance and focus cost what PyTorch's own counter (tests/run_checks.py, not fvcore) finds for each net on its
    clip: 4 glance frames at 32 px, K = 3 patches of 32 px."""
    model, _ = _model(tmp_path)
    b = gflops_breakdown(model)
    model.eval()
    glance = torch_gflops(model.global_CNN, torch.zeros(1, 3, 4, 32, 32))
    focus = torch_gflops(model.local_CNN, torch.zeros(1, 3, 3, 32, 32))
    assert b["glance"] == pytest.approx(glance, rel=1e-9) and b["focus"] == pytest.approx(focus, rel=1e-9)
    policies = b["spatial_policy"] + b["temporal_policy"]
    assert b["exits"] == pytest.approx([glance, glance + policies + focus], rel=1e-9)


def test_published_weights_load_and_the_frame_heads_copy_the_classifiers(tmp_path, monkeypatch):
    torch.manual_seed(1)
    e3d = create_backbone("mobilenetv2_3d", num_classes=600, width_mult=0.2)
    (tmp_path / "ckpt").mkdir()
    state = {"module." + k: v for k, v in e3d.state_dict().items()}
    torch.save({"epoch": 1, "arch": "mobilenetv2", "state_dict": state}, tmp_path / "ckpt" / "e3d.pth")
    torch.save(resnet50(base_width=8).state_dict(), tmp_path / "ckpt" / "resnet50-0676ba61.pth")
    monkeypatch.setenv("ADAFOCUS_WEIGHTS", str(tmp_path))
    model, _ = _model(tmp_path, "--pretrain", "imagenet")
    model.cfg.glance_weights = str(tmp_path / "ckpt" / "e3d.pth")
    model.load_pretrained()
    glance = model.global_CNN.state_dict()
    assert all(
        torch.equal(glance[k], v) for k, v in e3d.state_dict().items() if not k.startswith("classifier")
    )
    assert torch.equal(model.global_CNN_head[1].weight, model.global_CNN.classifier[1].weight)
    assert torch.equal(model.local_CNN_head[1].weight, model.local_CNN.head.out.weight)
    assert model.local_CNN.backbone.conv2.res_1.conv_branch.b.weight.shape == (1, 1, 8, 8, 3, 3)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--focus_arch", "squeezenet_3d"], "besides X3D, a Uni-AdaFocus clip net is one of"),
        (["--num_focus_segments", "2"], "needs >= 3 frames"),
        (["--glance_arch", "mbv2"], "the x3d preset needs a clip backbone"),
    ],
)
def test_unfit_clip_nets_are_refused(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["kinetics", "RGB", "--root_dataset", str(tmp_path), *TINY, *flags])
    assert message in capsys.readouterr().err


def test_the_benchmark_pairs_the_variant_with_the_dense_tada2d():
    from models import input_layout
    from ops.tools.benchmark import default_pairs

    pair = default_pairs()["e3d-tada"]
    a, b = pair.adaptive, pair.baseline
    assert (a.glance_arch, a.glance_size, a.focus_arch, a.num_focus_segments, a.patch_size) == (
        "mobilenetv2_3d",
        112,
        "tada2d_r50",
        12,
        128,
    )
    assert sum(input_layout(a)) == pair.adaptive_frames == 16 + 96
    assert (b.model, b.focus_arch, b.input_size) == ("tada", "tada2d_r50", 224)
    assert input_layout(b) == (0, pair.baseline_frames) == (0, 8)
