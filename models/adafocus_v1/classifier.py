"""The GRU classifier of AdaFocus V1: one prediction per time step from the features seen so far.

Keys `gru.{weight,bias}_{ih,hh}_l0` and `fc.{weight,bias}` are the official checkpoints' `fc` sub-dict.
"""

from __future__ import annotations

import torch
from torch import nn


class RecurrentClassifier(nn.Module):
    """GRU(in_dim -> hidden, batch_first) -> Dropout -> Linear(hidden -> C), applied at every step."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)
        self.hidden_dim = hidden

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Returns step logits (B, T, C) of a full pass from a zero hidden state over feats (B, T, D)."""
        out, _ = self.gru(feats, feats.new_zeros(1, feats.shape[0], self.hidden_dim))
        return self.fc(self.dropout(out))

    def states(self, feats: torch.Tensor) -> torch.Tensor:
        """Returns the hidden state before every step, (B, T, H): h_{-1} = 0, h_0, ..., h_{T-2}, for feats (B, T, D)."""
        out, _ = self.gru(feats, feats.new_zeros(1, feats.shape[0], self.hidden_dim))
        return torch.cat([out.new_zeros(out.shape[0], 1, out.shape[2]), out[:, :-1]], dim=1)

    def step(self, feat: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from hidden (B, H) on feat (B, D): returns (logits (B, C), next hidden (B, H)). Called with
        an earlier hidden state it scores an alternative input without advancing the sequence (the official
        `test_single_forward`)."""
        out, h = self.gru(feat.unsqueeze(1), hidden.unsqueeze(0).contiguous())
        return self.fc(self.dropout(out[:, 0])), h[0]
