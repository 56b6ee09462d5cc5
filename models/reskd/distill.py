"""Cross-resolution knowledge distillation (ResKD, NeurIPS 2022) around any model of the framework.

`Distiller` wraps a model (the student): every frame is resized to `cfg.student_size` inside the model (bilinear,
align_corners=False, no antialias, as ResKD's `F.interpolate`) in training and in evaluation, so the student is
deployed alone on the usual crops. While training, a frozen teacher (`attach_teacher`, built from its checkpoint
by models/reskd/teacher.py) sees the same frames at the loader's resolution; the student's feature map (`kd_featmap`
of models/core/interface.py) is up-sampled bilinearly to the teacher's grid and the KD term joins the student's criterion:
- `mse` (ResKD's CNN heads): weight * mean over all elements of (student map - teacher map)^2, weight 100;
- `kl` (ResKD's Swin head): each model's classifier applied at every position of its map, then
  weight * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) summed and divided by positions x classes (PyTorch's
  `reduction='mean'`, as the original: the effective per-position weight is weight * T^2 / classes), weight 200,
  T = 2.
The teacher gets no gradient and is never in the optimizer (`param_groups` is the student's); its BatchNorm stays
in train mode by default (ResKD: running statistics keep moving under no_grad), `teacher_bn='eval'` freezes them.
The state_dict is the student's alone (same keys as the plain model), so a distilled checkpoint evaluates without
the teacher: build the model with the same `--student_size`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.core.config import ModelConfig
from models.core.interface import VideoModel
from models.core.losses import Criterion
from models.reskd.teacher import build_teacher

KD_LOSSES = ("mse", "kl")
TEACHER_BN = ("train", "eval")
# The ResKD configs: every CNN config (RKD2DHead / RKD3DHead) weighs the MSE by 100; the Swin config
# (GeneralRKD3DHead) the KL by 200 at temperature 2.
KD_DEFAULTS = {"mse": {"weight": 100.0}, "kl": {"weight": 200.0, "temperature": 2.0}}


@dataclass
class DistillConfig:
    """What a distilled run adds to its model: the teacher file and the KD term (None: the ResKD value)."""

    teacher: str
    loss: str = "mse"
    weight: float | None = None
    temperature: float | None = None
    teacher_bn: str = "train"

    def __post_init__(self) -> None:
        if self.loss not in KD_LOSSES:
            raise ValueError(f"--kd_loss must be one of {', '.join(KD_LOSSES)}, got {self.loss!r}")
        if self.teacher_bn not in TEACHER_BN:
            raise ValueError(f"--teacher_bn must be one of {', '.join(TEACHER_BN)}, got {self.teacher_bn!r}")
        if self.temperature is not None and self.loss != "kl":
            raise ValueError("--kd_T only applies to --kd_loss kl (the temperature of the logit KL)")
        defaults = KD_DEFAULTS[self.loss]
        self.weight = defaults["weight"] if self.weight is None else float(self.weight)
        if self.loss == "kl":
            self.temperature = (
                defaults["temperature"] if self.temperature is None else float(self.temperature)
            )
            if self.temperature <= 0:
                raise ValueError(f"--kd_T must be > 0, got {self.temperature}")
        if self.weight < 0:
            raise ValueError(f"--kd_weight must be >= 0, got {self.weight}")


def resize_frames(x: torch.Tensor, size: int) -> torch.Tensor:
    """Returns frames x (B, T, 3, H, W) resized to (B, T, 3, size, size): bilinear, align_corners=False, no
    antialias (at a factor of 2 this is 2x2 average pooling); x itself when it already has that size."""
    if x.shape[-2:] == (size, size):
        return x
    y = F.interpolate(x.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False)
    return y.view(*x.shape[:2], *y.shape[1:])


def upsample_map(fm: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns a feature map fm (B, T, C, h, w) up-sampled bilinearly (align_corners=False) to (B, T, C, *size)."""
    if tuple(fm.shape[-2:]) == tuple(size):
        return fm
    y = F.interpolate(fm.flatten(0, 1), size=tuple(size), mode="bilinear", align_corners=False)
    return y.view(*fm.shape[:3], *y.shape[-2:])


