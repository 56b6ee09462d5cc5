"""The one name table of the backbones: accepted spellings, families, and the input conventions of their published
weights. `archs.create_backbone` and every model read backbone names through it."""

from __future__ import annotations

# Accepted spellings of the backbone names -> the names of archs.BACKBONES.
ARCH_ALIASES = {
    "mbv2": "mobilenetv2",
    "mobilenetv2": "mobilenetv2",
    "mobilenet_v2": "mobilenetv2",
    "resnet18": "resnet18",
    "res18": "resnet18",
    "resnet34": "resnet34",
    "res34": "resnet34",
    "resnet50": "resnet50",
    "res50": "resnet50",
    "resnet101": "resnet101",
    "res101": "resnet101",
    "resnet152": "resnet152",
    "res152": "resnet152",
    "x3d_s": "x3d_s",
    "x3d_m": "x3d_m",
    "x3d_l": "x3d_l",
    # Efficient-3DCNNs (3-D networks of Köpüklü et al.; `_3d` keeps them apart from the 2-D ImageNet nets)
    "mobilenet_3d": "mobilenet_3d",
    "mbv1_3d": "mobilenet_3d",
    "mobilenetv2_3d": "mobilenetv2_3d",
    "mbv2_3d": "mobilenetv2_3d",
    "shufflenet_3d": "shufflenet_3d",
    "shufflenetv2_3d": "shufflenetv2_3d",
    "squeezenet_3d": "squeezenet_3d",
    "resnet18_3d": "resnet18_3d",
    "resnet50_3d": "resnet50_3d",
    "resnet101_3d": "resnet101_3d",
    "resnext101_3d": "resnext101_3d",
    # TAdaConv
    "tada2d_r50": "tada2d_r50",
    "tada2d": "tada2d_r50",
    "tadaconvnextv2_t": "tadaconvnextv2_t",
    "tadaconvnextv2_s": "tadaconvnextv2_s",
    "tadaconvnextv2_b": "tadaconvnextv2_b",
}
X3D_ARCHS = ("x3d_s", "x3d_m", "x3d_l")
E3D_ARCHS = ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d", "squeezenet_3d")
E3D_ARCHS += ("resnet18_3d", "resnet50_3d", "resnet101_3d", "resnext101_3d")
E3D_WIDTH_ARCHS = ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d")  # read width_mult
TADA_ARCHS = ("tada2d_r50", "tadaconvnextv2_t", "tadaconvnextv2_s", "tadaconvnextv2_b")
# 3-D networks on whole clips; the others are per-frame 2-D networks
CLIP_ARCHS = X3D_ARCHS + E3D_ARCHS + TADA_ARCHS
# The Efficient-3DCNNs `--model` name of each network (its checkpoints store it as `arch`; its run names use it).
E3D_ORIGINAL_NAMES = {
    "mobilenet_3d": "mobilenet",
    "mobilenetv2_3d": "mobilenetv2",
    "shufflenet_3d": "shufflenet",
    "shufflenetv2_3d": "shufflenetv2",
    "squeezenet_3d": "squeezenet",
    "resnet18_3d": "resnet",
    "resnet50_3d": "resnet",
    "resnet101_3d": "resnet",
    "resnext101_3d": "resnext",
}
# Input conventions of the clip networks' published weights: (mean, std, pixel scale) of the normalisation
# (x / scale - mean) / std, and the datasets whose frames the original fed in BGR order. Efficient-3DCNNs:
# 0-255 values minus the ActivityNet mean (its --mean_dataset default), std 1; its Kinetics loader reads
# videos with cv2 and never converts, so its Kinetics models saw BGR (Jester / UCF-101 frames: RGB).
# TAdaConv: RGB in [0, 1], mean 0.45, std 0.225.
E3D_INPUT = ((114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 1.0)
E3D_BGR_DATASETS = ("kinetics",)
TADA_INPUT = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 255.0)
# How a backbone is spelled in run names (the original AN command line says `--glance_arch mbv2`).
RUN_NAME_ARCH = {"mobilenetv2": "mbv2"}


def canonical_arch(name: str) -> str:
    """Returns the backbone name of archs.BACKBONES for `name` ('mbv2' -> 'mobilenetv2'); raises ValueError."""
    key = name.lower().replace("-", "_")
    if key not in ARCH_ALIASES:
        raise ValueError(f"unknown backbone {name!r} (choose from {', '.join(sorted(set(ARCH_ALIASES)))})")
    return ARCH_ALIASES[key]


def is_clip_arch(name: str) -> bool:
    """True for 3-D clip networks (X3D, Efficient-3DCNNs, TAdaConv), False for per-frame 2-D networks."""
    return canonical_arch(name) in CLIP_ARCHS


def clip_input(arch: str, dataset: str | None) -> tuple[tuple, tuple, float, bool] | None:
    """Returns (mean, std, pixel scale, bgr) of the input convention of clip network `arch`'s published
    weights on `dataset` (E3D_INPUT / TADA_INPUT), or None for the others (ImageNet RGB, as the frames)."""
    arch = canonical_arch(arch)
    if arch in E3D_ARCHS:
        return (*E3D_INPUT, dataset in E3D_BGR_DATASETS)
    if arch in TADA_ARCHS:
        return (*TADA_INPUT, False)
    return None


def run_name_arch(arch: str) -> str:
    """Returns how a backbone is spelled in run names."""
    return RUN_NAME_ARCH.get(arch, arch)
