"""AdaFocus V1 (models/adafocus_v1/): the eval path of the full model against the official code's outputs
(tests/fixtures/adafocus_v1), its checkpoint layout, integer crops, the GRU classifier, the stage-2 rewards,
what each training stage trains, and its GFLOPs."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import build_model
from models.adafocus_v1 import AdaFocusV1Config
from models.adafocus_v1.checkpoint import torchvision_mbv2_key
from models.adafocus_v1.classifier import RecurrentClassifier
from models.adafocus_v1.crops import grid_top_left, integer_crop, random_top_left
from models.adafocus_v1.ppo import grid_actions
from ops.engine.optim import build_optimizer
from tests.official import contract_state_dict, contract_tensor, fixture_clip

FIXTURES = Path(__file__).parent / "fixtures" / "adafocus_v1"
MODEL_FIXTURES = sorted(p.name for p in FIXTURES.glob("v1_an_model_gain*.json"))
TINY = (
    dict(  # ResNet-18 nets of width 4 (few layers: fast on a loaded CPU); the full-size test runs MobileNetV2
        num_classes=3,
        num_segments=3,
        input_size=64,
        glance_size=64,
        patch_size=32,
        glance_arch="resnet18",
        focus_arch="resnet18",
        glance_base_width=4,
        focus_base_width=4,
        gru_hidden_dim=8,
        policy_hidden_dim=8,
        pretrain="none",
    )
)


@functools.cache
def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def v1_config(**values) -> AdaFocusV1Config:
    return AdaFocusV1Config(preset="an", model="adafocus_v1", dataset="actnet", **values)


def tiny_v1(stage: int, **over):
    """A tiny AdaFocus V1 (3 frames of 64 px, 3 classes) with the contract weights; returns (model, input, target)."""
    model = build_model(v1_config(**{**TINY, "train_stage": stage, **over}))
    model.load_state_dict(contract_state_dict(model))
    x = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return model, x, torch.tensor([[1, -1, -1], [2, 0, -1]])


# ---- crops, grid, classifier --------------------------------------------------------------------------------
def test_integer_crop_is_the_slice():
    images = torch.randn(4, 3, 10, 10)
    corners = torch.tensor([[0, 0], [6, 2], [3, 6], [1, 1]])
    patches = integer_crop(images, corners, 4)
    for m, (y, x) in enumerate(corners.tolist()):
        assert torch.equal(patches[m], images[m, :, y : y + 4, x : x + 4])
    with pytest.raises(ValueError, match="leaves the 10 x 10 frame"):
        integer_crop(images, torch.tensor([[0, 0], [7, 0], [0, 0], [0, 0]]), 4)


def test_grid_corners_match_the_official_stage2_patches():
    stage2 = _fixture("v1_an_model_gain1.json")["stage2"]
    actions = torch.tensor(stage2["sampled_actions"]).t()  # (T, B) -> (B, T)
    corners = grid_top_left(grid_actions(49)[actions].reshape(-1, 2), 128, 224).view(*actions.shape, 2)
    assert corners.tolist() == stage2["patch_top_left"]
    assert grid_top_left(grid_actions(49)[torch.tensor([7, 8, 48])], 128, 224).tolist() == [
        [16, 0],
        [16, 16],
        [96, 96],
    ]


def test_random_corners_follow_numpys_stream():
    np.random.seed(7)
    corners = random_top_left(5, 128, 224)
    np.random.seed(7)
    expected = [[np.random.randint(0, 96), np.random.randint(0, 96)] for _ in range(5)]  # y then x
    assert corners.tolist() == expected
    state = np.random.get_state()[2]
    assert random_top_left(3, 224, 224).tolist() == [[0, 0]] * 3 and np.random.get_state()[2] == state


def test_recurrent_classifier_steps_equal_the_full_pass():
    torch.manual_seed(0)
    clf = RecurrentClassifier(6, 5, 4, dropout=0.8).eval()
    feats = torch.randn(2, 4, 6)
    full = clf(feats)
    hidden, steps = torch.zeros(2, 5), []
    before = clf.states(feats)
    for t in range(4):
        torch.testing.assert_close(before[:, t], hidden, rtol=0, atol=1e-6)
        other, same = clf.step(
            torch.randn(2, 6), hidden
        )  # scoring another input does not advance the sequence
        logits, hidden = clf.step(feats[:, t], hidden)
        assert not torch.allclose(other, logits)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=1e-6)
    assert [k for k in clf.state_dict()] == [
        "gru.weight_ih_l0",
        "gru.weight_hh_l0",
        "gru.bias_ih_l0",
        "gru.bias_hh_l0",
        "fc.weight",
        "fc.bias",
    ]


# ---- the full model against the official code -----------------------------------------------------------------
def official_state(fixture: dict) -> dict[str, torch.Tensor]:
    """The fixture's weights on the official GFV keys (contract, gain, policy_old = policy)."""
    state = {k: contract_tensor(k, tuple(s)) for k, s in fixture["state_dict_keys"].items()}
    for key, gain in fixture["meta"]["gain"].items():
        state[key] = state[key] * gain
    for key in state:
        if key.startswith("focuser.policy.policy_old."):
            state[key] = state[key.replace("policy_old", "policy", 1)].clone()
    return state