def position_logits(fm: torch.Tensor, classifier: nn.Linear) -> torch.Tensor:
    """Returns the classifier applied at every position of fm (B, T, C, h, w): logits (B*T*h*w, classes)."""
    return classifier(fm.permute(0, 1, 3, 4, 2).reshape(-1, fm.shape[2]))


def feature_mse(student: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """Returns weight * mean((student - teacher)^2) over all elements (ResKD's `w_loss_kd * nn.MSELoss()`)."""
    return weight * F.mse_loss(student.float(), teacher.float())


def position_kl(z_s: torch.Tensor, z_t: torch.Tensor, weight: float, temperature: float) -> torch.Tensor:
    """Returns weight * T^2 * sum KL(softmax(z_t / T) || softmax(z_s / T)) / (positions * classes) for position
    logits (P, K): ResKD's `nn.KLDivLoss(reduction='mean')`, which also divides by the K classes."""
    t = temperature
    log_q = F.log_softmax(z_s.float() / t, dim=-1)
    p = F.softmax(z_t.float() / t, dim=-1)
    return weight * t * t * F.kl_div(log_q, p, reduction="sum") / p.numel()


class Distiller(VideoModel):
    """The student `student` (built for frames of side `cfg.student_size`) behind the in-model resize, and while
    training the frozen teacher of `attach_teacher`. forward(x (B, T, 3, S, S)) returns the student's dict; in
    training with a teacher also `kd_student` / `kd_teacher`: the up-sampled student map and the teacher map
    (B, T', C, H', W') (`mse`), or their position logits (P, classes) (`kl`)."""

    def __init__(self, student: VideoModel, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.student = student
        self.teacher: VideoModel | None = None
        self.kd: DistillConfig | None = None

    def set_teacher(self, teacher: VideoModel, kd: DistillConfig) -> Distiller:
        """Attaches the frozen `teacher` (no parameter requires grad) with the KD settings; returns self."""
        if kd.loss == "kl":
            for model in (self.student, teacher):
                model.kd_classifier()  # raises for a model without a classifier to apply per position
        self.teacher = teacher.requires_grad_(False)
        self.kd = kd
        return self.train(self.training)

    def summary(self) -> str:
        """Returns one line saying which teacher distils the student and how (for the run's log)."""
        t, kd = self.teacher, self.kd
        return (
            f"teacher {type(t).__name__} ({t.cfg.model}, {t.cfg.focus_arch}), --kd_loss {kd.loss} weight "
            f"{kd.weight}, teacher BN {kd.teacher_bn}"
        )

    # ---- the student's interface, unchanged -------------------------------------------------------------
    def input_layout(self, cfg: ModelConfig) -> tuple[int, int]:  # type: ignore[override]
        return self.student.input_layout(cfg)

    @property
    def num_exits(self) -> int:
        return self.student.num_exits

    @property
    def exit_family(self) -> str:
        return self.student.exit_family

    @property
    def amp_scope(self) -> str:  # type: ignore[override]
        return self.student.amp_scope

    @property
    def find_unused_parameters(self) -> bool:  # type: ignore[override]
        return self.student.find_unused_parameters

    @property
    def policy(self) -> str:
        """The student's evaluation policy ('learned' | 'random'), for models with learned policies."""
        return self.student.policy

    @policy.setter
    def policy(self, value: str) -> None:
        self.student.policy = value

    def backbones(self) -> list[nn.Module]:
        return self.student.backbones()

    def param_groups(self) -> list[dict]:
        """Returns the student's groups: the teacher is never optimised."""
        return self.student.param_groups()

    def load_pretrained(self) -> Distiller:
        """Loads the student's pretrained weights (ResKD starts the student from ImageNet, not the teacher)."""
        self.student.load_pretrained()
        return self

    def kd_featmap(self, outputs: dict) -> torch.Tensor:
        return self.student.kd_featmap(outputs)

    def kd_frames(self, outputs: dict) -> torch.Tensor | None:
        return self.student.kd_frames(outputs)

    def kd_frame_count(self, cfg: ModelConfig) -> int:
        return self.student.kd_frame_count(cfg)

    def kd_classifier(self) -> nn.Linear:
        return self.student.kd_classifier()

    def state_dict(self, *args, **kwargs):
        """The student's state_dict: the keys of the plain model, without the teacher."""
        return self.student.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping, strict: bool = True, assign: bool = False):
        return self.student.load_state_dict(state_dict, strict=strict, assign=assign)

    def train(self, mode: bool = True) -> Distiller:
        """Sets train mode (the student keeps its partial BN); the teacher follows only with teacher_bn 'train'."""
        nn.Module.train(self, mode)
        if self.teacher is not None:
            self.teacher.train(mode and self.kd.teacher_bn == "train")
        return self

    def gflops_breakdown(self) -> dict:
        """The student's GFLOPs at its own resolution (the resize costs no MACs); a teacher's cost per training
        video is reported under `not_in_total` (it never runs at inference)."""
        out = self.student.gflops_breakdown()
        if self.teacher is not None:
            teacher = self.teacher.gflops_breakdown()["total"]
            out["not_in_total"] = {**out.get("not_in_total", {}), "teacher_training_only": teacher}
        return out

    # ---- forward and loss -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Runs the student on x (B, T, 3, S, S) resized to student_size; returns its dict (+ the KD pair)."""
        out = self.student(resize_frames(x, self.cfg.student_size) if self.cfg.student_size else x)
        if self.training and self.teacher is not None:
            out.update(self._kd_pair(x, out))
        return out

    def _kd_pair(self, x: torch.Tensor, out: dict) -> dict[str, torch.Tensor]:
        f_s = self.student.kd_featmap(out)
        idx = self.student.kd_frames(out)
        if idx is not None:
            x = x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]
        with torch.no_grad():  # BN statistics still move in train mode (ResKD)
            f_t = self.teacher.kd_featmap(self.teacher(x))
        if f_s.shape[:2] != f_t.shape[:2] or (self.kd.loss == "mse" and f_s.shape[2] != f_t.shape[2]):
            raise ValueError(
                f"--distill: the student's feature map {tuple(f_s.shape)} and the teacher's {tuple(f_t.shape)} "
                "(B, T, C, h, w) do not match (same videos, frames and, for --kd_loss mse, channels)"
            )
        f_s = upsample_map(f_s, f_t.shape[-2:])
        if self.kd.loss == "mse":
            return {"kd_student": f_s, "kd_teacher": f_t}
        with torch.no_grad():
            z_t = position_logits(f_t, self.teacher.kd_classifier())
        return {"kd_student": position_logits(f_s, self.student.kd_classifier()), "kd_teacher": z_t}

    def criterion(self) -> Criterion:
        """Returns the student's criterion, plus with a teacher the KD term in training: loss = loss_cls + loss_kd,
        both reported as parts."""
        base, kd = self.student.criterion(), self.kd
        if kd is None:
            return base

        def distilled(outputs: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            loss, parts = base(outputs, target)
            if "kd_student" not in outputs:  # evaluation: the teacher did not run
                return loss, parts
            s, t = outputs["kd_student"], outputs["kd_teacher"]
            if kd.loss == "mse":
                term = feature_mse(s, t, kd.weight)
            else:
                term = position_kl(s, t, kd.weight, kd.temperature)
            total = loss + term
            values = torch.stack([v.detach().float() for v in (total, loss, term)]).tolist()  # one sync
            return total, {**parts, "loss": values[0], "loss_cls": values[1], "loss_kd": values[2]}

        return distilled


def build_student(model_cls: type[VideoModel], cfg: ModelConfig) -> VideoModel | None:
    """The registry's build hook: `model_cls` built for `cfg.student_config()` behind the in-model resize when
    `cfg.student_size` is set, else None (the plain model)."""
    if cfg.student_size is None:
        return None
    return Distiller(model_cls(cfg.student_config()), cfg)


def attach_teacher(
    model: VideoModel, ckpt: Mapping, source: str, kd: DistillConfig, cfg: ModelConfig
) -> Distiller:
    """Returns `model` (wrapped in a Distiller unless it is one) with the frozen teacher of checkpoint `ckpt` (read
    from `source`) attached; the teacher is built for the student's frames (models/reskd/teacher.py)."""
    student = model if isinstance(model, Distiller) else Distiller(model, cfg)
    teacher = build_teacher(
        ckpt, source, cfg=cfg, frames=student.kd_frame_count(cfg), need_classifier=kd.loss == "kl"
    )
    return student.set_teacher(teacher, kd)
