"""AdaFocus V2's recipe (its READMEs' command lines per preset and dataset, and the demo's), layered over the
shared preset values (models/core/recipes.py)."""

from __future__ import annotations

RECIPE = {
    "*": dict(concat_branches=False),  # two focus forwards, as the original
    "an": dict(
        num_glance_segments=16,
        num_input_focus_segments=16,
        num_focus_segments=16,
        dropout=0.2,
        fc_dropout=0.2,
        stn_hidden_dim=2048,
        lr=0.002,
        batch_size=32,
        weight_decay=1e-4,
        clip_gradient=None,
        global_lr_ratio=0.5,
        stn_lr_ratio=0.1,
        classifier_lr_ratio=5.0,
        amp="none",
        coarse_to_fine=True,
    ),
    "minik": dict(lr=0.003, batch_size=48, fc_dropout=0.2),
    "tsm": dict(
        num_glance_segments=8,
        num_input_focus_segments=12,
        num_focus_segments=12,
        stn_hidden_dim=1024,
        lr=0.01,
        batch_size=32,
        weight_decay=5e-4,
        global_lr_ratio=0.5,
        stn_lr_ratio=0.01,
        amp="none",
        coarse_to_fine=False,
    ),
    "something": dict(weight_decay=5e-4),
    "jester": dict(weight_decay=5e-4),
    # The demo (on top of the synthetic Uni-AdaFocus recipe): N = K = 4 patch frames, uniform (V2 selects no
    # frames), the focus budget of the Uni-AdaFocus demo (with 8, focus pretraining reached training accuracy
    # 0.58 instead of 0.99: half the clips per step); the 'tsm' lr 0.01 at batch 32 scaled to batch 16; the
    # policy at Uni-AdaFocus's ratio 0.2 (V2's 0.01 barely moves it in the demo's 300 steps).
    "synthetic": dict(
        num_input_focus_segments=4,
        num_focus_segments=4,
        stn_hidden_dim=256,
        lr=0.005,
        batch_size=16,
        stn_lr_ratio=0.2,
    ),
}
