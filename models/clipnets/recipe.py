"""The recipes of the originals of the clip methods (their README / config values), on top of the preset's:
- e3d (Efficient-3DCNNs README commands and opts.py): SGD lr 0.1, momentum 0.9 with dampening 0.9, weight decay
  1e-3, batch 64, 250 epochs, lr x0.1 at epochs 40, 55, 65, 70, 200, 250 of its 1-based count (= 39, 54, ... here,
  where epochs count from 0), no gradient clipping, no mixed precision, 16 x 112^2 clips;
- tada (configs/projects/tada/k400/tada2d_8x8.yaml): SGD-Nesterov lr 0.24 at batch 128, cosine over 100 epochs
  (its 8 warm-up epochs are not reproduced), weight decay 1e-4, head dropout 0.5, 8 frames at 224^2, ImageNet
  initialisation.
Per dataset: the Efficient-3DCNNs README trains Jester with --downsample 2; the built-in synthetic data gets short
runs (5 epochs, batch 16, the lr scaled linearly to that batch).
"""

from __future__ import annotations

E3D_RECIPE = {
    "*": dict(
        lr=0.1,
        lr_type="step",
        lr_steps=[39.0, 54.0, 64.0, 69.0, 199.0, 249.0],
        momentum=0.9,
        dampening=0.9,
        weight_decay=1e-3,
        batch_size=64,
        epochs=250,
        clip_gradient=None,
        amp="none",
        input_size=112,
        pretrain="none",
        downsample=1,
    ),
    "jester": dict(downsample=2),
    "synthetic": dict(workers=2, epochs=5, batch_size=16, lr=0.025),
}
TADA_RECIPE = {
    "*": dict(
        lr=0.24,
        lr_type="cos",
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        batch_size=128,
        epochs=100,
        clip_gradient=None,
        amp="none",
        dropout=0.5,
        input_size=224,
        pretrain="imagenet",
        downsample=8,
    ),
    "synthetic": dict(workers=2, epochs=5, batch_size=16, lr=0.03, pretrain="none"),
}
