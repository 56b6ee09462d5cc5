"""scripts/predict.py: a checkpoint alone predicts video files of any container, for every method, as the
evaluation does; broken videos get an error entry and a non-zero exit status; the picture shows the model's
own input frames and its focus boxes exactly where its actions put them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models import ModelConfig, build_model, config_from_args, config_from_dict
from models.core.patches import deformable_regions
from models.uniadafocus.policies import sample_indices
from ops.data.synthetic import TEMPLATE
from ops.data.transforms import center_view_map
from ops.data.video_io import FrameFolder, read_frames
from ops.demo.frame_pretrain import glyph_actions
from ops.engine.checkpoint import save_checkpoint
from ops.engine.loops import input_spec, to_input
from ops.engine.train import run
from ops.opts import parse_args
from ops.tools.predict import Predictor, exit_thresholds, load_predictor, video_dataset
from ops.tools.predict_run import predict_videos
from ops.tools.visualize import BOX, CAPTION, GAP, LINE, MARGIN, MIN_TILE, PER_ROW
from tests.test_adafocus_v1 import TINY as TINY_V1
from tests.test_custom_dataset import MODEL
from tests.test_model_grads import TINY
from tests.test_video_containers import write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["alpha", "beta", "gamma"]
SMALL = dict(num_classes=3, input_size=64, patch_size=48)
METHODS = {  # tiny models of each Uni-AdaFocus preset and of each baseline
    "uniadafocus-tsm": dict(preset="tsm", **{**TINY["tsm"], **SMALL}),
    "uniadafocus-an": dict(preset="an", **{**TINY["an"], **SMALL}),
    "uniadafocus-x3d": dict(preset="x3d", **{**TINY["x3d"], **SMALL, "focus_arch": "x3d_s", "glance_size": 32}),
    "tsn": dict(preset="tsm", model="tsn", focus_arch="resnet18", focus_base_width=4, num_segments=4),
    "tsm": dict(preset="tsm", model="tsm", focus_arch="mobilenetv2", focus_width_mult=0.25, num_segments=3),
    "x3d": dict(preset="x3d", model="x3d", focus_arch="x3d_s", num_segments=4, x3d_overrides=TINY["x3d"]["x3d_overrides"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def clips(data_root, tmp_path_factory):
    """Synthetic validation videos: two as lossless .mkv, one as MPEG-4 .avi (B-frames), and a broken .mp4."""
    src = os.path.join(data_root, "synthetic")
    out = tmp_path_factory.mktemp("clips")
    with open(os.path.join(src, "annotations.json")) as f:
        annotations = json.load(f)
    paths = {}
    for name, ext, codec, pix in (("val_00000", ".mkv", "ffv1", "bgr0"), ("val_00001", ".mkv", "ffv1", "bgr0"),
                                  ("val_00002", ".avi", "mpeg4", "yuv420p")):  # fmt: skip
        n = annotations[name]["num_frames"]
        frames = read_frames(FrameFolder(os.path.join(src, "frames", name), TEMPLATE), range(1, n + 1))
        paths[name] = str(out / (name + ext))
        write_video(paths[name], frames, codec, pix, {"bf": "2"} if codec == "mpeg4" else {})
    paths["broken"] = str(out / "broken.mp4")
    with open(paths["val_00000"], "rb") as f:
        open(paths["broken"], "wb").write(f.read()[:300])  # a truncated file
    return paths, annotations


def checkpoint(folder: str, cfg: ModelConfig, seed: int = 0) -> str:
    """Saves a randomly initialised model of `cfg` as main.py does (model_config and class names)."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    extra = {"model_config": cfg.to_dict(), "categories": NAMES}
    return save_checkpoint(folder, model, epoch=1, extra=extra)