@pytest.mark.parametrize("name", MODEL_FIXTURES)
def test_eval_path_matches_official(name):
    fixture = _fixture(name)
    model = build_model(v1_config(num_classes=200))  # the published size: MobileNetV2, ResNet-50, P = 128
    model.load_state_dict(
        model.convert_checkpoint({"model_state_dict": official_state(fixture)})["state_dict"]
    )
    model.eval()
    x = torch.stack([fixture_clip(v, f) for v, f in enumerate(fixture["meta"]["frame_indices_1based"])])
    ref = fixture["eval"]
    with torch.no_grad():
        featmap, feat = model.glance(x)
        out = model(x)
    for actual, expected in ((featmap, ref["glance_featmap"]), (feat, ref["glance_feat"])):
        flat = actual.double().flatten()
        assert list(actual.shape) == expected["shape"]
        # sums of ~1e5 non-negative values: float32 rounding of single values leaves ~1e-8 of the sum
        assert flat.sum().item() == pytest.approx(expected["sum"], rel=1e-6)
        assert flat.abs().sum().item() == pytest.approx(expected["abs_sum"], rel=1e-6)
        torch.testing.assert_close(
            flat[-1], torch.tensor(expected["last"], dtype=torch.float64), atol=1e-6, rtol=0
        )
    assert out["actions"].tolist() == ref["actions"]
    assert out["patch_top_left"].tolist() == ref["patch_top_left"]
    torch.testing.assert_close(
        out["action_probs"].double(), torch.tensor(ref["action_probs"]).double(), atol=1e-6, rtol=0
    )
    # 50-layer networks in float32 (measured: 7e-7 on AVX2; logits up to ~1)
    torch.testing.assert_close(
        out["step_logits"].double(), torch.tensor(ref["step_logits"]).double(), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        out["logits"].double(), torch.tensor(ref["last_out"]).double(), atol=1e-5, rtol=0
    )
    assert out["exit_logits"].shape == (2, 16, 200) and model.num_exits == 16
    loss, _ = model.criterion()(out, torch.tensor([[0, -1, -1], [1, -1, -1]]))
    assert loss.item() == pytest.approx(ref["loss_stage3_ce"], abs=1e-5)


