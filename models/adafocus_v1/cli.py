"""AdaFocus V1's own command-line form: the `key=value` tokens of its README (hydra overrides of
conf/default.yaml), translated to this framework's flags for the one parser (ops/opts.py).

    python main.py dataset=actnet data_dir=DIR train_stage=1 batch_size=64 ... pretrained_glancer=CKPT

A later token overrides an earlier one of the same key (hydra's rule); an unknown key, or a key the original reads
but that has no effect there (or a value this framework does not support), is an error naming the key. Tokens
that are flags (`--name value`) pass through unchanged, after the translated ones. Additions: `pretrain=none`
trains from scratch (no ImageNet files).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

# key -> flag taking the value as it is
_PLAIN = {
    "dataset": "--dataset",
    "data_dir": "--data_dir",
    "train_list": "--train_list",
    "val_list": "--val_list",
    "pretrained_glancer": "--pretrained_glancer",
    "pretrained_focuser": "--pretrained_focuser",
    "train_stage": "--train_stage",
    "num_segments": "--num_segments",
    "dropout": "--dropout",
    "eval_freq": "--eval_freq",
    "epochs": "--epochs",
    "batch_size": "--batch_size",
    "backbone_lr": "--lr",
    "fc_lr": "--fc_lr",
    "lr_type": "--lr_type",
    "momentum": "--momentum",
    "weight_decay": "--weight_decay",
    "input_size": "--input_size",
    "patch_size": "--patch_size",
    "glance_size": "--glance_size",
    "feature_map_channels": "--glance_last_channel",
    "action_dim": "--action_dim",
    "hidden_state_dim": "--policy_hidden_dim",
    "hidden_dim": "--gru_hidden_dim",
    "reward": "--reward",
    "gamma": "--gamma",
    "policy_lr": "--policy_lr",
    "action_std": "--action_std",
    "seed": "--seed",
    "gpu": "--gpu",
    "workers": "--workers",
    "world_size": "--world-size",
    "rank": "--rank",
    "dist_url": "--dist-url",
    "dist_backend": "--dist-backend",
    "pretrain": "--pretrain",
}
# boolean key -> (flags when true, flags when false)
_SWITCHES = {
    "evaluate": (["--evaluate"], []),
    "pretrain_glancer": (["--pretrain_net", "glancer"], ["--pretrain_net", "focuser"]),
    "multiprocessing_distributed": (["--multiprocessing-distributed"], []),
    "amp": (["--amp", "fp16"], ["--amp", "none"]),
    "continuous": (["--continuous"], []),
    "ppo_continuous": (["--continuous"], []),
}
# keys whose only value is the one the published code runs with
_FIXED = {"consensus": "gru", "policy_conv": "true", "with_glancer": "true"}
# keys the original reads but that change nothing there (or only select unreleased variants)
_NO_EFFECT = {
    "arch": "the original never reads it",
    "k": "the original never reads it",
    "num_classes": "the dataset sets the class count",
    "root_path": "data_dir sets the dataset folder",
    "gpus": "the original never reads it",
    "npb": "the original never reads it (its networks have no partial BN)",
    "clip_grad": "defined but never applied by the original",
    "penalty": "the size-penalty reward is never called by the original",
    "dense_sample": "not used by the published runs",
    "partial_fcvid_eval": "not used by the published runs",
    "partial_ratio": "not used by the published runs",
    "ada_reso_skip": "not used by the published runs",
    "reso_list": "not used by the published runs",
    "random_crop": "not used by the published runs",
    "center_crop": "not used by the published runs",
    "ada_crop_list": "not used by the published runs",
    "rescale_to": "not used by the published runs",
    "policy_input_offset": "not used by the published runs",
    "save_meta": "not used by the published runs",
}
_KNOWN = set(_PLAIN) | set(_SWITCHES) | set(_FIXED) | {"resume", "lr_steps", "random_patch", "distributed"}


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low not in ("true", "false"):
        raise ValueError(f"AdaFocus V1 key {key}={value}: expected true or false")
    return low == "true"


def parse_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """Returns ({key: last value}, other tokens) if argv holds `key=value` tokens, else None."""
    values: dict[str, str] = {}
    rest: list[str] = []
    for token in argv:
        m = None if token.startswith("-") else _TOKEN.match(token)
        if m is None:
            rest.append(token)
        else:
            values.pop(m.group(1), None)  # the later token wins, and keeps its place
            values[m.group(1)] = m.group(2)
    return (values, rest) if values else None


def translate_argv(argv: list[str]) -> list[str] | None:
    """Returns the framework's argv for an AdaFocus V1 command line (`key=value` tokens), or None for another form.
    Raises ValueError naming an unknown or unsupported key."""
    parsed = parse_overrides(argv)
    if parsed is None:
        return None
    values, rest = parsed
    for key in values:
        if key in _NO_EFFECT:
            raise ValueError(f"AdaFocus V1 key {key!r} is not supported: {_NO_EFFECT[key]}")
        if key not in _KNOWN:
            raise ValueError(
                f"unknown AdaFocus V1 key {key!r} (the keys of its conf/default.yaml, or pretrain)"
            )
    values = {k: v for k, v in values.items() if v != ""}  # `key=` is hydra's null: the default
    out = ["--method", "adafocus_v1"]
    evaluate = _bool("evaluate", values.get("evaluate", "false"))
    stage = values.get("train_stage")
    for key, value in values.items():
        if key in _PLAIN:
            out += [_PLAIN[key], value]
        elif key in _SWITCHES:
            out += _SWITCHES[key][0 if _bool(key, value) else 1]
        elif key in _FIXED:
            if value.lower() != _FIXED[key]:
                raise ValueError(f"AdaFocus V1 key {key}={value} is not supported (only {key}={_FIXED[key]})")
        elif key == "resume":
            # The original's `resume` loads the weights of the previous stage and starts at epoch 0.
            out += ["--resume" if evaluate else "--tune_from", value]
        elif key == "lr_steps":
            out += ["--lr_steps", *value.split("-")]
        elif key == "random_patch":
            _check_random_patch(_bool(key, value), stage)
        elif key == "distributed":
            _check_distributed(_bool(key, value), values)
    if "multiprocessing_distributed" not in values:  # conf/default.yaml: true (one process per GPU)
        out.append("--multiprocessing-distributed")
    return out + rest


def _check_random_patch(random_patch: bool, stage: str | None) -> None:
    """random_patch is implied by the stage: true in stages 0-1 (stage 0 does not crop), false in 2-3."""
    if stage in ("1", "2", "3") and random_patch != (stage == "1"):
        raise ValueError(
            f"AdaFocus V1 key random_patch={str(random_patch).lower()} does not fit train_stage={stage} "
            "(stage 1 trains on random patches, stages 2 and 3 on the policy's)"
        )


def _check_distributed(distributed: bool, values: dict[str, str]) -> None:
    """The original recomputes `distributed` from the other keys; a contradicting value is an error."""
    multi = _bool("multiprocessing_distributed", values.get("multiprocessing_distributed", "true"))
    implied = multi or int(values.get("world_size", "1")) > 1
    if distributed != implied:
        raise ValueError(
            f"AdaFocus V1 key distributed={str(distributed).lower()} contradicts multiprocessing_distributed / "
            "world_size (the original derives it from them)"
        )
