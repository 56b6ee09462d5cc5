"""TAdaConvNeXtV2-T/S/B (Huang et al., arXiv 2308.05787) with the official `state_dict` keys: `backbone.
{downsample_layers, stages, norm}.*` and `head.out.*`.

Details copied literally from the official code (they change the numbers):
- the stem is a (3, 4, 4) conv with temporal stride 2 (16 frames become 8), so clips need T >= 5;
- each block calibrates its depthwise 7x7 TAdaConv (weight and bias, per output channel) with a route function
  that runs a one-layer attention over time, whose heads are interleaved (`view(b, 3, head_dim, c // head_dim,
  t)`: the head index varies fastest along channels) and scaled by (dim / ratio) ** -0.5, not head_dim ** -0.5;
- the activations are QuickGELU (x * sigmoid(1.702 x)); each block's own `gamma` (layer scale) is its first key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .tada import TAdaNet
from .tadaconv import TAdaConv2d

# size: (depths, dims, route-function head_dim, drop-path rate of the K400 16-frame configs)
SIZES = {
    "t": ((3, 3, 9, 3), (96, 192, 384, 768), 48, 0.2),
    "s": ((3, 3, 27, 3), (96, 192, 384, 768), 48, 0.4),
    "b": ((3, 3, 27, 3), (128, 256, 512, 1024), 64, 0.6),
}


class LayerNormCF(nn.Module):
    """LayerNorm over the channels of (N, C, ...) maps, computed as the official channels_first LayerNorm."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        shape = (-1,) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zeroes whole samples with probability p in training, scaling the rest by 1 / (1 - p)."""
    if p == 0.0 or not training:
        return x
    keep = 1 - p
    mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)).floor_()
    return x.div(keep) * mask


