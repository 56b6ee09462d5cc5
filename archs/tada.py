"""TAda2D-R50 (Huang et al., ICLR 2022) with the official `state_dict` keys (`backbone.*`, `head.out.*`, so
`{'model_state': ...}` checkpoints load strictly), the clip-net wrapper shared with TAdaConvNeXtV2 (`TAdaNet`),
and the factorisation of a 2-D ResNet-50 ImageNet checkpoint into TAda2D's shapes. The layers are in
archs/tadaconv.py.

TAda2D differs from a 2-D ResNet-50 in three places (kept, as the official code): no max-pool (the first block
of res2 has spatial stride 2 instead), every 3x3 conv is a TAdaConv2d calibrated per (video, frame) by a route
function that sees the conv's input, and after it `b_bn(x) + b_avgpool_bn(AvgPool3d([3,1,1])(x))` aggregates
neighbouring frames (zero-padded, `count_include_pad=True`). At initialisation the route function's last conv and
`b_avgpool_bn` are zero, so alpha = 1 and every frame goes through the same 2-D network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .tadaconv import RouteFuncMLP, TAdaConv2d


class Stem2D(nn.Module):
    """Base2DStem: a (1, 7, 7) conv with spatial stride 2 (`a`), BN (`a_bn`), ReLU; no max-pool."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a = nn.Conv3d(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.a_bn = nn.BatchNorm3d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.a_bn(self.a(x)))


