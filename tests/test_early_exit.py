import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ops.engine.early_exit import (
    exit_distributions,
    exit_points,
    exit_scores,
    expected_gflops,
    find_thresholds,
    no_exit_point,
    plot_curve,
    random_exit_logits,
    select_exit_logits,
    sweep,
    write_csv,
)
from tests.official import official_exit_gflops

FIX = Path(__file__).parent / "fixtures" / "official"
# Float results (exit distributions, thresholds, GFLOPs, metrics) may differ from the fixture's in the last
# bits: torch vectorises exp, log and sums differently per CPU (AVX2, AVX-512, none). 1e-6 is 8 float32 ulps.
RTOL = 1e-6


def _load(name):
    return json.loads((FIX / name).read_text())


def _cases():
    fx = _load("fn_early_exit.json")
    return [(sub, key) for sub in ("an", "tsm", "x3d") for key in fx[sub]["results"]]


@pytest.fixture(scope="module")
def fixture():
    return _load("fn_early_exit.json")


@pytest.mark.parametrize("sub,key", _cases())
def test_sweep_reproduces_official_early_exit(fixture, sub, key):
    res = fixture[sub]["results"][key]
    num_exits = fixture[sub]["inputs"]["n_exit"]
    z = np.load(FIX / f"fn_early_exit_inputs_{num_exits}exits.npz")
    target = z["val_labels"]
    if sub == "an":  # the AN loader gives [label, -1, -1]
        target = np.stack([target, -np.ones_like(target), -np.ones_like(target)], axis=1)
    metric = "mAP" if res["dataset_arg"] == "actnet" else "top1"
    family = "geometric" if num_exits == 17 else "two_exit"
    preset = {"an": "an", "tsm": "tsm", "x3d": "x3d"}[sub]
    flops = official_exit_gflops(preset, res["patch_size"], res["num_focus_segments"])
    assert flops == res["flops_exits"]
    points = sweep(
        z["train_logits"],
        z["val_logits"],
        target,
        flops,
        family,
        res["criterion"],
        metric,
        random_seed=0 if sub == "an" else None,
    )
    calls = res["calls"]
    assert len(points) == len(calls) == (19 if sub == "an" else 403)
    for p, c in zip(points, calls):
        np.testing.assert_allclose(p["probs"], c["probs"], rtol=RTOL, atol=0)  # float32 exit distribution
        assert p["exit_counts"] == [int(v) for v in c["exp_counts"]]  # integers: exact
        np.testing.assert_allclose(p["thresholds"], c["T"], rtol=RTOL)
        assert p["gflops"] == pytest.approx(c["expected_flops"], rel=RTOL)
        ratio = c["ratio"] if sub == "an" else [c["ratio"], 1 - c["ratio"]]
        np.testing.assert_allclose(p["exit_fractions"], ratio, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose([p["gflops"] for p in points], res["flops_list"], rtol=RTOL)
    np.testing.assert_allclose([p["metric"] for p in points], res["metric_list"], rtol=RTOL)
    if sub == "an":  # random-exit control: Python random.seed(0) once, one shuffle per point
        np.testing.assert_allclose(
            [p["random_metric"] for p in points], res["random_metric_list_python_random_seed0"], rtol=RTOL
        )


def test_official_exit_gflops_tables():
    g = _load("gflops_constants.json")
    for ps in (96, 128, 160, 192):
        assert official_exit_gflops("an", ps, 16) == g["an"]["get_flops"][f"P{ps}"]
        for k in (8, 12, 16):
            assert official_exit_gflops("tsm", ps, k) == g["tsm"]["get_flops"][f"P{ps}_K{k}"]
    assert official_exit_gflops("x3d", 128, 32) == g["x3d"]["get_flops"]["default"]
    assert round(official_exit_gflops("an", 128, 16)[-1], 2) == 27.23
    assert len(official_exit_gflops("an", 96, 4)) == 5
    for bad in (("x3d", 96, 32), ("an", 112, 16), ("tsn", 128, 8)):
        with pytest.raises(ValueError):
            official_exit_gflops(*bad)


def test_exit_scores_criteria():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])  # (1 sample, 2 exits, 3 classes)
    assert exit_scores(logits, "confidence").tolist() == [[2.0, 1.0]]
    p = math.exp(2) / (math.exp(2) + 2)
    ms = exit_scores(logits, "max_softmax")
    assert ms[0, 0].item() == pytest.approx(p, rel=1e-6) and ms[0, 1].item() == pytest.approx(1 / 3, rel=1e-6)
    q = (1 - p) / 2
    ent = exit_scores(logits, "entropy")
    assert ent[0, 0].item() == pytest.approx(p * math.log(p) + 2 * q * math.log(q), rel=1e-5)
    assert ent[0, 1].item() == pytest.approx(-math.log(3), rel=1e-6)
    # softmax underflow: the original's p*log(p) is NaN here, ours is the limit 0
    assert exit_scores(torch.tensor([[[0.0, -200.0]]]), "entropy").item() == 0.0
    with pytest.raises(ValueError):
        exit_scores(logits, "margin")


