"""The recurrent actor-critic and its PPO update (models/adafocus_v1/ppo.py) against runs of the official AdaFocus V1 code
(tests/fixtures/adafocus_v1: v1_ppo_discrete.json, the ActivityNet code's discrete policy; ppo_continuous_reference
.json, the Something-Something code's Gaussian policy with BatchNorm). Same weights (the contract), same inputs,
same seeds: actions exactly, probabilities, returns, the loss, every gradient and the weights after the Adam step.
"""

from __future__ import annotations

import copy
import functools
import json
import zlib
from pathlib import Path

import pytest
import torch

from models.adafocus_v1.ppo import (
    BETAS,
    POLICY_LR,
    ActorCritic,
    PPOAgent,
    Rollout,
    grid_actions,
    normalised_returns,
    ppo_loss,
)
from tests.official import contract_tensor

FIXTURES = Path(__file__).parent / "fixtures" / "adafocus_v1"
NOISE_GRAD = 1e-6  # a reference gradient below this everywhere is rounding noise of an exact 0
ATOL = 1e-6  # float32 values of magnitude <= 4 through a few small layers (measured: <= 7.2e-7 on AVX2)


@functools.cache
def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _close(actual: torch.Tensor, expected, atol: float = ATOL) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64).reshape(actual.shape)
    torch.testing.assert_close(actual.detach().double(), expected, atol=atol, rtol=0)


def _brief_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The fixture's 'brief' weight rule: randn(shape, generator=crc32(key)) * 0.02 for every entry."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode()))) * 0.02


def _agent(variant: dict, rule) -> PPOAgent:
    c = variant["meta"]["config"]

    def make() -> ActorCritic:
        return ActorCritic(c["feature_dim"], c["map_hw"], c["hidden_state_dim"], num_actions=c["action_dim"])

    policy = make()
    state = {k: rule(k, tuple(shape)) for k, shape in variant["state_dict_keys"].items()}
    for key, gain in variant["meta"]["gain"].items():
        state[key] = state[key] * gain
    policy.load_state_dict(state, strict=True)
    return PPOAgent(policy, make())


def _greedy(agent: PPOAgent, states: torch.Tensor) -> tuple[list, torch.Tensor]:
    hidden, actions, probs = None, [], []
    for t in range(states.shape[0]):
        action, logprob, out, hidden = agent.select(states[t], hidden, sample=False)
        assert logprob is None
        actions.append(action)
        probs.append(out)
    return torch.stack(actions).tolist(), torch.stack(probs)


def test_grid_actions_are_the_official_tables():
    grid = grid_actions(49)
    assert grid.shape == (49, 2) and grid.dtype == torch.float32
    assert grid[8].tolist() == [torch.tensor(1 / 6).item()] * 2  # a = 8 -> [1/6, 1/6]
    assert (
        grid[0].tolist() == [0.0, 0.0] and grid[48].tolist() == [1.0, 1.0] and grid[6].tolist() == [0.0, 1.0]
    )
    assert grid_actions(25)[7].tolist() == [0.25, 0.5]
    with pytest.raises(ValueError, match="square"):
        grid_actions(50)


