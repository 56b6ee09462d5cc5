"""The Python API (models/__init__.py, ops.tools.predict.Predictor): build a model from a preset or a checkpoint,
load its weights, predict a video file, count GFLOPs; and the installable package (pyproject.toml)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models import ModelConfig, build_model, load_model
from ops.engine.flops import exit_gflops
from ops.tools.predict import Predictor
from ops.tools.predict_run import predict_videos
from tests.test_predict import METHODS, NAMES, checkpoint, clips  # noqa: F401 (clips: fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_build_from_a_preset_and_load_from_a_checkpoint(tmp_path):
    cfg = ModelConfig(**METHODS["uniadafocus-tsm"])
    built = build_model(cfg)
    assert built.training and built.cfg == cfg and built.cfg.preset == "tsm"
    path = checkpoint(str(tmp_path), cfg, seed=3)
    loaded = load_model(path)
    assert not loaded.training and loaded.cfg == cfg
    saved = torch.load(path, weights_only=True)["state_dict"]
    state = loaded.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    torch.manual_seed(0)
    x = torch.randn(2, cfg.num_glance_segments + cfg.num_input_focus_segments, 3, 64, 64)
    reference = build_model(cfg)
    reference.load_state_dict(saved)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["logits"], reference.eval()(x)["logits"], rtol=0, atol=0)
    assert loaded.gflops_breakdown()["exits"] == exit_gflops(cfg)


def test_load_model_names_a_file_without_model_config(tmp_path):
    path = str(tmp_path / "original.pth.tar")
    torch.save({"state_dict": build_model(ModelConfig(**METHODS["uniadafocus-tsm"])).state_dict()}, path)
    with pytest.raises(ValueError, match=f"{path}: no model_config"):
        load_model(path)


def test_predictor_predicts_a_video_file_as_the_script_does(clips, tmp_path):  # noqa: F811
    paths, _ = clips
    cfg = ModelConfig(**METHODS["uniadafocus-tsm"])
    predictor = Predictor.from_checkpoint(checkpoint(str(tmp_path), cfg), device="cpu")
    video = paths["val_00002"]
    one = predictor.predict(video, topk=3)
    (script,), _ = predict_videos(predictor, [video], topk=3, progress=False)
    assert one["video"] == video and [n for n, _ in one["top3"]] == [n for n, _ in script["top3"]]
    np.testing.assert_allclose([p for _, p in one["top3"]], [p for _, p in script["top3"]], rtol=0, atol=1e-6)
    assert sorted(n for n, _ in one["top3"]) == NAMES and one["exit"] is None
    assert one["gflops"] == pytest.approx(script["gflops"], abs=1e-6)
    many = predictor.predict([paths["broken"], video], topk=3, thresholds=[-1e9, -1e8])
    assert "error" in many[0] and "top3" not in many[0]
    assert many[1]["exit"] == 0 and many[1]["gflops"] == pytest.approx(predictor.gflops[0], rel=1e-9)


def test_pyproject_installs_the_three_packages_with_the_requirements():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["dynamic"] == ["dependencies"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    from setuptools import find_packages

    found = find_packages(ROOT, include=project["tool"]["setuptools"]["packages"]["find"]["include"])
    assert {p.split(".")[0] for p in found} == {"archs", "models", "ops"}
    assert {"ops.engine", "ops.tools", "models.core", "models.uniadafocus"} <= set(found)
    scripts = [f for f in os.listdir(os.path.join(ROOT, "scripts")) if f.endswith(".py")]
    for name in scripts:  # scripts import the packages as installed (or from the repository root)
        with open(os.path.join(ROOT, "scripts", name)) as f:
            assert "sys.path" not in f.read(), name