@pytest.mark.slow  # full-size PPO step: run with --runslow
def test_stage2_iteration_matches_official():
    """One official stage-2 iteration (np.random.seed(7) for the random patches, torch.manual_seed(1234) for the
    actions): actions, rewards, returns, loss and the policy's gradients."""
    fixture = _fixture("v1_an_model_gain1.json")
    model = build_model(v1_config(num_classes=200, train_stage=2))
    model.load_state_dict(
        model.convert_checkpoint({"model_state_dict": official_state(fixture)})["state_dict"]
    )
    model.train()
    x = torch.stack([fixture_clip(v, f) for v, f in enumerate(fixture["meta"]["frame_indices_1based"])])
    optimizer = model.make_optimizer(None)
    seen, grads = {}, {}
    update, step = model.focuser.policy.update, optimizer.step

    def record_update(rollout, opt):
        seen.update(actions=torch.stack(rollout.actions), rewards=torch.stack(rollout.rewards))
        return update(rollout, opt)

    def record_step(*args, **kwargs):
        grads.update({k: p.grad.clone() for k, p in model.focuser.policy.policy.named_parameters()})
        return step(*args, **kwargs)

    model.focuser.policy.update, optimizer.step = record_update, record_step
    np.random.seed(7)
    torch.manual_seed(1234)
    out, loss, parts = model.training_step(x, torch.tensor([[0, -1, -1], [1, -1, -1]]), optimizer)
    ref = fixture["stage2"]
    assert seen["actions"].tolist() == ref["sampled_actions"]
    torch.testing.assert_close(
        seen["rewards"].double(), torch.tensor(ref["rewards"]).double(), atol=1e-7, rtol=0
    )
    torch.testing.assert_close(
        out["step_logits"].double(), torch.tensor(ref["step_logits"]).double(), atol=1e-5, rtol=0
    )
    assert loss.item() == pytest.approx(ref["update"]["loss_mean"], abs=1e-5)
    assert parts["value_mse"] == pytest.approx(ref["update"]["value_mse"], rel=1e-4)
    for key, grad in grads.items():  # rewards of ~1e-5 carry float32 noise of ~1e-9 into the returns
        assert grad.double().abs().sum().item() == pytest.approx(
            ref["update"]["grads_checksums"][key]["abs_sum"], rel=1e-3
        )


def test_v1_checkpoint_layout_converts_key_by_key():
    layout = _fixture("v1_an_state_dict_keys.json")["sub_dicts"]
    assert {k: len(v) for k, v in layout.items() if isinstance(v, dict)} == {
        "glancer": 314,
        "focuser": 342,
        "fc": 6,
        "policy": 11,
    }
    model = build_model(v1_config(num_classes=200))
    own = model.state_dict()
    # every tensor a distinct constant (expanded scalars: no memory), so the test sees where each one lands
    ids, ckpt = {}, {"epoch": 7, "best_acc": np.float64(74.9)}
    for part in ("glancer", "focuser", "fc", "policy"):
        ckpt[part] = {}
        for key, shape in layout[part].items():
            ids[(part, key)] = float(len(ids) + 1)
            ckpt[part][key] = torch.tensor(ids[(part, key)]).expand(shape)
    converted = model.convert_checkpoint(ckpt)
    assert converted["epoch"] == 0 and converted["best_metric"] == pytest.approx(74.9)
    state = converted["state_dict"]
    assert set(state) == set(own)
    assert all(state[k].shape == own[k].shape for k in own)
    for key in layout["glancer"]:
        ours = "glancer.net." + torchvision_mbv2_key(key[4:])
        assert state[ours].flatten()[0].item() == ids[("glancer", key)]
    assert (
        state["glancer.net.features.1.conv.3.weight"].flatten()[0]
        == ids[("glancer", "net.features.1.conv.1.weight")]
    )
    assert (
        state["glancer.net.features.5.conv.7.bias"].flatten()[0]
        == ids[("glancer", "net.features.5.conv.3.bias")]
    )
    for key in layout["fc"]:
        assert state[f"classifier.{key}"].flatten()[0] == ids[("fc", key)]
    for key in layout["policy"]:  # `policy` wins over the focuser's copies, for both policy and policy_old
        for copy in ("policy", "policy_old"):
            assert state[f"focuser.policy.{copy}.{key}"].flatten()[0] == ids[("policy", key)]
    assert (
        state["focuser.net.layer4.2.conv3.weight"].flatten()[0]
        == ids[("focuser", "net.layer4.2.conv3.weight")]
    )
    model.load_state_dict(state)  # strict
    # a stage-1 file (no policy yet): the policy keeps the model's own values, as the original's strict=False
    stage1 = dict(ckpt, policy=None)
    stage1["focuser"] = {k: v for k, v in ckpt["focuser"].items() if k.startswith("net.")}
    kept = model.convert_checkpoint(stage1)["state_dict"]
    assert torch.equal(
        kept["focuser.policy.policy.actor.0.weight"], own["focuser.policy.policy.actor.0.weight"]
    )
    with pytest.raises(ValueError, match="another model"):
        model.convert_checkpoint(dict(ckpt, fc={}))


