"""GFLOPs accounting: the published figures (within 1%) and the official early-exit constants (within 0.1%)."""

from __future__ import annotations

import json

import pytest
import torch

import scripts.flops as flops_script
from models import ModelConfig
from ops.engine.flops import exit_gflops
from scripts.flops import collect
from scripts.flops import main as flops_main
from tests.official import load_fixture
from tests.test_model_grads import TINY

PAPER = {
    "x3d:16+32@128": 8.8,
    "x3d:16+0@128": 2.4,
    "tsm:8+8@96": 8.8,
    "tsm:8+12@96": 11.8,
    "tsm:8+12@128": 18.8,
    "tsm:8+16@128": 24.2,
    "an:16+16@128": 27.2,
    "tsm_r50:8@224": 32.7,
}


@pytest.fixture(scope="module")
def rows():
    return collect({*PAPER, "an:16+16@96", "an:16+0@128"})


def test_totals_reproduce_the_papers(rows):
    for key, paper in PAPER.items():
        assert rows[key]["total"] == pytest.approx(paper, rel=0.01), key
        assert rows[key]["paper"] == paper


@pytest.mark.parametrize("patch", [96, 128])
def test_an_exits_match_the_official_table(rows, patch):
    official = load_fixture("gflops_constants.json")["an"]["get_flops"][f"P{patch}"]
    exits = rows[f"an:16+16@{patch}"]["exits"]
    assert len(exits) == 17 and exits == pytest.approx(official, rel=1e-3)
    assert rows["an:16+0@128"]["total"] == pytest.approx(official[0], rel=1e-3)


def test_tsm_and_x3d_components_match_the_official_constants(rows):
    consts = load_fixture("gflops_constants.json")
    tsm, c = rows["tsm:8+16@128"], consts["tsm"]["module_constants"]
    assert (tsm["glance"] + tsm["glance_heads"]) / 8 == pytest.approx(
        c["mobileNet_v2_gflops_per_frame"], rel=1e-3
    )
    assert tsm["per_focus_frame"] == pytest.approx(c["resnet_flops_per_frame"][1], rel=1e-3)
    assert tsm["spatial_policy"] == pytest.approx(c["spatial_policy_gflops"], rel=1e-5)
    assert tsm["temporal_policy"] == pytest.approx(c["temporal_policy_gflops"], rel=1e-4)
    assert tsm["exits"] == pytest.approx(consts["tsm"]["get_flops"]["P128_K16"], rel=1e-3)
    assert rows["tsm:8+8@96"]["exits"] == pytest.approx(consts["tsm"]["get_flops"]["P96_K8"], rel=1e-3)
    x3d, c = rows["x3d:16+32@128"], consts["x3d"]["module_constants"]
    assert x3d["glance"] == pytest.approx(c["X3D_S_16_160_160_gflops"], rel=1e-4)
    assert x3d["focus"] == pytest.approx(c["X3D_L_32_128_128_gflops"], rel=1e-4)
    assert x3d["spatial_policy"] == pytest.approx(c["spatial_policy_gflops"], rel=1e-5)
    assert x3d["temporal_policy"] == pytest.approx(c["temporal_policy_gflops"], rel=1e-4)
    assert x3d["exits"] == pytest.approx(consts["x3d"]["get_flops"]["default"], rel=1e-3)
    assert x3d["not_in_total"]["glance_frame_heads"] == pytest.approx(16 * (432 * 2048 + 2048 * 400) / 1e9)


def test_script_prints_table_then_json(rows, capsys, monkeypatch):
    # the rows counted above (a full-size count takes seconds; this test is about the script's output)
    monkeypatch.setattr(flops_script, "collect", lambda keys: {k: rows[k] for k in keys})
    totals = flops_main(["--json", "--keys", "tsm:8+8@96"])
    assert totals == {"tsm:8+8@96": rows["tsm:8+8@96"]["total"]}
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["model", "glance"] and lines[1].startswith("tsm:8+8@96")
    assert json.loads(lines[-1]) == {"tsm:8+8@96": pytest.approx(totals["tsm:8+8@96"], abs=1e-6)}
    with pytest.raises(SystemExit):
        flops_main(["--keys", "tsm:8+9@96"])