def expected_size(rows: list[int], side: int) -> tuple[int, int]:
    """(height, width) of a picture with a 2-line header and rows of these many tiles of `side` px."""
    per_row = min(PER_ROW, max(rows))
    height = 2 * MARGIN + 2 * LINE + sum(LINE + -(-n // per_row) * (side + CAPTION + GAP) for n in rows)
    return height, 2 * MARGIN + per_row * (side + GAP) - GAP


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_predicts_and_draws_from_its_checkpoint_alone(method, clips, tmp_path):
    paths, _ = clips
    cfg = ModelConfig(**METHODS[method], **({} if "num_classes" in METHODS[method] else {"num_classes": 3}))
    predictor = load_predictor(checkpoint(str(tmp_path), cfg), device="cpu")
    assert predictor.categories == NAMES and predictor.cfg == cfg
    video = paths["val_00002"]  # the .avi
    (result,), timing = predict_videos(predictor, [video], visualize=str(tmp_path / "pics"), progress=False)
    top = result["top5"]
    assert [name for name, _ in top] and sorted(n for n, _ in top) == NAMES  # 3 classes: all listed
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)
    assert result["gflops"] == pytest.approx(predictor.gflops[-1], abs=1e-6) and result["exit"] is None
    assert result["decode_s"] > 0 and result["model_s"] > 0 and timing["model_s"] > 0
    picture = cv2.imread(result["picture"])
    side = -(-MIN_TILE // cfg.input_size) * cfg.input_size
    if method.startswith("uniadafocus"):
        rows = [cfg.num_glance_segments, cfg.num_focus_segments]
    else:
        rows = [cfg.num_segments]
    assert picture.shape == (*expected_size(rows, side), 3)
    if predictor.model.num_exits == 1:
        with pytest.raises(ValueError, match="one exit"):
            exit_thresholds([1.0], 1)
        return
    e = predictor.model.num_exits
    (late,), _ = predict_videos(
        predictor, [video], thresholds=exit_thresholds([1e9] * (e - 1), e), progress=False
    )
    assert late["exit"] == e - 1 and late["top5"] == top and late["gflops"] == result["gflops"]
    (early,), _ = predict_videos(
        predictor, [video], thresholds=exit_thresholds([-1e9] * (e - 1), e), progress=False
    )
    assert early["exit"] == 0 and early["gflops"] == pytest.approx(predictor.gflops[0], abs=1e-6)
    assert predictor.gflops[0] < result["gflops"]


def test_predictions_equal_the_evaluation_of_the_same_videos(clips, tmp_path):
    paths, annotations = clips
    names = ["val_00000", "val_00001", "val_00002"]
    (tmp_path / "classes.txt").write_text("".join(n + "\n" for n in NAMES))
    rows = [
        f"{os.path.basename(paths[n])} {annotations[n]['num_frames']} {annotations[n]['label']}\n"
        for n in names
    ]
    (tmp_path / "val.txt").write_text("".join(rows))
    argv = ["custom", "RGB", "--categories", str(tmp_path / "classes.txt"), "--val_list", str(tmp_path / "val.txt"),
            "--video_root", os.path.dirname(paths["val_00000"]), "--root_log", str(tmp_path), *MODEL]  # fmt: skip
    args = parse_args(argv + ["--evaluate"])
    ckpt = checkpoint(str(tmp_path / "ckpt"), config_from_args(args, num_classes=3), seed=1)
    run(parse_args(argv + ["--evaluate", "--resume", ckpt, "--save_scores", str(tmp_path / "scores.npz")]))
    scores = np.load(tmp_path / "scores.npz")
    predictor = load_predictor(ckpt, device="cpu")
    results, _ = predict_videos(predictor, [paths[n] for n in names], topk=3, batch_size=2, progress=False)
    probs = torch.from_numpy(scores["logits"]).softmax(-1).numpy()
    for i, result in enumerate(results):
        assert [NAMES.index(name) for name, _ in result["top3"]] == np.argsort(-probs[i]).tolist()
        np.testing.assert_allclose([p for _, p in result["top3"]], np.sort(probs[i])[::-1], rtol=0, atol=2e-6)


def test_command_line_reports_a_broken_video_and_predicts_the_others(clips, tmp_path, capsys):
    paths, _ = clips
    cfg = ModelConfig(**METHODS["uniadafocus-tsm"])
    ckpt = checkpoint(str(tmp_path), cfg)
    videos = [paths["val_00000"], paths["broken"], paths["val_00002"]]
    cmd = [sys.executable, "scripts/predict.py", *videos, "--resume", ckpt, "--quiet", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=ROOT)  # scripts import the project's packages (or `pip install -e .`)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    results = json.loads(lines[-1])
    assert [r["video"] for r in results] == videos
    assert "error" in results[1] and "broken.mp4" in results[1]["error"] and "top5" not in results[1]
    for r in (results[0], results[2]):
        assert "error" not in r and len(r["top5"]) == 3 and r["exit"] is None and r["gflops"] > 0
    assert f"{paths['broken']}: ERROR" in done.stdout and "3 videos, 1 unreadable; decode" in done.stdout
    from scripts.predict import main

    one_exit = checkpoint(str(tmp_path / "tsn"), ModelConfig(**METHODS["tsn"], num_classes=3))
    assert main([videos[0], "--resume", one_exit, "--exit_threshold", "3"]) == 2
    assert "the model has one exit" in capsys.readouterr().err


class _Fixed(nn.Module):
    """Stands in for a policy: returns fixed outputs (expanded over the batch), whatever it is shown."""

    def __init__(self, *outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor):
        b = x.shape[0]  # (B, ...) inputs: feature maps, per-frame vectors (B, T_g, D)
        out = tuple(o.expand(b, *o.shape[1:]) for o in self.outputs)
        return out if len(out) > 1 else out[0]


def test_picture_boxes_are_where_the_actions_put_them_on_the_glyph(clips, tmp_path):
    """The temporal and spatial policies are fixed to a frame that shows the glyph and a region around it;
    the picture must show the model's input frames and the outline exactly at that region, around the glyph."""
    paths, annotations = clips
    s, p, tg, n = 64, 40, 4, 8  # P holds the 28-px framed glyph (32 px in the 64-px view)
    cfg = ModelConfig(
        preset="tsm", num_classes=3, glance_arch="resnet18", focus_arch="resnet18", glance_base_width=8,
        focus_base_width=8, num_glance_segments=tg, num_input_focus_segments=n, num_focus_segments=1,
        input_size=s, patch_size=p, glance_size=s, stn_hidden_dim=8, temporal_hidden_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    predictor = Predictor(model, cfg, NAMES, torch.device("cpu"), "pil", [0.01, 0.02], "test")
    name = "val_00001"
    dataset, _ = video_dataset(predictor, [paths[name]])
    x, _ = dataset.load(0)
    numbers = dataset.frame_numbers(dataset.records[0])[0]
    boxes = annotations[name]["boxes"]
    for j in range(tg):  # the glance bin whose selected candidate shows the glyph
        w = torch.nn.functional.one_hot(torch.tensor([j]), tg).float()
        k = int(sample_indices(w, n, 1)[0, 0])
        if boxes[numbers[tg + k] - 1] is not None:
            break
    else:
        pytest.skip("no selectable frame shows the glyph")
    zoom, shift = center_view_map(80, 64, s, dataset.scale_size)
    glyph = np.float32(boxes[numbers[tg + k] - 1]) * zoom - shift  # [x, y, w, h] in the S-frame
    actions = glyph_actions(torch.from_numpy(glyph)[None], s, p, torch.Generator().manual_seed(0))
    model.temporal_policy = _Fixed(w, w)
    model.spatial_policy = _Fixed(actions)
    (result,), _ = predict_videos(
        predictor, [paths[name]], visualize=str(tmp_path), visualize_video=True, progress=False
    )
    img = cv2.imread(result["picture"])[..., ::-1]
    z = -(-MIN_TILE // s)
    side = s * z
    assert img.shape == (*expected_size([tg, 1], side), 3)
    frames = x.permute(0, 2, 3, 1).numpy().repeat(z, axis=1).repeat(z, axis=2)  # the input, enlarged
    top = MARGIN + 2 * LINE + LINE
    for t in range(tg):  # glance tiles: the input's first T_g frames, untouched
        x0 = MARGIN + t * (side + GAP)
        np.testing.assert_array_equal(img[top : top + side, x0 : x0 + side], frames[t])
    y0 = top + side + CAPTION + GAP + LINE
    tile = img[y0 : y0 + side, MARGIN : MARGIN + side]
    changed = np.any(tile != frames[tg + k], axis=-1)
    assert np.all(tile[changed] == BOX)
    rx, ry, rw, rh = deformable_regions(actions, p, s)[0].tolist()
    bx0, by0, bx1, by1 = round(rx * z), round(ry * z), round((rx + rw) * z) - 1, round((ry + rh) * z) - 1
    outline = np.zeros_like(changed)
    outline[by0 : by1 + 1, bx0 : bx1 + 1] = True
    outline[by0 + 2 : by1 - 1, bx0 + 2 : bx1 - 1] = False  # 2 px wide
    assert np.all(tile[outline] == BOX) and not np.any(changed & ~outline)
    gx, gy, gw, gh = (glyph * z).tolist()
    assert bx0 <= gx and by0 <= gy and gx + gw <= bx1 + 1 and gy + gh <= by1 + 1  # the glyph inside the box
    white = tile[int(gy) + 1 : int(gy + gh) - 1, int(gx) + 1 : int(gx) + 3]  # its white frame, left edge
    assert white.mean() > 190

    with av.open(result["annotated_video"]) as c:
        out = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    hold = round(0.5 * 25)
    assert len(out) == annotations[name]["num_frames"] + hold - 1 and out[0].shape == (64, 80, 3)
    shown = out[numbers[tg + k] - 1]  # the selected frame, boxed where the region lies in the video
    src = (np.float64([rx, ry, rw, rh]) + shift) / zoom
    sx0, sy0, sx1 = round(src[0]), round(src[1]), round(src[0] + src[2]) - 1
    edge = shown[sy0, sx0 : sx1 + 1].astype(int)
    assert (edge[:, 1] - (edge[:, 0] + edge[:, 2]) / 2).mean() > 60  # green


@pytest.mark.parametrize("preset", ["an", "tsm"])
def test_decisions_name_the_input_frames_and_regions_of_the_forward(preset):
    cfg = ModelConfig(preset=preset, **{**TINY[preset], **SMALL})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    glance, candidates = model.input_layout(cfg)
    with torch.no_grad():
        out = model(
            torch.randn(2, glance + candidates, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        )
    d = model.decisions(out)
    tg, k = cfg.num_glance_segments, cfg.num_focus_segments
    assert d["glance"].shape == (2, tg) and d["selected"].shape == (2, k) and d["regions"].shape == (2, k, 4)
    if preset == "an":  # glance frames among the N candidates (one per group of N / T_g), regions per frame
        assert torch.equal(d["glance"], out["glance_indices"]) and torch.equal(
            d["selected"], out["focus_indices"]
        )
        assert d["glance"][0].tolist() == [1 + i * candidates // tg for i in range(tg)]
        actions = out["actions"].reshape(-1, 4)
    else:  # the first T_g inputs are the glance frames; one region for the K frames
        assert d["glance"].tolist() == [list(range(tg))] * 2
        assert torch.equal(d["selected"], out["focus_indices"] + tg)
        actions = out["actions"].repeat_interleave(k, dim=0)
    regions = deformable_regions(actions, cfg.patch_size, cfg.input_size).view(2, k, 4)
    torch.testing.assert_close(d["regions"], regions, rtol=0, atol=0)


def test_a_model_without_policies_has_no_decisions():
    model = build_model(ModelConfig(**METHODS["tsn"], num_classes=3)).eval()
    with torch.no_grad():
        assert model.decisions(model(torch.randn(1, 4, 3, 32, 32))) is None


OTHER_METHODS = {  # tiny models of the other methods of the registry, as dicts of their own config classes
    "adafocus_v2": dict(preset="an", model="adafocus_v2", num_glance_segments=3, num_input_focus_segments=3,
                        num_focus_segments=3, input_size=64, patch_size=32, glance_width_mult=0.25,
                        glance_last_channel=32, focus_base_width=8, stn_hidden_dim=16),
    "adafocus_v1": dict(preset="an", model="adafocus_v1", dataset="actnet", train_stage=3, **TINY_V1),
    "e3d": dict(preset="x3d", model="e3d", focus_arch="mobilenetv2_3d", width_mult=0.2, num_segments=4,
                input_size=64),
}  # fmt: skip


@pytest.mark.parametrize("method", list(OTHER_METHODS))
def test_other_methods_predict_from_their_checkpoint_alone_as_their_forward(method, clips, tmp_path):
    """Predictions of AdaFocus V1 / V2 and a clip network equal the softmax of the model's forward on the
    evaluation view its own input spec samples and normalises."""
    paths, _ = clips
    cfg = config_from_dict({"num_classes": 3, "pretrain": "none", **OTHER_METHODS[method]})
    predictor = load_predictor(checkpoint(str(tmp_path), cfg), device="cpu")
    assert predictor.cfg == cfg
    video = paths["val_00001"]
    (result,), _ = predict_videos(predictor, [video], topk=3, progress=False)
    dataset, errors = video_dataset(predictor, [video])
    spec = input_spec(predictor.model)
    assert not errors and (dataset.sampling, dataset.clip_stride) == (spec.sampling, spec.clip_stride)
    frames = dataset[0][0][None]
    with torch.no_grad():
        probs = predictor.model(to_input(frames, torch.device("cpu"), spec))["logits"]
    probs = probs.softmax(-1)[0]
    assert [NAMES.index(name) for name, _ in result["top3"]] == probs.argsort(descending=True).tolist()
    np.testing.assert_allclose([p for _, p in result["top3"]], probs.sort(descending=True).values, atol=2e-6)
    assert result["gflops"] == pytest.approx(predictor.gflops[-1], abs=1e-6)