# ---- stages ---------------------------------------------------------------------------------------------------
STAGES = {
    "0 glancer": (0, dict(pretrain_net="glancer"), ("glancer.net.",)),
    "0 focuser": (0, dict(pretrain_net="focuser"), ("focuser.net.",)),
    "1": (1, {}, ("focuser.net.", "classifier.")),
    "2": (2, {}, ("focuser.policy.policy.", "focuser.policy.policy_old.")),
    "3": (3, {}, ("classifier.",)),
    "3 finetune_focus": (3, dict(finetune_focus=True), ("focuser.net.", "classifier.")),
    "2 continuous": (2, dict(continuous=True), ("focuser.policy.policy.", "focuser.policy.policy_old.")),
    "3 continuous": (3, dict(continuous=True), ("classifier.",)),
}


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stage_changes_only_its_parameters(name):
    stage, over, trained = STAGES[name]
    torch.manual_seed(0)
    np.random.seed(0)
    model, x, y = tiny_v1(stage, **over)
    args = argparse.Namespace(lr=0.1, momentum=0.9, weight_decay=1e-4)
    optimizer = model.make_optimizer(args) or build_optimizer(model.param_groups(), args)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    if stage == 1:
        assert not model.glancer.training and model.focuser.net.training and model.classifier.training
    own = model.training_step(x, y, optimizer)
    assert (own is not None) == (stage == 2)
    if own is None:
        optimizer.zero_grad()
        out = model(x)
        loss, _ = model.criterion()(out, y)
        loss.backward()
        optimizer.step()
        if stage == 3:  # the policy acts greedily in stage 3: argmax (grid) or the Gaussian mean
            greedy = out["action_probs"] if over.get("continuous") else out["action_probs"].argmax(-1)
            assert torch.equal(out["actions"], greedy)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    heads = ("focuser.net.fc.",) if name != "0 focuser" else ()
    expected = {
        k for k in after if k.startswith(trained) and not k.startswith(heads) and "num_batches" not in k
    }
    if stage == 2:  # only the optimised policy; policy_old then copies it
        expected = {k for k in expected if not k.endswith("num_batches_tracked")}
    changed -= {k for k in changed if k.endswith("num_batches_tracked")}
    assert changed == expected
    if stage == 2:
        for key, value in model.focuser.policy.policy.state_dict().items():
            assert torch.equal(value, model.focuser.policy.policy_old.state_dict()[key])
        assert set(own[2]) >= {"reward", "value_mse", "entropy"} and own[0]["logits"].shape == (2, 3)


def test_stage2_reward_scores_both_patches_from_the_policy_hidden_state():
    model, x, y = tiny_v1(2)
    model.train()
    seen = {}
    update = model.focuser.policy.update
    model.focuser.policy.update = lambda rollout, opt: seen.update(rollout=rollout) or update(rollout, opt)
    np.random.seed(3)
    torch.manual_seed(4)
    optimizer = model.make_optimizer(None)
    model.training_step(x, y, optimizer)
    # the same draws again, the reward rebuilt from a full GRU pass over the policy patches
    model.focuser.policy.update = update
    model2, _, _ = tiny_v1(2)
    model2.train()
    np.random.seed(3)
    torch.manual_seed(4)
    with torch.no_grad():
        featmap, g_feat = model2.glance(x)
        run = model2.act(featmap, sample=True)
        base = torch.stack([random_top_left(2, 32, 64) for _ in range(3)], dim=1)  # per frame: every video
        own = torch.cat([g_feat, model2.focus(x, model2.corners(run.positions))], dim=2)
        other = torch.cat([g_feat, model2.focus(x, base)], dim=2)
        logits = model2.classifier(own)
        hidden = model2.classifier.states(own)
        base_logits = torch.stack([model2.classifier.step(other[:, t], hidden[:, t])[0] for t in range(3)], 1)
    label = torch.tensor([1, 2]).view(2, 1, 1).expand(2, 3, 1)
    reward = F.softmax(logits, -1).gather(2, label) - F.softmax(base_logits, -1).gather(2, label)
    assert torch.equal(torch.stack(seen["rollout"].actions, 1), run.actions)
    torch.testing.assert_close(torch.stack(seen["rollout"].rewards, 1), reward[..., 0], atol=1e-6, rtol=0)