class RouteFuncwTransformer(nn.Module):
    """Route function with temporal attention; returns [alpha_weight, alpha_bias] (N, c_in, T, 1, 1), both 1 at
    initialisation (`b`, `b_bias` zero, `skip_init`)."""

    def __init__(self, c_in: int, ratio: int, kernels: Sequence[int], head_dim: int) -> None:
        super().__init__()
        c = c_in // ratio
        self.head_dim = head_dim
        self.scale = c**-0.5
        self.a = nn.Conv3d(c_in, c, (kernels[0], 1, 1), padding=(kernels[0] // 2, 0, 0))
        self.norm = LayerNormCF(c)
        self.norm_transformer = LayerNormCF(c)
        self.qkv_proj = nn.Conv3d(c, 3 * c, 1)
        self.attn_out = nn.Conv3d(c, c, 1)
        pad = (kernels[1] // 2, 0, 0)
        self.b = nn.Conv3d(c, c_in, (kernels[1], 1, 1), padding=pad, bias=False)
        self.b_bias = nn.Conv3d(c, c_in, (kernels[1], 1, 1), padding=pad, bias=False)
        for conv in (self.b, self.b_bias):
            conv.skip_init = True
            nn.init.zeros_(conv.weight)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Returns attn_out(attention over T) (N, c, T, 1, 1) for x (N, c, T, 1, 1) (interleaved heads)."""
        b, c, t = x.shape[:3]
        qkv = self.qkv_proj(x)[:, :, :, 0, 0].view(b, 3, self.head_dim, c // self.head_dim, t)
        q, k, v = qkv.permute(1, 0, 3, 4, 2)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(-2, -1).reshape(b, c, t)[:, :, :, None, None]
        return self.attn_out(out)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = quick_gelu(self.norm(self.a(F.adaptive_avg_pool3d(x, (None, 1, 1)))))
        x = x + self.attention(self.norm_transformer(x))
        return [self.b(x) + 1, self.b_bias(x) + 1]


class TAdaConvNeXtV2Block(nn.Module):
    """dwconv (calibrated depthwise 1x7x7) -> LN(x) + LN_avgpool(avgpool_t(x)) -> Linear 4x -> QuickGELU ->
    Linear -> gamma -> drop path -> residual."""

    def __init__(self, dim: int, head_dim: int, drop_path_rate: float, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))
        self.dwconv = TAdaConv2d(dim, dim, (1, 7, 7), padding=(0, 3, 3), groups=dim, cal_dim="cout")
        nn.init.trunc_normal_(self.dwconv.weight, std=0.02, a=-2.0, b=2.0)
        nn.init.zeros_(self.dwconv.bias)
        self.dwconv_rf = RouteFuncwTransformer(dim, 2, (3, 3), head_dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.norm_avgpool = nn.LayerNorm(dim, eps=1e-6)
        nn.init.zeros_(self.norm_avgpool.weight)
        self.avgpool = nn.AvgPool3d((3, 1, 1), 1, (1, 0, 0))
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, dim, T, H, W) for x (N, dim, T, H, W)."""
        y = self.dwconv(x, self.dwconv_rf(x))
        pooled = self.avgpool(y).permute(0, 2, 3, 4, 1)
        y = self.norm(y.permute(0, 2, 3, 4, 1)) + self.norm_avgpool(pooled)
        y = self.gamma * self.pwconv2(quick_gelu(self.pwconv1(y)))
        return x + drop_path(y.permute(0, 4, 1, 2, 3), self.drop_path_rate, self.training)


class ConvNeXtBackbone(nn.Module):
    """ConvNeXt meta-architecture with TAdaConvNeXtV2 blocks; pooling = LayerNorm of the whole-map average."""

    def __init__(
        self, depths: Sequence[int], dims: Sequence[int], head_dim: int, drop_path_rate: float
    ) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv3d(3, dims[0], (3, 4, 4), (2, 4, 4), (1, 0, 0)), LayerNormCF(dims[0]))
        downs = [
            nn.Sequential(LayerNormCF(dims[i]), nn.Conv3d(dims[i], dims[i + 1], (1, 2, 2), (1, 2, 2)))
            for i in range(3)
        ]
        self.downsample_layers = nn.ModuleList([stem, *downs])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, cur = [], 0
        for dim, n in zip(dims, depths):
            stages.append(
                nn.Sequential(*[TAdaConvNeXtV2Block(dim, head_dim, rates[cur + j]) for j in range(n)])
            )
            cur += n
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.feature_dim = dims[-1]
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)) and not hasattr(m, "skip_init"):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def pool(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns (N, C): LayerNorm of the average of the last map (N, C, T, h, w)."""
        return self.norm(fm.mean([-3, -2, -1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the last stage's map (N, dims[-1], ceil(T/2), H/32, W/32) for x (N, 3, T, H, W), T >= 5."""
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x


def tadaconvnextv2(
    size: str,
    num_classes: int = 400,
    num_frames: int = 16,
    *,
    dropout: float = 0.5,
    drop_path: float | None = None,
    eval_softmax: bool = False,
    depths: Sequence[int] | None = None,
    dims: Sequence[int] | None = None,
    head_dim: int | None = None,
) -> TAdaNet:
    """Returns TAdaConvNeXtV2 of `size` 't' | 's' | 'b' (K400 16-frame configs: head dropout 0.5, drop path
    0.2 / 0.4 / 0.6); `depths` / `dims` / `head_dim` build tiny test networks."""
    if size not in SIZES:
        raise ValueError(f"TAdaConvNeXtV2 size must be one of {sorted(SIZES)}, got {size!r}")
    if num_frames < 5:
        raise ValueError(
            f"TAdaConvNeXtV2 needs clips of >= 5 frames (stride-2 stem, temporal pool), got {num_frames}"
        )
    d, w, h, p = SIZES[size]
    backbone = ConvNeXtBackbone(depths or d, dims or w, head_dim or h, p if drop_path is None else drop_path)
    net = TAdaNet(backbone, num_classes, dropout, eval_softmax)
    net.num_frames = num_frames
    net.image_converter = ("downsample_layers.0.0.weight", convnext_to_tadaconvnext)
    return net


def convnext_to_tadaconvnext(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns TAdaConvNeXtV2 `backbone.*` weights from a 2-D ConvNeXt state_dict (the ImageNet files TAdaConv
    starts from, e.g. convnext_tiny_1k_224_ema.pth), as the official `convert_convnext_weights`: the stem's 4x4
    kernel becomes the middle of a 3-frame kernel (zeros either side), every other conv kernel gains a temporal
    axis of 1, the depthwise 7x7 kernels and biases take TAdaConv2d's shapes (1, 1, C, 1, 7, 7) / (1, 1, C);
    LayerNorms, linears and `gamma` are copied; `head.*` is dropped."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("head"):
            continue
        if key == "downsample_layers.0.0.weight":
            zeros = torch.zeros_like(value)
            value = torch.stack((zeros, value, zeros), dim=2)
        elif key.endswith("dwconv.weight") or key.endswith("dwconv.bias"):
            value = value[None, None]
        elif value.dim() > 2:
            value = value.unsqueeze(2)
        out[f"backbone.{key}"] = value
    return out


def tadaconvnextv2_t(num_classes: int = 400, num_frames: int = 16, **kw) -> TAdaNet:
    """Returns TAdaConvNeXtV2-T (depths 3/3/9/3, dims 96..768)."""
    return tadaconvnextv2("t", num_classes, num_frames, **kw)


def tadaconvnextv2_s(num_classes: int = 400, num_frames: int = 16, **kw) -> TAdaNet:
    """Returns TAdaConvNeXtV2-S (depths 3/3/27/3, dims 96..768)."""
    return tadaconvnextv2("s", num_classes, num_frames, **kw)


def tadaconvnextv2_b(num_classes: int = 400, num_frames: int = 16, **kw) -> TAdaNet:
    """Returns TAdaConvNeXtV2-B (depths 3/3/27/3, dims 128..1024)."""
    return tadaconvnextv2("b", num_classes, num_frames, **kw)