def test_exit_gflops_follows_the_model_size():
    cfg = ModelConfig(preset="an", **TINY["an"])
    exits = exit_gflops(cfg)
    assert len(exits) == cfg.num_focus_segments + 1
    steps = [b - a for a, b in zip(exits[1:], exits[2:])]
    assert steps == pytest.approx([steps[0]] * len(steps))  # every focus frame costs the same
    # exit 0 = glance only: T_g frames of the glance net + global MLP + per-step glance heads
    glance_heads = cfg.num_glance_segments * (32 * 4096 + 4096 * 5) / 1e9
    assert exits[0] > glance_heads and exits[1] - exits[0] > steps[0]  # exit 1 also pays for the policies


def test_glance_is_counted_at_the_glance_size():
    base = dict(TINY["tsm"], glance_arch="resnet18", focus_arch="resnet18", input_size=128, patch_size=64)
    full = exit_gflops(ModelConfig(preset="tsm", **base, glance_size=128))
    half = exit_gflops(ModelConfig(preset="tsm", **base, glance_size=64))
    assert half[0] / full[0] == pytest.approx(0.25, abs=0.03)  # exit 0: the glance net (+ tiny heads)
    # a finer glance map (output stride 16) costs more glance MACs and a larger spatial policy
    fine = exit_gflops(ModelConfig(preset="tsm", **base, glance_size=64, glance_output_stride=16))
    assert fine[0] > half[0] and fine[1] - fine[0] > half[1] - half[0]


def _models_of_every_kind():
    """(name, tiny model) for each way a model is counted: Uni-AdaFocus an / tsm / x3d, a dense baseline (its
    whole forward traced), AdaFocus V1 and V2 (GRUs, policy encoders) and a clip network (Efficient-3DCNNs)."""
    from models import build_model, config_from_dict
    from tests.test_adafocus_v1 import TINY as V1_TINY
    from tests.test_adafocus_v1 import v1_config
    from tests.test_adafocus_v2 import tiny as v2_tiny

    for preset in ("an", "tsm"):
        yield (
            f"uniadafocus-{preset}",
            build_model(ModelConfig(preset=preset, **TINY[preset], pretrain="none")),
        )
    # X3D: counted at T = 1 and 2 (x3d_clip_macs); an X3D-S focus net traces in half the time of X3D-L
    x3d = ModelConfig(preset="x3d", **TINY["x3d"], focus_arch="x3d_s", pretrain="none")
    yield "uniadafocus-x3d", build_model(x3d)
    yield (
        "tsm-baseline",
        build_model(
            ModelConfig(
                preset="tsm", model="tsm", num_classes=5, num_segments=4, focus_base_width=8, pretrain="none"
            )
        ),
    )
    yield "adafocus_v1", build_model(v1_config(**{**V1_TINY, "train_stage": 2}))
    for preset in ("an", "tsm"):
        yield f"adafocus_v2-{preset}", v2_tiny(preset)[0]
    yield (
        "e3d",
        build_model(
            config_from_dict(
                dict(
                    preset="x3d",
                    model="e3d",
                    focus_arch="mobilenet_3d",
                    width_mult=0.5,
                    num_classes=5,
                    pretrain="none",
                )
            )
        ),
    )


def test_exit_gflops_of_a_model_on_another_device_or_dtype():
    # A model moved to another device (CUDA after `setup_eval`) is counted where it lies: the zero clips the count
    # traces follow the model's device and dtype. A float64 model stands in for the other device (a float32 clip
    # in a float64 model fails the same way a CPU clip in a CUDA model does), and gives the same count.
    for name, model in _models_of_every_kind():
        expected = exit_gflops(model)
        assert exit_gflops(model.double()) == pytest.approx(expected, rel=1e-12), name
        assert all(p.dtype == torch.float64 for p in model.parameters()), (
            name
        )  # counted in place, not on a copy