def test_reward_kinds():
    model, _, _ = tiny_v1(2)
    p, base, prev = torch.tensor([0.5, 0.2]), torch.tensor([0.1, 0.4]), torch.tensor([0.3, 0.3])
    assert torch.allclose(model._reward(p, base, prev), p - base)
    model.cfg.reward = "prev"
    assert torch.allclose(model._reward(p, base, prev), p - prev)
    model.cfg.reward = "conf"
    assert torch.equal(model._reward(p, base, prev), p)


def test_stage2_runs_in_one_process_only(monkeypatch, data_root, tmp_path):
    from ops.engine import distributed as D
    from ops.engine import train as T
    from ops.opts import parse_args

    model, _, _ = tiny_v1(2)
    assert "single process" in model.single_process and tiny_v1(3)[0].single_process is None
    args = parse_args(
        ["synthetic", "RGB", "--method", "adafocus_v1", "--train_stage", "2", "--root_dataset", data_root]
        + ["--root_log", str(tmp_path), "-j", "0", "--epochs", "1", "-b", "2", "--num_segments", "3"]
    )
    monkeypatch.setattr(D, "init", lambda a: D.DistInfo(rank=0, world_size=2))
    with pytest.raises(ValueError, match="single process.*2 processes"):
        T.main_worker(args)


def test_random_policy_control_uses_random_patches():
    model, x, _ = tiny_v1(3)
    model.eval()
    model.policy = "random"
    np.random.seed(11)
    with torch.no_grad():
        out = model(x)
    np.random.seed(11)
    assert (
        "actions" not in out
        and out["patch_top_left"].tolist() == random_top_left(6, 32, 64).view(2, 3, 2).tolist()
    )


def test_decisions_are_the_patches_of_every_frame():
    model, x, _ = tiny_v1(3)
    model.eval()
    with torch.no_grad():
        out = model(x)
    chosen = model.decisions(out)
    corners = out["patch_top_left"]  # (2, 3, 2) [y, x]
    assert chosen["glance"].tolist() == chosen["selected"].tolist() == [[0, 1, 2]] * 2
    assert chosen["regions"][..., 0].tolist() == corners[..., 1].float().tolist()  # x
    assert chosen["regions"][..., 1].tolist() == corners[..., 0].float().tolist()  # y
    assert (chosen["regions"][..., 2:] == 32).all()
    assert tiny_v1(0)[0].decisions({"logits": out["logits"]}) is None  # stage 0: whole frames, no patches


# ---- GFLOPs ---------------------------------------------------------------------------------------------------
def test_gflops_per_patch_size():
    from scripts.flops import collect

    gflops = _fixture("gflops_v1_reskd.json")
    rows = collect({f"v1:16@{p}" for p in (96, 128, 160, 192)})
    issue = {96: 17.18, 128: 26.52, 160: 38.53, 192: 53.21}
    macs = gflops["per_frame_macs"]
    for p, total in issue.items():
        row = rows[f"v1:16@{p}"]
        assert row["total"] == pytest.approx(total, rel=0.01)
        assert row["total"] == pytest.approx(gflops["gflops_per_video_T16"][str(p)], abs=1e-3)
        assert row["focus"] * 1e9 / 16 == pytest.approx(macs[f"focus_resnet50_P{p}"], abs=1)
        assert row["exits"] == pytest.approx([k * row["per_frame"] for k in range(1, 17)], rel=1e-12)
    row = rows["v1:16@128"]
    assert row["glance"] * 1e9 / 16 == pytest.approx(macs["glance_mobilenetv2_224_features"], abs=1)
    policy = macs["policy_state_encoder"] + macs["policy_gru"] + macs["policy_actor"]
    assert row["policy"] * 1e9 / 16 == pytest.approx(policy, abs=1)
    assert row["classifier"] * 1e9 / 16 == pytest.approx(
        macs["classifier_gru_3328_1024"] + macs["classifier_fc_1024_200"], abs=1
    )
