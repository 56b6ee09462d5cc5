"""Recurrent actor-critic policies and their PPO update (AdaFocus V1).

Two policies of the official code, one class:
- discrete (ActivityNet code): a 1x1 conv (32 channels) + Linear encoder of the glance map, a GRU, a softmax over a
  grid of patch positions (`grid_actions`), acting greedily (argmax) in evaluation;
- continuous (Something-Something code): a 1x1 conv (64 channels) + Linear encoder, optionally with BatchNorm, a
  GRU, a sigmoid mean in [0, 1]^2 of a Gaussian with a fixed standard deviation; a training sample is clipped to
  [0, 1] and its log-probability taken at the clipped value; evaluation uses the mean (a sample is still drawn).
Module names give the official state_dict keys: `state_encoder.{0,3}` (`state_encoder.{0,1,4,5}` with BatchNorm),
`gru.*`, `actor.0.*`, `critic.0.*`. `PPOAgent` holds `policy` (optimised) and `policy_old` (acts; overwritten with
`policy` after every update), as the original.

PPO as implemented there: discounted returns (gamma 0.7) normalised over the whole batch of episodes, advantage =
return - value (detached), clipped surrogate (0.2) + 0.5 * MSE(value, return) - 0.01 * entropy, K_epochs = 1 Adam
step per batch. With K = 1 and `policy_old == policy` the ratio is 1, so the clip never acts (except under
BatchNorm, whose batch statistics differ between acting (B states) and the update (T*B states)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, MultivariateNormal

# The official hyper-parameters (models/ppo.py of both sub-projects).
GAMMA = 0.7
EPS_CLIP = 0.2
VALUE_COEF = 0.5
ENTROPY_COEF = 0.01
POLICY_LR = 3e-4
BETAS = (0.9, 0.999)
K_EPOCHS = 1


def grid_actions(num_actions: int) -> torch.Tensor:
    """Returns the official table of patch positions (num_actions, 2) = [y, x] fractions of the free range:
    an n x n grid (n^2 = num_actions), action a -> [(a // n) / (n - 1), (a % n) / (n - 1)] in float32."""
    n = round(num_actions**0.5)
    if n * n != num_actions or n < 2:
        raise ValueError(
            f"action_dim must be a square n*n with n >= 2 (16, 25, 36, 49, 64, ...), got {num_actions}"
        )
    # Python fractions first, float32 last: the same rounding as the official torch.Tensor([[0, 1/6], ...]).
    return torch.tensor(
        [[(a // n) / (n - 1), (a % n) / (n - 1)] for a in range(num_actions)], dtype=torch.float32
    )


class ActorCritic(nn.Module):
    """Encoder of one glance map -> GRU over time -> actor (a distribution over actions) and critic (a value).

    feature_dim: channels C of the state maps (B, C, h, w); map_size: h = w; hidden: encoder and GRU width.
    """

    def __init__(
        self,
        feature_dim: int,
        map_size: int,
        hidden: int = 1024,
        *,
        num_actions: int = 49,
        continuous: bool = False,
        batch_norm: bool = False,
        action_std: float = 0.25,
    ) -> None:
        super().__init__()
        channels = 64 if continuous else 32  # as the two official encoders
        layers: list[nn.Module] = [nn.Conv2d(feature_dim, channels, kernel_size=1, bias=False)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers += [nn.ReLU(), nn.Flatten(), nn.Linear(channels * map_size * map_size, hidden)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        self.state_encoder = nn.Sequential(*layers)
        self.gru = nn.GRU(hidden, hidden)
        out = nn.Sigmoid() if continuous else nn.Softmax(dim=-1)
        self.actor = nn.Sequential(nn.Linear(hidden, 2 if continuous else num_actions), out)
        self.critic = nn.Sequential(nn.Linear(hidden, 1))
        self.hidden_dim = hidden
        self.continuous = continuous
        self.action_std = action_std

    def distribution(self, actor_out: torch.Tensor) -> Distribution:
        """Returns Categorical(probs) (discrete) or the Gaussian N(mean, diag(std)^2) (continuous) of actor outputs."""
        # validate_args=False: the check of the probabilities would wait for the device at every step
        if not self.continuous:
            return Categorical(actor_out, validate_args=False)
        # The official `action_var` holds the standard deviation, passed as scale_tril (covariance std^2 I).
        scale = torch.diag(torch.full((2,), self.action_std, device=actor_out.device, dtype=actor_out.dtype))
        return MultivariateNormal(actor_out, scale_tril=scale, validate_args=False)

    def step(self, state: torch.Tensor, hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: returns (actor output (B, A) probabilities or (B, 2) mean, next hidden (1, B, H)) for
        state maps (B, C, h, w) and hidden (1, B, H) (None: zeros, a new episode)."""
        x = self.state_encoder(state)
        if hidden is None:
            hidden = x.new_zeros(1, x.shape[0], self.hidden_dim)
        out, hidden = self.gru(x.unsqueeze(0), hidden)
        return self.actor(out[0]), hidden

    def evaluate(
        self, states: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-runs whole episodes from a zero hidden state: returns (log pi(a_t), V(s_t), entropy), each (T, B), for
        states (T, B, C, h, w) and the taken actions (T, B) (discrete) or (T, B, 2) (continuous)."""
        t, b = states.shape[:2]
        x = self.state_encoder(states.reshape(t * b, *states.shape[2:])).view(t, b, -1)
        out, _ = self.gru(x, x.new_zeros(1, b, self.hidden_dim))
        out = out.reshape(t * b, -1)
        dist = self.distribution(self.actor(out))
        taken = actions.reshape(t * b, -1) if self.continuous else actions.reshape(t * b)
        logp = dist.log_prob(taken)
        return logp.view(t, b), self.critic(out).view(t, b), dist.entropy().view(t, b)


def act(
    policy: ActorCritic, actor_out: torch.Tensor, sample: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (action, its log-probability or None) for one step's actor output: `sample` draws from the
    distribution (continuous: clipped to [0, 1], log-probability at the clipped value), else the greedy action
    (discrete: argmax; continuous: the mean, after drawing and discarding a sample as the original does)."""
    if not policy.continuous:
        if not sample:
            return actor_out.max(1)[1], None
        dist = policy.distribution(actor_out)
        action = dist.sample()
        return action, dist.log_prob(action)
    dist = policy.distribution(actor_out)
    action = dist.sample()  # drawn in evaluation too: the RNG stream advances as in the original
    if not sample:
        return actor_out.detach(), None
    action = 1 - F.relu(1 - F.relu(action))
    return action, dist.log_prob(action)


def normalised_returns(rewards: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Returns the discounted returns G_t = r_t + gamma * G_{t+1} of rewards (T, B), normalised over all T*B
    entries: (G - mean) / (std + 1e-5) with the unbiased std, (T, B)."""
    discounted: torch.Tensor | float = 0
    out = []
    # Rows r_t (B,), last step first, in the original's arithmetic order.
    for reward in reversed(list(rewards)):
        discounted = reward + gamma * discounted
        out.insert(0, discounted)
    returns = torch.stack(out)
    return (returns - returns.mean()) / (returns.std() + 1e-5)


def ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    values: torch.Tensor,
    entropy: torch.Tensor,
    returns: torch.Tensor,
    eps_clip: float = EPS_CLIP,
    value_coef: float = VALUE_COEF,
    entropy_coef: float = ENTROPY_COEF,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (loss, value MSE) of the clipped PPO objective; every argument is (T, B), `returns` normalised.

    loss = mean(-min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + value_coef * MSE(V, R) - entropy_coef * H),
    A = R - V.detach(), ratio = exp(log pi - log pi_old); the MSE is the scalar mean over T*B (as nn.MSELoss)."""
    ratios = torch.exp(logprobs - old_logprobs.detach())
    advantages = returns - values.detach()
    surr1 = ratios * advantages
    surr2 = torch.clamp(ratios, 1 - eps_clip, 1 + eps_clip) * advantages
    mse = F.mse_loss(values, returns)
    loss = -torch.min(surr1, surr2) + value_coef * mse - entropy_coef * entropy
    return loss.mean(), mse


@dataclass
class Rollout:
    """The transitions of one batch of episodes, one entry per time step: states (B, C, h, w), actions (B,) or
    (B, 2), log-probabilities (B,) and rewards (B,)."""

    states: list[torch.Tensor] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    logprobs: list[torch.Tensor] = field(default_factory=list)
    rewards: list[torch.Tensor] = field(default_factory=list)


class PPOAgent(nn.Module):
    """`policy` (optimised) and `policy_old` (acts, never optimised, overwritten with `policy` after each update).

    The optimizer (Adam over `policy.parameters()`, lr 3e-4, betas (0.9, 0.999), constant) is passed in, so the
    training loop owns and checkpoints it."""

    def __init__(
        self,
        policy: ActorCritic,
        policy_old: ActorCritic,
        gamma: float = GAMMA,
        eps_clip: float = EPS_CLIP,
        k_epochs: int = K_EPOCHS,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.policy_old = policy_old
        self.policy_old.load_state_dict(self.policy.state_dict())
        self.policy_old.requires_grad_(False)
        self.gamma, self.eps_clip, self.k_epochs = gamma, eps_clip, k_epochs

    def select(
        self, state: torch.Tensor, hidden: torch.Tensor | None, sample: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """`policy_old` acts on one step: returns (action, log-probability or None, actor output, next hidden)."""
        with torch.no_grad():
            out, hidden = self.policy_old.step(state, hidden)
            action, logprob = act(self.policy_old, out, sample)
        return action, logprob, out, hidden

    def sync(self) -> None:
        """policy_old <- policy (weights and BatchNorm statistics), as after every official update."""
        self.policy_old.load_state_dict(self.policy.state_dict())

    def update(self, rollout: Rollout, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """K_epochs PPO steps on a finished rollout, then the sync; returns {'ppo_loss', 'value_mse', 'entropy'} of
        the last epoch and 'reward', the mean step reward."""
        rewards = torch.stack(rollout.rewards)
        returns = normalised_returns(rewards, self.gamma)
        states = torch.stack(rollout.states).detach()
        actions = torch.stack(rollout.actions).detach()
        old_logprobs = torch.stack(rollout.logprobs).detach()
        for _ in range(self.k_epochs):
            logprobs, values, entropy = self.policy.evaluate(states, actions)
            loss, mse = ppo_loss(logprobs, old_logprobs, values, entropy, returns, self.eps_clip)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        self.sync()
        return {
            "ppo_loss": float(loss.detach()),
            "value_mse": float(mse.detach()),
            "entropy": float(entropy.detach().mean()),
            "reward": float(rewards.mean()),
        }
