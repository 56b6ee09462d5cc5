"""Teachers for distillation (models/reskd/distill.py), built from their checkpoints; nothing is given on the command line.

Three checkpoint layouts are read (the caller opens the file safely, see ops/engine/checkpoint.read_checkpoint):
- ours: `model_config` + `state_dict`: the model the config builds (any method), loaded strictly;
- mmaction 0.x recognizers, as ResKD's released teachers (`{'state_dict': {'backbone.*', 'cls_head.fc_cls.*'}}`;
  a ResKD run's file gives its teacher, `backbone.high_res_path.*`, with `cls_head.fc_cls_t.*` when it has one):
  a ResNet-18/34/50/101/152 backbone in mmcv ConvModule names
  (`conv1.conv`, `layerI.J.convK.bn`, `downsample.conv`; ResNetTSM wraps `conv1.conv.net`), renamed to
  torchvision's, under a TSN (or TSM, when shifted) baseline whose `new_fc` takes `cls_head.fc_cls`;
- the TSM code's (`base_model.*`, `new_fc.*`, with `module.` when saved from DDP).
For the last two the network is read off the keys: depth from the blocks per stage, width from conv1, temporal
shift from `.net.` keys, classes from the classifier. A teacher is built for the student's frames (`frames`), at the
loader's resolution (`cfg.input_size`), without partial BN (ResKD leaves every teacher BN in train mode).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from archs.weights import strip_module_prefix
from models.core.config import ModelConfig
from models.core.interface import VideoModel
from models.core.registry import build_model, config_from_dict, input_layout

# (blocks per stage, bottleneck) -> torchvision ResNet
_RESNETS = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
    ((3, 8, 36, 3), True): "resnet152",
}
_MM_CONV = re.compile(r"^(?P<block>layer\d+\.\d+\.)?conv(?P<k>\d)\.(?P<kind>conv|bn)\.(?P<rest>.+)$")
_MM_DOWN = re.compile(r"^(?P<block>layer\d+\.\d+\.)downsample\.(?P<kind>conv|bn)\.(?P<rest>.+)$")


def mmaction_resnet_key(key: str) -> str:
    """Returns the torchvision name of an mmaction ResNet key: `conv1.conv.weight` -> `conv1.weight`,
    `conv1.bn.bias` -> `bn1.bias`, `layer1.0.conv2.bn.running_mean` -> `layer1.0.bn2.running_mean`,
    `layer1.0.downsample.conv.weight` -> `layer1.0.downsample.0.weight` (`.bn.` -> `.1.`); ResNetTSM's shifted
    `layer1.0.conv1.conv.net.weight` -> `layer1.0.conv1.net.weight` (our temporal-shift wrapper's name)."""
    shifted = ".conv.net." in key
    key = key.replace(".conv.net.", ".conv.")
    m = _MM_CONV.match(key)
    if m:
        block, k, kind, rest = m.group("block") or "", m.group("k"), m.group("kind"), m.group("rest")
        return f"{block}{'conv' if kind == 'conv' else 'bn'}{k}.{'net.' if shifted else ''}{rest}"
    m = _MM_DOWN.match(key)
    if m:
        return f"{m.group('block')}downsample.{'0' if m.group('kind') == 'conv' else '1'}.{m.group('rest')}"
    return key


def resnet_from_keys(backbone: Mapping[str, torch.Tensor], source: str) -> tuple[str, int, bool]:
    """Returns (arch, base width, temporal shift) of a torchvision-named ResNet state_dict; ValueError otherwise."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(k.split(".")[1]) for k in backbone if k.startswith(f"layer{stage}.")}
        blocks.append(max(ids) + 1 if ids else 0)
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in backbone)
    arch = _RESNETS.get((tuple(blocks), bottleneck))
    if arch is None or "conv1.weight" not in backbone:
        raise ValueError(
            f"--distill {source}: the teacher backbone is not a ResNet-18/34/50/101/152 (blocks per stage "
            f"{blocks}, bottleneck {bottleneck}); such teachers load from our checkpoints (with model_config)"
        )
    shift = any(".net." in k for k in backbone)
    return arch, int(backbone["conv1.weight"].shape[0]), shift


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _from_keys(
    state: dict[str, torch.Tensor], source: str, cfg: ModelConfig, frames: int, need_classifier: bool
) -> VideoModel:
    """A TSN / TSM baseline teacher from an mmaction or TSM-code state_dict."""
    from archs import WeightsError, load_weights

    if any(k.startswith("backbone.") for k in state):  # mmaction (a ResKD run: its teacher, high_res_path)
        rkd = any(k.startswith("backbone.high_res_path.") for k in state)
        prefix = "backbone.high_res_path." if rkd else "backbone."
        backbone = {mmaction_resnet_key(k): v for k, v in _strip(state, prefix).items()}
        head = _strip(state, "cls_head.fc_cls_t." if rkd else "cls_head.fc_cls.")
        mmaction = True
    else:  # the TSM code
        backbone, head, mmaction = _strip(state, "base_model."), _strip(state, "new_fc."), False
    arch, width, shift = resnet_from_keys(backbone, source)
    if need_classifier and not head:
        raise ValueError(
            f"--kd_loss kl: {source} has no classifier (cls_head.fc_cls / new_fc) for the teacher"
        )
    num_classes = int(head["weight"].shape[0]) if head else cfg.num_classes
    teacher_cfg = ModelConfig(
        preset=cfg.preset,
        model="tsm" if shift else "tsn",
        num_classes=num_classes,
        focus_arch=arch,
        focus_base_width=width,
        num_segments=frames,
        input_size=cfg.input_size,
        pretrain="none",
        partial_bn=False,
        consensus_first=mmaction and not shift,  # mmaction's TSN head averages first; its TSM head does not
    )
    teacher = build_model(teacher_cfg)
    try:
        load_weights(teacher.base_model, backbone, strict=True)
    except WeightsError as exc:
        raise ValueError(f"--distill {source}: {exc}") from None
    if head:
        teacher.new_fc.load_state_dict(head)
    return teacher


def _ours(ckpt: Mapping, state: dict[str, torch.Tensor], source: str, frames: int) -> VideoModel:
    """The model of our checkpoint's model_config (frames per clip set to `frames` when that is what it reads)."""
    values = {**ckpt["model_config"], "partial_bn": False, "pretrain": "none"}
    cfg = config_from_dict(values)
    if sum(input_layout(cfg)) != frames and cfg.num_segments is not None:
        cfg = config_from_dict({**values, "num_segments": frames})
    if sum(input_layout(cfg)) != frames:
        raise ValueError(
            f"--distill {source}: the teacher ({cfg.model}) reads {sum(input_layout(cfg))} frames per clip, the "
            f"student's distilled features come from {frames}"
        )
    teacher = build_model(cfg)
    try:
        teacher.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"--distill {source} does not fit its own model_config: {exc}") from None
    return teacher


def build_teacher(
    ckpt: Mapping, source: str, *, cfg: ModelConfig, frames: int, need_classifier: bool = False
) -> VideoModel:
    """Returns the teacher of checkpoint `ckpt` (read from `source`) for a student of config `cfg` whose distilled
    feature map comes from `frames` frames per clip; in train mode, weights loaded. ValueError naming the file."""
    state = strip_module_prefix(ckpt["state_dict"])
    if ckpt.get("model_config"):
        return _ours(ckpt, state, source, frames).train()
    if any(k.startswith(("backbone.", "base_model.")) for k in state):
        return _from_keys(state, source, cfg, frames, need_classifier).train()
    raise ValueError(
        f"--distill {source}: not a teacher checkpoint this framework can build (ours with model_config, an "
        f"mmaction recognizer with backbone.* keys, or a TSM checkpoint with base_model.* keys); keys "
        f"{sorted(state)[:5]}"
    )
