"""Cross-resolution knowledge distillation (ResKD, NeurIPS 2022) as a wrapper of any method's model: registers the
`reskd` wrapper (the in-model resize of a `--student_size` student, and the distillation flags) when imported."""

from __future__ import annotations

from models.core.registry import Wrapper, register_wrapper
from models.reskd.distill import DistillConfig, Distiller, attach_teacher, build_student
from models.reskd.flags import add_arguments
from models.reskd.recipe import distill_recipe

register_wrapper(
    Wrapper(
        "reskd",
        "distillation (ResKD; models/reskd/)",
        build_student,
        add_arguments,
        distill_recipe,
    )
)

__all__ = ["DistillConfig", "Distiller", "attach_teacher"]