def test_find_thresholds_hand_example():
    # 5 training samples, 3 exits; target distribution [0.4, 0.4, 0.2] -> out_n = 2, 2
    scores = torch.tensor(
        [[0.9, 0.1, 0.0], [0.8, 0.9, 0.0], [0.1, 0.8, 0.0], [0.2, 0.3, 0.0], [0.3, 0.7, 0.0]]
    )
    t = find_thresholds(scores, torch.tensor([2.0, 2.0, 1.0]))  # normalised inside
    # exit 0 takes samples 0, 1 (T = 0.8); exit 1 ranks the rest 2 (0.8), 4 (0.7), 3 -> T = 0.7
    assert t.tolist() == pytest.approx([0.8, 0.7, -1e8])
    # out_n = floor(5 * 0.1) = 0 -> nobody exits at 0 (T = 1e8)
    t = find_thresholds(scores, torch.tensor([0.1, 0.5, 0.4]))
    assert t[0].item() == 1e8 and t[1].item() == pytest.approx(0.8) and t[2].item() == -1e8
    # first k with score >= T_k, ties included; NaN scores fall through to the last exit
    val = torch.tensor([[0.8, 0.0, 0.0], [0.5, 0.7, 0.0], [0.5, 0.6, 0.0], [float("nan"), float("nan"), 0.0]])
    assert exit_points(val, torch.tensor([0.8, 0.7, -1e8])).tolist() == [0, 1, 2, 2]


def test_exit_distributions():
    geo = exit_distributions("geometric", 17)
    assert [q for q, _ in geo] == [j / 20 for j in range(1, 20)]
    q, probs = geo[9]
    assert probs.dtype == torch.float32 and probs.shape == (17,)
    np.testing.assert_allclose(probs.numpy(), 0.5 ** np.arange(17) / (2 - 0.5**16), rtol=1e-5)
    two = exit_distributions("two_exit", 2)
    assert len(two) == 403 and two[-1][0] == 4e4 and two[0][0] == 0.01
    assert two[99][1].tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError):
        exit_distributions("two_exit", 3)
    with pytest.raises(ValueError):
        exit_distributions("uniform", 2)


def test_random_exit_keeps_counts_and_is_seeded():
    logits = torch.arange(6 * 3 * 1, dtype=torch.float32).view(6, 3, 1)  # value = 3 * sample + exit
    out = random_exit_logits(logits, [3, 1, 2], random.Random(0))
    exits = (out[:, 0] - 3 * torch.arange(6)).long()
    assert torch.bincount(exits, minlength=3).tolist() == [3, 1, 2]
    assert torch.equal(out, random_exit_logits(logits, [3, 1, 2], random.Random(0)))
    with pytest.raises(ValueError):
        random_exit_logits(logits, [3, 1, 1], random.Random(0))
    assert torch.equal(
        select_exit_logits(logits, torch.tensor([2, 0, 1, 0, 0, 2]))[:, 0],
        torch.tensor([2.0, 3.0, 7.0, 9.0, 12.0, 17.0]),
    )
    assert expected_gflops([3, 1, 0], [1.0, 4.0, 9.0]) == pytest.approx(1.75)


def test_csv_plot_and_no_exit(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.standard_normal((40, 2, 5)).astype(np.float32)
    val = rng.standard_normal((30, 2, 5)).astype(np.float32)
    target = rng.integers(0, 5, 30)
    points = sweep(train, val, target, [1.0, 3.0], "two_exit", "max_softmax", "top1", random_seed=1)
    assert all(p["exit_counts"][0] + p["exit_counts"][1] == 30 for p in points)
    assert points[-1]["exit_counts"][0] == 0  # q = 4e4: the whole training split exits at the end
    csv_path = tmp_path / "curve.csv"
    write_csv(points, str(csv_path))
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "gflops,gflops_per_view,metric,exit0,exit1,random_metric"
    assert len(lines) == 404
    first = [float(v) for v in lines[1].split(",")]
    assert first[0] == first[1] == pytest.approx(points[0]["gflops"], abs=1e-6)
    assert first[2] == pytest.approx(points[0]["metric"], abs=1e-4)
    assert first[3] + first[4] == pytest.approx(1.0)
    # 3 views (e.g. X3D --test_crops 3): the per-video total and the per-view cost the papers quote (4.9x3)
    three = [dict(p, gflops=3 * p["gflops"]) for p in points]
    write_csv(three, str(csv_path), views=3)
    rows = [[float(v) for v in line.split(",")] for line in csv_path.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == pytest.approx([3 * p["gflops"] for p in points], abs=1e-5)
    assert [r[1] for r in rows] == pytest.approx([p["gflops"] for p in points], abs=1e-6)
    with pytest.raises(ValueError, match="views"):
        write_csv(points, str(csv_path), views=0)
    gflops, metric = no_exit_point(val, target, [1.0, 3.0], "top1")
    assert gflops == 3.0 and metric == pytest.approx(100 * np.mean(val[:, 1].argmax(1) == target))
    with pytest.raises(ValueError):
        sweep(train, val, target, [1.0, 3.0], "two_exit", "confidence", "top5")
    with pytest.raises(ValueError):
        sweep(train, val, target, [1.0], "two_exit", "confidence", "top1")
    png = tmp_path / "curve.png"
    plot_curve(points, str(png), (gflops, metric), title="synthetic")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
