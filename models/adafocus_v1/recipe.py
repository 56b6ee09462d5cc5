"""AdaFocus V1's recipe: the ActivityNet code's values (conf/default.yaml and the README's command lines, which set
dropout 0.8, patch 128, workers 8; FCVID and Mini-Kinetics use the same values, no others are published), the
values of each training stage's README command line, and the demo's."""

from __future__ import annotations

RECIPE = {
    "own_recipe": True,
    "datasets": ("actnet", "fcvid", "minik", "synthetic"),
    "*": dict(
        glance_arch="mobilenetv2",
        focus_arch="resnet50",
        num_segments=16,
        input_size=224,
        patch_size=128,
        glance_size=224,
        glance_output_stride=32,
        dropout=0.8,
        workers=8,
        batch_size=64,
        lr_type="cos",
        lr_steps=[50.0, 100.0],
        momentum=0.9,
        weight_decay=1e-4,
        clip_gradient=None,  # clip_grad: 20 is defined but never applied
        amp="fp16",
        eval_freq=5,
        pretrain="imagenet",
        partial_bn=False,
        action_dim=49,
        policy_hidden_dim=1024,
        gru_hidden_dim=1024,
        gamma=0.7,
        policy_lr=3e-4,
        reward="random",
        continuous=False,
        action_std=0.25,
        pretrain_net="glancer",
        finetune_focus=False,
    ),
    "stages": {
        0: dict(lr=0.01, epochs=15),
        1: dict(lr=5e-4, fc_lr=0.05, epochs=50),
        2: dict(lr=5e-4, fc_lr=0.05, epochs=50),  # PPO: Adam at policy_lr; lr and fc_lr are not used
        3: dict(lr=5e-4, fc_lr=0.005, epochs=10),
    },
    # The demo: the synthetic preset's small ResNet-18 nets (width 16) at 128 px, 8 frames, CPU-sized widths.
    "synthetic": dict(
        glance_arch="resnet18",
        focus_arch="resnet18",
        glance_base_width=16,
        focus_base_width=16,
        glance_output_stride=16,
        num_segments=8,
        input_size=128,
        patch_size=64,
        glance_size=80,
        policy_hidden_dim=256,
        gru_hidden_dim=256,
        dropout=0.5,
        workers=2,
        batch_size=16,
        epochs=5,
        amp="none",
        eval_freq=1,
        pretrain="none",
    ),
}
DATASETS = RECIPE["datasets"]


def stage_recipe(stage: int, dataset: str | None = None) -> dict:
    """Returns the values of training stage `stage` that the dataset's entry of the recipe does not set."""
    dataset_values = RECIPE.get(dataset or "", {})
    return {k: v for k, v in RECIPE["stages"][stage].items() if k not in dataset_values}
