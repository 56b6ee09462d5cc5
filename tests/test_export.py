"""Deployment export (scripts/export.py, ops/tools/export.py) and the torch-free ONNX runtime
(ops/tools/onnx_predict.py): for every method, exported graphs against PyTorch on the same frames (logits within
float tolerance, equal exits, frame indices and integer crops, patch regions within tolerance), early exit of
the two-stage export, fixed and dynamic batch, TorchScript, and a real video predicted end to end without torch
exactly as scripts/predict.py predicts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from archs.tadaconv import TAdaConv2d
from models import ModelConfig, build_model
from models.adafocus_v1.config import AdaFocusV1Config
from models.clipnets.config import E3DConfig, TAdaConfig
from ops.data.lists import sample_clip_interval
from ops.engine.checkpoint import save_checkpoint
from ops.engine.loops import input_spec, to_input
from ops.tools.export import export_predictor
from ops.tools.export_check import check_predictor, torch_reference, varied_frames
from ops.tools.onnx_predict import interval_numbers
from ops.tools.predict import Predictor, exit_thresholds, load_predictor, video_dataset
from ops.tools.predict_run import predict_videos
from tests.test_model_grads import TINY, TINY_X3D
from tests.test_predict import NAMES, clips  # noqa: F401 (the clips fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(num_classes=3, input_size=64, patch_size=48, pretrain="none")
UA = dict(glance_arch="resnet18", glance_base_width=4, focus_arch="resnet18", focus_base_width=4)
FOCUS = dict(focus_arch="resnet18", focus_base_width=4)  # the per-frame presets keep their MobileNetV2 glance
CONFIGS = {  # tiny models of every method (ResNet-18 nets of width 4 where the method allows: small graphs)
    "uniadafocus-tsm": lambda: ModelConfig(preset="tsm", **{**TINY["tsm"], **SMALL, **UA}),
    "uniadafocus-an": lambda: ModelConfig(preset="an", **{**TINY["an"], **SMALL, **FOCUS}),
    "uniadafocus-x3d": lambda: ModelConfig(
        preset="x3d", **{**TINY["x3d"], **SMALL, "focus_arch": "x3d_s", "glance_size": 32}
    ),
    "adafocus_v1": lambda: AdaFocusV1Config(
        preset="an", model="adafocus_v1", dataset="actnet", train_stage=3, num_segments=3, glance_size=64,
        gru_hidden_dim=8, policy_hidden_dim=8, **{**SMALL, **UA, "patch_size": 32},
    ),
    "adafocus_v2": lambda: ModelConfig(
        preset="an", model="adafocus_v2", num_glance_segments=4, num_input_focus_segments=4,
        num_focus_segments=4, stn_hidden_dim=16, coarse_to_fine=True, glance_width_mult=0.25,
        glance_last_channel=32, **{**SMALL, **FOCUS, "patch_size": 32},
    ),
    "tsn": lambda: ModelConfig(preset="tsm", model="tsn", focus_arch="resnet18", focus_base_width=4,
                               num_segments=3, **SMALL),
    "tsm": lambda: ModelConfig(preset="tsm", model="tsm", focus_arch="mobilenetv2", focus_width_mult=0.25,
                               num_segments=3, **SMALL),
    "x3d": lambda: ModelConfig(preset="x3d", model="x3d", focus_arch="x3d_s", num_segments=4,
                               x3d_overrides=TINY_X3D, **SMALL),
    "e3d": lambda: E3DConfig(preset="x3d", model="e3d", focus_arch="mobilenet_3d", width_mult=0.25,
                             num_segments=4, downsample=1, **{**SMALL, "input_size": 32}),
    "tada": lambda: TAdaConfig(preset="x3d", model="tada", focus_arch="tada2d_r50", focus_base_width=4,
                               num_segments=3, downsample=2, **{**SMALL, "input_size": 32}),
    "reskd-student": lambda: ModelConfig(preset="tsm", model="tsm", focus_arch="resnet18", focus_base_width=4,
                                         num_segments=3, student_size=48, **SMALL),
}  # fmt: skip
DECIDING = {"uniadafocus-tsm", "uniadafocus-an", "uniadafocus-x3d", "adafocus_v1", "adafocus_v2"}


def spread(model: nn.Module, seed: int = 0) -> nn.Module:
    """Returns `model` in eval mode with random BatchNorm statistics and He-scaled weights, so that a random model
    tells videos apart (different frames, patches and exits per video) and the parity checks can fail."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                if m.affine:  # a zero-initialised BatchNorm (TAda2D's `b_avgpool_bn`) stays small
                    gain = 0.01 if getattr(m, "skip_init", False) else 1.0
                    m.weight.copy_(gain * (0.5 + torch.rand(m.weight.shape, generator=gen)))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d, TAdaConv2d)):
                fan_in = m.weight[0, 0, 0].numel() if isinstance(m, TAdaConv2d) else m.weight[0].numel()
                # TAdaConv's route functions end in a zero-initialised conv (alpha = 1): kept small, so the
                # calibration varies without compounding over the layers
                gain = 0.01 if getattr(m, "skip_init", False) else 1.0
                m.weight.copy_(gain * torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
    return model.eval()


def predictor_of(name: str) -> Predictor:
    """The tiny model `name` as a Predictor (GFLOPs are not counted here: deploy.json only carries them)."""
    torch.manual_seed(0)
    cfg = CONFIGS[name]()
    model = spread(build_model(cfg))
    return Predictor(model, cfg, NAMES, torch.device("cpu"), "pil", [1.0] * model.num_exits, "tiny.pth")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_export_matches_pytorch(name, tmp_path):
    predictor = predictor_of(name)
    model = predictor.model
    manifest = export_predictor(predictor, str(tmp_path), "onnx", batch=None)
    assert set(manifest["graphs"]) == ({"glance", "focus"} if model.staged else {"model"})
    assert model.staged == name.startswith("uniadafocus")  # early exit in stages: Uni-AdaFocus
    result = check_predictor(predictor, str(tmp_path), batch=3)  # traced at batch 2: any batch (or chunks)
    assert result.ok, result.summary()
    if model.num_exits > 1:
        assert result.equal["early-exit exits"]
    if name in DECIDING:  # the decisions compared differ between videos, so their equality means something
        ref = torch_reference(
            model, varied_frames(3, sum(model.input_layout(predictor.cfg)), predictor.cfg.input_size)
        )
        assert "decisions.selected" in result.equal and result.equal["decisions.selected"]
        assert len({r.tobytes() for r in ref["decisions.regions"]}) > 1
    if name == "adafocus_v1":  # integer crops: the corners are compared exactly
        assert result.max_diff["decisions.regions"] == 0.0


def test_early_exit_skips_the_focus_graph_for_videos_that_leave(tmp_path):
    """The two-stage runtime runs the focus graph on the videos that stay only, and reports the same logits and
    exits as PyTorch's deployment path (predict_with_exit)."""
    from ops.tools.export_check import reference_exits
    from ops.tools.onnx_runtime import Deployed

    predictor = predictor_of("uniadafocus-an")
    model = predictor.model
    export_predictor(predictor, str(tmp_path), "onnx")
    x = varied_frames(4, sum(model.input_layout(predictor.cfg)), 64, seed=1)
    with torch.no_grad():
        scores = model(x)["exit_logits"].max(dim=-1).values
    glance = scores[:, 0].sort().values
    th = [float(glance[1] + glance[2]) / 2] + [
        float(scores[:, k].max()) + 1 for k in range(1, model.num_exits - 1)
    ]
    th = exit_thresholds(th, model.num_exits)  # two videos leave at the glance, the others at the last exit
    deployed = Deployed(str(tmp_path))
    seen = []
    run = deployed._run
    deployed._run = lambda graph, feed: (seen.append((graph, len(feed["frames"]))), run(graph, feed))[1]
    logits, exits = deployed.run(x.numpy(), th)
    ref_logits, ref_exits = reference_exits(model, x, th)
    assert seen == [("glance", 4), ("focus", 2)]
    assert exits.tolist() == ref_exits.tolist()
    assert sorted(exits.tolist()) == [0, 0, model.num_exits - 1, model.num_exits - 1]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_tadaconv_calibrated_on_the_activations_equals_the_grouped_form():
    """The form ONNX export uses (alpha on the input channels before one shared convolution, or on the output
    channels after it) is the official grouped convolution of calibrated weights, up to float rounding: TAda2D's
    'cin' 3x3 conv with a calibrated bias and a stride, and TAdaConvNeXtV2's depthwise 'cout' 7x7 conv."""
    torch.manual_seed(0)
    cases = [
        (TAdaConv2d(8, 6, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=True, cal_dim="cin"), 8),
        (TAdaConv2d(8, 8, (1, 7, 7), padding=(0, 3, 3), groups=8, bias=False, cal_dim="cout"), 8),
    ]
    for conv, channels in cases:
        x = torch.randn(2, 8, 3, 9, 9)
        alpha = torch.rand(2, channels, 3, 1, 1) + 0.5
        bias_alpha = torch.rand(2, conv.out_channels, 3, 1, 1) + 0.5
        alpha = [alpha, bias_alpha] if conv.bias is not None else alpha
        grouped = conv(x, alpha)
        conv.calibrate_activations = True
        moved = conv(x, alpha)
        torch.testing.assert_close(moved, grouped, rtol=1e-5, atol=1e-6)


def test_fixed_batch_export_runs_any_number_of_videos(tmp_path):
    predictor = predictor_of("tsn")
    manifest = export_predictor(predictor, str(tmp_path), "onnx", batch=2)
    assert manifest["batch"] == 2
    from ops.tools.onnx_runtime import Deployed

    x = varied_frames(3, 3, 64, seed=2)
    got = Deployed(str(tmp_path)).forward(x.numpy())  # 3 videos: a batch of 2, then 1 padded to 2
    np.testing.assert_allclose(
        got["logits"], torch_reference(predictor.model, x)["logits"], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name", ["uniadafocus-tsm", "adafocus_v1", "tada"])
def test_torchscript_export_matches_pytorch(name, tmp_path):
    predictor = predictor_of(name)
    manifest = export_predictor(predictor, str(tmp_path), "torchscript")
    assert all(g["file"].endswith(".pt") for g in manifest["graphs"].values())
    result = check_predictor(predictor, str(tmp_path), batch=3)
    assert result.ok, result.summary()


def test_interval_sampling_without_torch_matches_the_loader():
    """The runtime's TAdaConv interval clips equal ops.data.lists' for clips shorter than torch's vector width."""
    for t, rate in ((3, 2), (4, 4), (5, 8), (7, 1)):
        for n in range(1, 200):
            assert interval_numbers(n, t, rate).tolist() == sample_clip_interval(n, t, rate).tolist(), (
                n,
                t,
                rate,
            )


def test_cummax_onnx_form_is_exact(tmp_path):
    """aten::cummax has no ONNX operator: its unrolled form gives torch's values and indices (ties: the later)."""
    import onnxruntime as ort

    from ops.tools.export_ops import register_onnx_forms

    class RunningMax(nn.Module):
        def forward(self, x):
            return torch.cummax(x, dim=1)

    register_onnx_forms()
    x = torch.tensor(
        [[[1.0, 5.0], [3.0, 5.0], [3.0, 2.0], [0.0, 7.0]], [[2.0, -1.0], [1.0, -1.0], [4.0, 0.0], [4.0, 0.0]]]
    )
    path = str(tmp_path / "cummax.onnx")
    torch.onnx.export(RunningMax(), (x,), path, dynamo=False, opset_version=20, input_names=["x"])
    values, indices = ort.InferenceSession(path).run(None, {"x": x.numpy()})
    ref = torch.cummax(x, dim=1)
    assert values.tolist() == ref.values.tolist() and indices.tolist() == ref.indices.tolist()


def test_onnx_runtime_predicts_videos_as_predict_py_without_torch(clips, tmp_path):  # noqa: F811
    """scripts/export.py on a checkpoint, then `python -m ops.tools.onnx_predict` in a process where importing
    torch fails: the same top-5 classes, probabilities within 1e-4, GFLOPs and exits as scripts/predict.py,
    with early exit (some videos leave at the glance)."""
    paths, _ = clips
    torch.manual_seed(0)
    cfg = CONFIGS["uniadafocus-tsm"]()
    model = spread(build_model(cfg))
    extra = {"model_config": cfg.to_dict(), "categories": NAMES}
    ckpt = save_checkpoint(str(tmp_path / "run"), model, epoch=1, extra=extra)
    predictor = load_predictor(ckpt, device="cpu")
    videos = [paths["val_00000"], paths["val_00001"], paths["val_00002"], paths["broken"]]
    dataset, _ = video_dataset(predictor, videos[:3])  # the glance threshold: between two videos' scores
    x = to_input(torch.stack([dataset.load(i)[0] for i in range(3)]), torch.device("cpu"), input_spec(model))
    with torch.no_grad():
        g = predictor.model.glance_stage(x)["glance_logits"].max(dim=1).values.sort().values
    threshold = float(g[0] + g[1]) / 2
    out = tmp_path / "export"
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "export.py"), ckpt, "--format", "onnx", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "parity check passed" in run.stdout
    ref, _ = predict_videos(predictor, videos, batch_size=4, thresholds=[threshold, -1e8], progress=False)
    blocker = tmp_path / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the ONNX runtime must not import torch')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    cmd = [
        sys.executable,
        "-m",
        "ops.tools.onnx_predict",
        str(out),
        *videos,
        "--exit_threshold",
        str(threshold),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 1, run.stdout + run.stderr  # the broken video
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["video"] for r in got] == videos and "error" in got[3]
    exits = []
    for r, e in zip(got[:3], ref[:3]):
        assert [n for n, _ in r["top5"]] == [n for n, _ in e["top5"]]
        np.testing.assert_allclose([p for _, p in r["top5"]], [p for _, p in e["top5"]], atol=1e-4)
        assert (r["exit"], r["gflops"], r["num_frames"]) == (e["exit"], e["gflops"], e["num_frames"])
        exits.append(r["exit"])
    assert sorted(exits) == [0, 0, 1]  # two videos left at the glance