@pytest.mark.parametrize("name", ["gain1", "gain15", "brief002"])
def test_discrete_ppo_matches_official(name):
    data = _load("v1_ppo_discrete.json")
    variant = data[name]
    agent = _agent(variant, _brief_tensor if name == "brief002" else contract_tensor)
    inputs = variant.get("inputs", data["gain1"]["inputs"])  # the copy keeps one set (identical for all)
    states = torch.tensor(inputs["states"])  # (T, B, F, H, H)
    rewards = torch.tensor(inputs["rewards"])[:, 0]  # (T, B)

    actions, probs = _greedy(agent, states)
    assert actions == variant["greedy_actions_before"]
    _close(probs, variant["greedy_probs_before"])

    torch.manual_seed(1234)  # the fixture's sampling_seed, right before the T training steps
    rollout, hidden, probs = Rollout(), None, []
    for t in range(states.shape[0]):
        action, logprob, out, hidden = agent.select(states[t], hidden, sample=True)
        rollout.states.append(states[t])
        rollout.actions.append(action)
        rollout.logprobs.append(logprob)
        rollout.rewards.append(rewards[t])
        probs.append(out)
    assert torch.stack(rollout.actions).tolist() == variant["sampled_actions"]
    _close(torch.stack(rollout.logprobs), variant["sampled_logprobs"])
    _close(torch.stack(probs), variant["train_probs"])

    update = variant["update"]
    returns = normalised_returns(torch.stack(rollout.rewards), 0.7)
    _close(returns, update["returns_normalised"])
    policy = agent.policy
    logprobs, values, entropy = policy.evaluate(torch.stack(rollout.states), torch.stack(rollout.actions))
    _close(logprobs, update["eval_logprobs"])
    _close(values, update["eval_state_values"])
    _close(entropy, update["eval_entropy"])
    loss, mse = ppo_loss(logprobs, torch.stack(rollout.logprobs), values, entropy, returns)
    assert loss.item() == pytest.approx(update["loss_mean"], rel=1e-6, abs=1e-7)
    assert mse.item() == pytest.approx(update["value_mse"], rel=1e-6)
    loss.backward()
    for key, param in policy.named_parameters():
        _close(param.grad, update["grads"][key])
    policy.zero_grad(set_to_none=True)

    # the agent's own update (fresh Adam, as the fixture): the same step, then policy_old <- policy
    stats = agent.update(rollout, torch.optim.Adam(policy.parameters(), lr=POLICY_LR, betas=BETAS))
    assert stats["value_mse"] == pytest.approx(update["value_mse"], rel=1e-6)
    for key, param in policy.named_parameters():
        # Adam's first step moves each weight by ~lr * sign(grad): a grad of a few ulps magnifies its error
        _close(param, variant["params_after"][key], atol=2e-6)
    for (k1, v1), (k2, v2) in zip(policy.state_dict().items(), agent.policy_old.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    actions, probs = _greedy(agent, states)
    assert actions == variant["greedy_actions_after"]
    _close(probs, variant["greedy_probs_after"])


def _checksum_close(actual: torch.Tensor, expected, atol: float = ATOL) -> None:
    if not isinstance(expected, dict):  # small tensors (and 0-dim counters) are stored in full
        _close(actual, expected, atol)
        return
    flat = actual.detach().double().flatten()
    assert list(actual.shape) == expected["shape"]
    scale = expected["abs_sum"]
    assert flat.sum().item() == pytest.approx(expected["sum"], abs=1e-6 * scale + 1e-9)
    assert flat.abs().sum().item() == pytest.approx(expected["abs_sum"], rel=1e-6)
    _close(flat[:3], expected["first3"], atol)
    _close(flat[-1:], [expected["last"]], atol)


@pytest.mark.parametrize("name", ["T1_gain1", "T1_gain15", "T3_gain15"])
def test_continuous_ppo_matches_official(name):
    ref = _load("ppo_continuous_reference.json")[name]
    c = ref["config"]

    def make() -> ActorCritic:
        return ActorCritic(
            c["feature_dim"],
            c["map_hw"],
            c["hidden"],
            continuous=True,
            batch_norm=True,
            action_std=c["action_std"],
        )

    policy = make()
    state = {k: contract_tensor(k, tuple(v.shape)) for k, v in policy.state_dict().items()}
    state["actor.0.weight"] = state["actor.0.weight"] * c["gain"]
    policy.load_state_dict(state)
    agent = PPOAgent(policy, make()).train()  # both policies in train mode (BatchNorm on batch statistics)
    assert [k for k in policy.state_dict() if k.endswith("weight")][:4] == [
        "state_encoder.0.weight",
        "state_encoder.1.weight",
        "state_encoder.4.weight",
        "state_encoder.5.weight",
    ]
    t, b = c["T"], c["B"]
    tag = ref["states_seed_tag"]
    states = torch.randn(
        t, b, c["feature_dim"], c["map_hw"], c["map_hw"],
        generator=torch.Generator().manual_seed(zlib.crc32(f"{tag}/states".encode())),
    )  # fmt: skip
    rewards = torch.rand(
        t, 1, b, generator=torch.Generator().manual_seed(zlib.crc32(f"{tag}/rewards".encode()))
    )
    rewards = ((rewards - 0.5) * 0.2)[:, 0]

    saved = {k: v.clone() for k, v in agent.policy_old.state_dict().items()}
    torch.manual_seed(99)
    hidden, means = None, []
    for step in range(t):  # evaluation acts with the mean; a sample is still drawn (RNG), BN statistics move
        action, logprob, out, hidden = agent.select(states[step], hidden, sample=False)
        assert logprob is None and torch.equal(action, out)
        means.append(action)
    _close(torch.stack(means), ref["eval_actions_mean"])
    agent.policy_old.load_state_dict(saved)  # as the reference run: BN buffers back before the training draws

    torch.manual_seed(1234)
    rollout, hidden, outs = Rollout(), None, []
    for step in range(t):
        action, logprob, out, hidden = agent.select(states[step], hidden, sample=True)
        assert 0.0 <= action.min() and action.max() <= 1.0  # clipped to [0, 1]
        rollout.states.append(states[step])
        rollout.actions.append(action)
        rollout.logprobs.append(logprob)
        rollout.rewards.append(rewards[step])
        outs.append(out)
    _close(torch.stack(outs), ref["train_means"])
    _close(torch.stack(rollout.actions), ref["sampled_actions_clipped"])
    _close(torch.stack(rollout.logprobs), ref["sampled_logprobs"])
    for key, value in ref["policy_old_running_stats_after_act"].items():
        _close(agent.policy_old.state_dict()[key], value)

    returns = normalised_returns(torch.stack(rollout.rewards))
    _close(returns, ref["returns_normalised"])
    # on a copy: evaluate() moves the BN statistics, and the agent's update runs it once more
    logprobs, _, _ = copy.deepcopy(policy).evaluate(torch.stack(rollout.states), torch.stack(rollout.actions))
    if t > 1:  # BatchNorm over T*B states in the update, over B when acting: the PPO ratio is not 1
        assert (logprobs - torch.stack(rollout.logprobs)).abs().max() > 1e-2
    grads = {}
    optimizer = torch.optim.Adam(policy.parameters(), lr=POLICY_LR, betas=BETAS)
    saved_params = {k: v.clone() for k, v in policy.state_dict().items()}
    step_fn = optimizer.step

    def record_step(*args, **kwargs):
        grads.update({k: p.grad.clone() for k, p in policy.named_parameters()})
        return step_fn(*args, **kwargs)

    optimizer.step = record_step
    stats = agent.update(rollout, optimizer)
    assert stats["value_mse"] == pytest.approx(ref["value_mse"], rel=1e-6)
    for key, grad in grads.items():
        _checksum_close(grad, ref["grads"][key])
    for key, value in policy.state_dict().items():
        grad = ref["grads"].get(key)
        if isinstance(grad, list) and torch.as_tensor(grad).abs().max() < NOISE_GRAD:
            # a bias before BatchNorm: its gradient is 0 in exact arithmetic, float noise in both runs, and
            # Adam's first step moves each element by up to lr in the direction of that noise
            moved = (value - saved_params[key]).abs().max().item()
            assert moved <= POLICY_LR * (1 + 1e-3), (key, moved)
            continue
        _checksum_close(value, ref["params_after"][key], atol=2e-6)
    assert ref["policy_old_synced"]
    for v1, v2 in zip(policy.state_dict().values(), agent.policy_old.state_dict().values()):
        assert torch.equal(v1, v2)
