"""The recipes of the originals of the clip methods (their README / config values), on top of the preset's.

e3d: Efficient-3DCNNs, its README commands and `opts.py`: SGD lr 0.1, momentum 0.9 with dampening 0.9, weight
decay 1e-3, batch 64, 250 epochs, lr x0.1 at epochs 40, 55, 65, 70, 200, 250 of its 1-based count (= 39, 54, ...
here, where epochs count from 0), no gradient clipping, no mixed precision, 16 x 112^2 clips; Jester
`--downsample 2`.

tada: TAdaConv (alibaba-mmai-research/TAdaConv), one recipe per network, each read from its Kinetics-400 config
and the files it inherits (`_BASE_RUN: configs/pool/run/training/from_scratch_large.yaml`, whose values override
`configs/pool/base.yaml`):
- TAda2D-R50 8x8 (`TADA_RECIPE`): `configs/projects/tada/k400/tada2d_8x8.yaml` over
  `configs/projects/tada/tada2d_k400.yaml`: TRAIN.BATCH_SIZE 128, OPTIMIZER: BASE_LR 0.24, OPTIM_METHOD sgd,
  MOMENTUM 0.9, NESTEROV true, WEIGHT_DECAY 1e-4, LR_POLICY cosine, MAX_EPOCH 100, WARMUP_EPOCHS 8,
  WARMUP_START_LR 0.01; VIDEO.HEAD.DROPOUT_RATE 0.5; DATA: NUM_INPUT_FRAMES 8, SAMPLING_RATE 8,
  TRAIN_JITTER_SCALES [224, 340], TRAIN_CROP_SIZE 224; TRAIN.INIT in1k (the ImageNet ResNet-50), FINE_TUNE true,
  LR_REDUCE unset (base.yaml: false); from_scratch_large.yaml: AUGMENTATION.COLOR_AUG false, TRAIN.EVAL_PERIOD 5,
  BN.WEIGHT_DECAY 0.0. The lr follows `runs/train.py`: `get_epoch_lr(cur_epoch + cur_iter / data_size)`, i.e.
  per iteration, with `tadaconv/models/utils/lr_policy.py`'s linear warm-up to the cosine's value at epoch 8.
- TAdaConvNeXtV2-T / S / B 16x5 (`ARCH_RECIPES`): `configs/projects/tadaconvnextv2/tadaconvnextv2_{tiny,small,
  base}_k400_16f.yaml`: OPTIM_METHOD adamw, BASE_LR 5e-4 (T) / 2.5e-4 (S, B) at TRAIN.BATCH_SIZE 128 (T) / 64 (S,
  B) per node, whose comments give the total batch "128x4=512" / "64x4=256"; WEIGHT_DECAY 0.02, cosine over 100
  epochs, WARMUP_EPOCHS 8 from WARMUP_START_LR 1e-6; VIDEO.BACKBONE.DROP_PATH 0.2 / 0.4 / 0.6,
  VIDEO.HEAD.DROPOUT_RATE 0.5; TRAIN: INIT in1k (ConvNeXt ImageNet-1k weights, `tadaconv/utils/checkpoint.py`'s
  `convnext_{tiny,small,base}_1k_224_ema.pth`), FINE_TUNE true, LR_REDUCE true; DATA: NUM_INPUT_FRAMES 16,
  SAMPLING_RATE 5, TRAIN_JITTER_SCALES [0.08, 1.0] (a random resized crop), AUGMENTATION.RATIO [0.75, 1.333];
  AUGMENTATION: AUTOAUGMENT.TYPE rand-m9-n4-mstd0.5-inc1, COLOR_AUG true with COLOR_P 0.0 (no colour jitter) and
  GRAYSCALE 0.2 (AUTOAUGMENT.BEFORE_CROP true is never read: `tadaconv/datasets/base/base_dataset.py` appends
  RandAugment after the crop, as here); MIXUP, CUTMIX, RANDOM_ERASING off, LABEL_SMOOTHING 0. OPTIMIZER.HEAD_LRMULT / NEW_PARAMS(_MULT)
  are read only by `tadaconv/models/utils/optimizer.py`'s layer-wise-decay branch, which LAYER_WISE_LR_DECAY 1.0
  (base.yaml) leaves unused: the branch that runs gives the route functions ("rf") and the head 5x the lr, their
  biases 10x (LR_REDUCE with FINE_TUNE; `boost_new_lr` here), and no weight decay to names holding "bn" or "norm"
  and to every bias (models/clipnets/model.py, `tadaconv_param_group`).
The training crops are the model's (`TAdaModel.input_spec`: 'jitter' for TAda2D, 'rrc' for the ConvNeXts).
Per dataset: the built-in synthetic data gets short runs (5 epochs, batch 16, the lr scaled linearly to that batch,
the warm-up scaled with the run: 8 / 100 of 5 epochs).
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

_SHORT_RUN = dict(workers=2, epochs=5, batch_size=16, pretrain="none", warmup_epochs=0.4)

TADA_RECIPE = {
    "*": dict(
        optimizer="sgd",
        lr=0.24,
        lr_type="cos",
        lr_per_step=True,
        warmup_epochs=8.0,
        warmup_start_lr=0.01,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        batch_size=128,
        epochs=100,
        eval_freq=5,
        clip_gradient=None,
        amp="none",
        dropout=0.5,
        input_size=224,
        pretrain="imagenet",
        downsample=8,
        boost_new_lr=False,
        randaugment="none",
        grayscale=0.0,
    ),
    "synthetic": dict(_SHORT_RUN, lr=0.24 * 16 / 128),
}


def _convnext(lr: float, batch: int, drop_path: float) -> dict:
    return {
        "*": dict(
            optimizer="adamw",
            lr=lr,
            batch_size=batch,
            nesterov=False,  # AdamW: the config's NESTEROV / MOMENTUM are not read
            weight_decay=0.02,
            warmup_start_lr=1e-6,
            drop_path=drop_path,
            boost_new_lr=True,
            num_segments=16,
            downsample=5,
            randaugment="rand-m9-n4-mstd0.5-inc1",
            grayscale=0.2,
        ),
        "synthetic": dict(_SHORT_RUN, lr=lr * 16 / batch),
    }


ARCH_RECIPES = {
    "tadaconvnextv2_t": _convnext(5e-4, 512, 0.2),
    "tadaconvnextv2_s": _convnext(2.5e-4, 256, 0.4),
    "tadaconvnextv2_b": _convnext(2.5e-4, 256, 0.6),
}


def arch_recipe(arch: str, dataset: str | None) -> dict:
    """Returns the values network `arch` sets over TADA_RECIPE for `dataset` (empty for TAda2D)."""
    layers = ARCH_RECIPES.get(arch, {})
    return {**layers.get("*", {}), **layers.get(dataset or "", {})}
