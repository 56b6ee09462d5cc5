"""The CUDA paths, shown on CPU with proxies: a tensor on the `meta` device stands in for one on a GPU (an op that
mixes it with a CPU tensor fails the same way), CPU autocast for CUDA autocast, and unit tests of the guards."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ops.tools.benchmark import train_step_fn


class _MetaClassifier(nn.Module):
    """A linear classifier over uint8 clips whose criterion keeps everything on the logits' device."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x.flatten(2)).mean(1)}

    def criterion(self):
        return lambda out, target: (F.cross_entropy(out["logits"], target), {})


def test_benchmark_training_step_draws_its_labels_on_the_frames_device():
    model = _MetaClassifier(5).to("meta")
    frames = torch.zeros(2, 3, 3, 4, 4, dtype=torch.uint8, device="meta")
    step = train_step_fn(model, frames, 5)
    step()  # labels drawn on the CPU for logits on another device: "not on the expected device"
    assert model.fc.weight.device.type == "meta"
