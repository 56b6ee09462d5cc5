"""Classification heads shared by the methods: the MLP of the pooling classifiers, the TSN wrapper (TSM-form
glance / focus nets and the 2-D baselines) and the per-frame heads of clip networks.

Module names reproduce the original state_dict keys: `<mlp>.layers.{0,1}`, `<net>.base_model.*`, `<net>.new_fc`,
`<net>.new_new_fc`, `global_CNN_head.{0,3}`.
"""

from __future__ import annotations

import torch
from torch import nn

from archs import create_backbone


class MLP(nn.Module):
    """Linear + BatchNorm1d + ReLU (`layers.{0,1}` keys); maps (M, in_dim) -> (M, hidden)."""

    def __init__(self, in_dim: int, hidden: int = 4096) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (M, hidden) for x (M, in_dim)."""
        return self.layers(x)


def _last_layer_name(base_model: nn.Module) -> str:
    for name in ("fc", "classifier"):
        if isinstance(getattr(base_model, name, None), nn.Linear):
            return name
    raise TypeError(f"{type(base_model).__name__} has no Linear `fc`/`classifier` to replace")


class TSN(nn.Module):
    """Temporal Segment Network wrapper around a 2-D backbone (keys `base_model.*`, `new_fc`, `new_new_fc`).

    The backbone's last Linear is replaced by Dropout (so it has no keys). With `aux_head` (Uni-AdaFocus):
    `new_fc` sees the detached pooled feature (the "final" logits train only the head) and `new_new_fc` the
    attached one (the auxiliary logits train the backbone). Without it (plain TSN/TSM baseline) `new_fc`
    is an ordinary head. Consensus = mean over the T segments. Heads init N(0, 0.001), bias 0.
    `consensus_first` (plain head only): average the pooled features over the segments, then dropout and `new_fc`,
    as mmaction's TSN head (ResKD's students) instead of the TSM code's classifier per segment.
    """

    def __init__(
        self,
        base_model: nn.Module,
        num_classes: int,
        dropout: float,
        aux_head: bool = True,
        consensus_first: bool = False,
    ) -> None:
        super().__init__()
        self.base_model = base_model
        name = _last_layer_name(base_model)
        feature_dim = getattr(base_model, name).in_features
        setattr(base_model, name, nn.Dropout(p=dropout))
        self.feature_dim = feature_dim
        self.aux_head = aux_head
        if consensus_first and aux_head:
            raise ValueError("TSN: consensus_first applies to the plain head only (aux_head=False)")
        self.consensus_first = consensus_first
        self._last_layer = name
        self.new_fc = nn.Linear(feature_dim, num_classes)
        heads = [self.new_fc]
        if aux_head:
            self.new_new_fc = nn.Linear(feature_dim, num_classes)
            heads.append(self.new_new_fc)
        for head in heads:
            nn.init.normal_(head.weight, 0.0, 0.001)
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor, num_segments: int) -> dict[str, torch.Tensor]:
        """Runs frames x (B*T, 3, H, W), T = num_segments; returns a dict of
        `featmap` (B*T, D, h, w), `feat` (B*T, D) (pooled, after dropout), `final` (B, C) (new_fc, averaged),
        and with aux_head also `reg` (B, C) (new_new_fc, averaged) and `reg_frames` (B, T, C). With
        consensus_first, `feat` is (B, D) (pooled, averaged over T, after dropout) and `final` = new_fc(feat).
        """
        featmap = self.base_model.features(x)
        if self.consensus_first:
            pooled = featmap.mean((2, 3)).view(-1, num_segments, featmap.shape[1]).mean(1)
            feat = getattr(self.base_model, self._last_layer)(pooled)
            return {"featmap": featmap, "feat": feat, "final": self.new_fc(feat)}
        feat = getattr(self.base_model, self._last_layer)(featmap.mean((2, 3)))
        out = {"featmap": featmap, "feat": feat}
        if self.aux_head:
            out["final"] = self.new_fc(feat.detach()).view(-1, num_segments, self.new_fc.out_features).mean(1)
            reg_frames = self.new_new_fc(feat).view(-1, num_segments, self.new_new_fc.out_features)
            out["reg_frames"] = reg_frames
            out["reg"] = reg_frames.mean(1)
        else:
            out["final"] = self.new_fc(feat).view(-1, num_segments, self.new_fc.out_features).mean(1)
        return out


def tsn_net(cfg, role: str, segments: int) -> TSN:
    """Returns the TSN-wrapped 2-D network of `role` ('glance' | 'focus': cfg.glance_arch / cfg.focus_arch) with
    the auxiliary head, temporal shift as cfg says, for clips of `segments` frames (the TSM-form glance and focus
    networks of Uni-AdaFocus and AdaFocus V2)."""
    arch = cfg.glance_arch if role == "glance" else cfg.focus_arch
    base = create_backbone(
        arch, shift=cfg.shift, n_segment=segments, shift_div=cfg.shift_div, **cfg.backbone_kwargs(role)
    )
    return TSN(base, cfg.num_classes, cfg.dropout, aux_head=True)


def x3d_frame_head(in_dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Returns the per-frame X3D head Linear(in, hidden, no bias) + ReLU + Dropout + Linear(hidden, C)
    (keys `0.weight`, `3.weight`, `3.bias`), mapping (M, in_dim) -> (M, C)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


@torch.no_grad()
def share_head_params(x3d_head: nn.Module, frame_head: nn.Sequential) -> None:
    """Copies an X3D head's `lin_5` (1x1x1 conv, squeezed) and `projection` into a per-frame head (in place)."""
    frame_head[0].weight.copy_(x3d_head.lin_5.weight.reshape(frame_head[0].weight.shape))
    frame_head[3].weight.copy_(x3d_head.projection.weight)
    frame_head[3].bias.copy_(x3d_head.projection.bias)


def clip_frame_head(net: nn.Module, num_classes: int, dropout: float) -> nn.Sequential:
    """Returns the per-frame head of a clip network (mapping (M, feature_dim) -> (M, C)): X3D's
    `x3d_frame_head`; for the other clip nets (Efficient-3DCNNs, TAdaConv) Dropout + Linear (keys `1.weight`,
    `1.bias`), a copy of the network's classifier (`share_clip_head`)."""
    if hasattr(net, "head") and hasattr(net.head, "lin_5"):  # X3D
        return x3d_frame_head(net.feature_dim, net.head.projection.in_features, num_classes, dropout)
    if not isinstance(net.last_linear, nn.Linear):
        raise TypeError(f"{type(net).__name__}: its classifier is not a Linear layer; no per-frame head")
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(net.feature_dim, num_classes))


@torch.no_grad()
def share_clip_head(net: nn.Module, frame_head: nn.Sequential) -> None:
    """Copies a clip network's classifier into its per-frame head (in place): X3D's lin_5 and projection
    (share_head_params), the other nets' last Linear."""
    if hasattr(net, "head") and hasattr(net.head, "lin_5"):
        share_head_params(net.head, frame_head)
    else:
        frame_head[1].weight.copy_(net.last_linear.weight)
        frame_head[1].bias.copy_(net.last_linear.bias)