class TAda2DBranch(nn.Module):
    """TAda2DBlock bottleneck: a (1x1x1) -> b (TAdaConv2d 1x3x3, spatial stride) with route function `b_rf`,
    then b_bn(x) + b_avgpool_bn(avgpool_t(x)) -> ReLU -> c (1x1x1) -> c_bn (no ReLU: it follows the add)."""

    def __init__(self, dim_in: int, width: int, dim_out: int, stride: int) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, width, 1, bias=False)
        self.a_bn = nn.BatchNorm3d(width)
        self.b = TAdaConv2d(width, width, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.b_rf = RouteFuncMLP(width, 4, (3, 3))
        self.b_bn = nn.BatchNorm3d(width)
        self.b_avgpool = nn.AvgPool3d((3, 1, 1), 1, (1, 0, 0))  # count_include_pad=True, as the original
        self.b_avgpool_bn = nn.BatchNorm3d(width)
        self.b_avgpool_bn.skip_init = True
        nn.init.zeros_(self.b_avgpool_bn.weight)
        nn.init.zeros_(self.b_avgpool_bn.bias)
        self.c = nn.Conv3d(width, dim_out, 1, bias=False)
        self.c_bn = nn.BatchNorm3d(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a_bn(self.a(x)))
        x = self.b(x, self.b_rf(x))
        x = torch.relu(self.b_bn(x) + self.b_avgpool_bn(self.b_avgpool(x)))
        return self.c_bn(self.c(x))


class TAda2DBlock(nn.Module):
    """Base3DBlock: relu(short_cut_bn(short_cut(x)) + conv_branch(x)); the projection exists when the width or
    the resolution changes."""

    def __init__(self, dim_in: int, width: int, dim_out: int, stride: int) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.short_cut = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            self.short_cut_bn = nn.BatchNorm3d(dim_out)
        self.conv_branch = TAda2DBranch(dim_in, width, dim_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.short_cut_bn(self.short_cut(x)) if hasattr(self, "short_cut") else x
        return torch.relu(shortcut + self.conv_branch(x))


class TAda2DBackbone(nn.Module):
    """ResNet3D meta-architecture with TAda2D blocks: `conv1` stem, `conv2..conv5` stages of `res_1..res_n`."""

    def __init__(self, depths: Sequence[int] = (3, 4, 6, 3), base_width: int = 64) -> None:
        super().__init__()
        self.conv1 = Stem2D(base_width)
        dim_in = base_width
        for k, n in enumerate(depths):
            width = base_width * 2**k
            stage = nn.Module()
            for i in range(n):
                stage.add_module(f"res_{i + 1}", TAda2DBlock(dim_in, width, 4 * width, 2 if i == 0 else 1))
                dim_in = 4 * width
            self.add_module(f"conv{k + 2}", stage)
        self.feature_dim = dim_in
        for m in self.modules():  # _init_convnet_weights: MSRA fill, BN (1, 0); `skip_init` layers stay zero
            if hasattr(m, "skip_init"):
                continue
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def pool(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns (N, C): the head's global average of the conv5 map (N, C, T, h, w)."""
        return F.adaptive_avg_pool3d(fm, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the conv5 map (N, 32 * base_width, T, H/32, W/32) for x (N, 3, T, H, W), T >= 3."""
        x = self.conv1(x)
        for name in ("conv2", "conv3", "conv4", "conv5"):
            for block in getattr(self, name).children():
                x = block(x)
        return x


class ClipHead(nn.Module):
    """BaseHead: whole-map average -> dropout -> `out` Linear; the official code applies softmax in eval."""

    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        if dropout > 0:
            self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Returns logits (..., num_classes) for pooled features (..., dim)."""
        return self.out(self.dropout(feat) if hasattr(self, "dropout") else feat)


class TAdaNet(nn.Module):
    """A TAdaConv video model: `backbone` + `head` (keys as the official model_state). forward(x (N, 3, T, H, W))
    returns logits (N, C) in train and eval; `eval_softmax=True` returns softmax probabilities in eval instead,
    as the official BaseHead (`model(x)[0]`)."""

    def __init__(
        self, backbone: nn.Module, num_classes: int, dropout: float, eval_softmax: bool = False
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ClipHead(backbone.feature_dim, num_classes, dropout)
        self.feature_dim = backbone.feature_dim
        self.eval_softmax = eval_softmax
        # the ImageNet file's tell-tale key and its converter to this network's keys (convert_pretrained)
        self.image_converter = ("layer1.0.conv1.weight", factorize_resnet_weights)

    @property
    def last_linear(self) -> nn.Linear:
        return self.head.out

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the backbone's last map (N, feature_dim, T', h, w) for x (N, 3, T, H, W)."""
        return self.backbone(x)

    def head_from_featmap(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, C) from the map (N, feature_dim, T', h, w): the backbone's pooling (whole-map
        average; ConvNeXt: then LayerNorm), dropout, `out`."""
        return self.head(self.backbone.pool(fm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, C) (softmax probabilities in eval with eval_softmax) for x (N, 3, T, H, W)."""
        logits = self.head_from_featmap(self.featmap(x))
        return logits.softmax(-1) if self.eval_softmax and not self.training else logits

    def convert_pretrained(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Returns weights for this network from a published file's state_dict: an ImageNet file (TAda2D: a
        torchvision-layout ResNet, factorised by factorize_resnet_weights; TAdaConvNeXtV2: a ConvNeXt, converted by
        convnext_to_tadaconvnext) is converted and completed with this network's own route functions, temporal
        branches and head, which keep their initial values (the official ImageNet initialisation); a TAdaConv file
        (`backbone.*`, `head.*`) is returned unchanged."""
        key, convert = self.image_converter
        if key not in state_dict:
            return dict(state_dict)
        converted = convert(state_dict)
        own = self.state_dict()
        extra = sorted(set(converted) - set(own))
        if extra:
            raise KeyError(f"converted ImageNet weights do not fit this TAda network: {extra[:5]}")
        return {**{k: v for k, v in own.items() if k not in converted}, **converted}

    def reset_classifier(self, num_classes: int, dropout: float | None = None) -> None:
        """Replaces `head.out` (and the dropout, when given) for another class count."""
        p = self.head.dropout.p if dropout is None and hasattr(self.head, "dropout") else (dropout or 0.0)
        self.head = ClipHead(self.feature_dim, num_classes, p)


def tada2d_r50(
    num_classes: int = 400,
    num_frames: int = 8,
    *,
    dropout: float = 0.5,
    eval_softmax: bool = False,
    base_width: int = 64,
    depths: Sequence[int] = (3, 4, 6, 3),
) -> TAdaNet:
    """Returns TAda2D-R50 (K400 8x8 config: head dropout 0.5). `num_frames` is the clip it is meant for (8 or 16;
    T >= 3: the temporal average pool needs it); `base_width` / `depths` build tiny test networks."""
    if num_frames < 3:
        raise ValueError(
            f"TAda2D needs clips of >= 3 frames (its temporal pool), got num_frames={num_frames}"
        )
    net = TAdaNet(TAda2DBackbone(depths, base_width), num_classes, dropout, eval_softmax)
    net.num_frames = num_frames
    return net


def factorize_resnet_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns TAda2D `backbone.*` weights from a torchvision-layout 2-D ResNet state_dict (e.g. resnet50-*.pth):
    conv weights gain a temporal axis (unsqueeze(2)), 3x3 weights become TAdaConv's (1, 1, C_out, C_in, 3, 3);
    `fc.*` is dropped; route functions and `b_avgpool_bn` keep their initial values (the official
    `convert_resnet_weights`, stem BN included)."""
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "fc":
            continue
        if parts[0] in ("conv1", "bn1"):
            target = "a" if parts[0] == "conv1" else "a_bn"
            out[f"backbone.conv1.{target}.{parts[-1]}"] = value.unsqueeze(2) if parts[0] == "conv1" else value
            continue
        if not parts[0].startswith("layer") or len(parts) not in (4, 5):
            raise KeyError(f"factorize_resnet_weights: unexpected key {key!r} (not a torchvision ResNet)")
        stage, block = f"conv{int(parts[0][5:]) + 1}", f"res_{int(parts[1]) + 1}"
        if parts[2] == "downsample":
            name = "short_cut" if parts[3] == "0" else "short_cut_bn"
            out[f"backbone.{stage}.{block}.{name}.{parts[-1]}"] = (
                value.unsqueeze(2) if parts[3] == "0" else value
            )
            continue
        letter = "abc"[int(parts[2][-1]) - 1]
        if parts[2].startswith("conv"):
            is_3x3 = value.shape[-2:] != (1, 1)
            out[f"backbone.{stage}.{block}.conv_branch.{letter}.{parts[-1]}"] = (
                value[None, None] if is_3x3 else value.unsqueeze(2)
            )
        else:
            out[f"backbone.{stage}.{block}.conv_branch.{letter}_bn.{parts[-1]}"] = value
    return out
