"""main_nViewEval.py (multi-view evaluation) and test_early_exit.py (sample-wise dynamic evaluation)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np
import torch

from archs.weights import UnreadableFileError, load_torch_file
from ops.engine import distributed as D
from ops.engine.distributed import split_workers
from ops.engine.early_exit import no_exit_point, plot_curve, sweep, write_csv
from ops.engine.flops import exit_gflops
from ops.engine.loops import (
    Predictions,
    build_dataset,
    build_loader,
    input_spec,
    predict,
    save_scores,
    summarize,
)
from ops.engine.runlog import RunLogger
from ops.engine.setup import setup_eval


def nview_worker(args: argparse.Namespace) -> dict | None:
    """Evaluates `--resume` over test_crops x num_clips views per video; prints metrics and GFLOPs x views."""
    info, config, model, cfg = setup_eval(args)
    logger = RunLogger(args.log_dir, enabled=info.is_main, tensorboard=False)
    for note in getattr(args, "config_notes", ()):  # where the model came from (ops/model_source.py)
        logger.info(note)
    with D.closing(info), logger:
        layout = model.input_layout(cfg)
        val_set = build_dataset(
            args,
            config,
            "val",
            layout,
            test_crops=args.test_crops,
            num_clips=args.num_clips,
            spec=input_spec(model),
        )
        pred = predict(model, build_loader(val_set, args, info, shuffle=False), args, info, logger)
        views = args.test_crops * args.num_clips
        metrics = summarize(pred, config.multi_label)
        exits = exit_gflops(model)
        gflops = exits[-1]
        metrics.update(
            views=views, gflops_per_view=gflops, gflops=gflops * views, gflops_glance=exits[0] * views
        )
        logger.info(
            f"{args.resume}: {len(val_set)} videos x {views} views ({args.test_crops} crops x "
            f"{args.num_clips} clips): "
            + " ".join(f"{k} {v:.3f}" for k, v in metrics.items())
            + f" ({gflops:.2f} GFLOPs x {views} views)"
        )
        if info.is_main:
            with open(os.path.join(args.log_dir, f"log_eval_{views}views_{args.policy}.json"), "w") as f:
                json.dump(metrics, f, indent=1)
            if args.save_scores:
                save_scores(args.save_scores, pred, [val_set.records[i].path for i in pred.index.tolist()])
        return metrics if info.is_main else None


def run_nview(args: argparse.Namespace) -> dict | None:
    return D.launch(nview_worker, args)


def _cache_key(args: argparse.Namespace, info: D.DistInfo) -> str:
    """The exit logits' cache key: the checkpoint file, the views, the lists, the seed, and how the calibration
    augmentations were drawn (per rank and per DataLoader worker: the world size and the workers per process)."""
    stat = os.stat(args.resume)
    fields = [
        info.world_size,
        split_workers(args.workers, info.local_world_size),
        os.path.abspath(args.resume),
        stat.st_size,
        stat.st_mtime_ns,
        args.test_crops,
        args.num_clips,
        args.train_list,
        args.val_list,
        args.seed,
        getattr(args, "view_fusion", None),
    ]
    return hashlib.sha1(json.dumps(fields, default=str).encode()).hexdigest()[:16]


def _exit_logits(args, info, config, model, logger) -> tuple[Predictions, Predictions]:
    """Exit logits on the calibration split (train, training augmentation, model in eval mode, as the original)
    and on val; cached in the run folder so re-calibration takes seconds."""
    path = os.path.join(args.log_dir, f"early_exit_logits_{_cache_key(args, info)}.pt")
    if os.path.isfile(path):
        try:
            cached = load_torch_file(path)  # tensors only, never a full pickle
        except UnreadableFileError as exc:  # e.g. a run killed while writing it: compute it again
            logger.info(f"=> {exc}; computing the exit logits again")
        else:
            logger.info(f"=> cached exit logits {path}")
            return Predictions(**cached["train"]), Predictions(**cached["val"])
    layout = model.input_layout(model.cfg)
    spec = input_spec(model)
    calib = build_dataset(args, config, "train", layout, train=True, spec=spec)
    val = build_dataset(
        args, config, "val", layout, test_crops=args.test_crops, num_clips=args.num_clips, spec=spec
    )
    train_pred = predict(
        model, build_loader(calib, args, info, shuffle=False), args, info, logger, "calibrate"
    )
    val_pred = predict(model, build_loader(val, args, info, shuffle=False), args, info, logger, "val")
    if info.is_main:
        os.makedirs(args.log_dir, exist_ok=True)
        torch.save({"train": vars(train_pred), "val": vars(val_pred)}, path)
    return train_pred, val_pred


def early_exit_worker(args: argparse.Namespace) -> dict | None:
    """Writes log_early_exit_{criterion}.csv/.png and returns {criterion: points} on the main process."""
    info, config, model, cfg = setup_eval(args)
    if model.num_exits < 2:
        D.cleanup(info, wait=False)
        raise ValueError(f"--model {cfg.model} has one exit: early exit needs a model with several")
    logger = RunLogger(args.log_dir, enabled=info.is_main, tensorboard=False)
    for note in getattr(args, "config_notes", ()):  # where the model came from (ops/model_source.py)
        logger.info(note)
    with D.closing(info), logger:
        train_pred, val_pred = _exit_logits(args, info, config, model, logger)
        if not info.is_main:
            return None
        views = args.test_crops * args.num_clips
        flops = [g * views for g in exit_gflops(model)]
        family = model.exit_family
        metric = "mAP" if config.multi_label else "top1"
        base = no_exit_point(val_pred.exit_logits, val_pred.target, flops, metric)
        logger.info(f"no early exit: {metric} {base[1]:.2f} at {base[0]:.2f} GFLOPs ({views} views)")
        results = {}
        for criterion in args.criteria:
            points = sweep(
                train_pred.exit_logits,
                val_pred.exit_logits,
                val_pred.target,
                flops,
                family,
                criterion,
                metric,
                random_seed=0,
            )
            stem = os.path.join(args.log_dir, f"log_early_exit_{views}views_{criterion}")
            write_csv(points, stem + ".csv", views=views)
            plot_curve(
                points,
                stem + ".png",
                base,
                title=f"{args.store_name} ({criterion})",
                metric_name="mAP (%)" if metric == "mAP" else "top-1 (%)",
            )
            results[criterion] = points
            for p in _operating_points(points, flops):
                logger.info(
                    f"{criterion}: {metric} {p['metric']:.2f} at {p['gflops']:.2f} GFLOPs "
                    f"(exit fractions {np.round(p['exit_fractions'], 3).tolist()}; thresholds "
                    f"{' '.join(f'{t:.6g}' for t in p['thresholds'][:-1])}: scripts/predict.py --exit_threshold)"
                )
            logger.info(f"=> {stem}.csv, {stem}.png")
        return results


def _operating_points(points: list[dict], flops: list[float]) -> list[dict]:
    """The curve points closest to 1/3 and 2/3 of the full cost (for a short printed summary)."""
    full = flops[-1]
    return [min(points, key=lambda p: abs(p["gflops"] - f * full)) for f in (1 / 3, 2 / 3)]


def run_early_exit(args: argparse.Namespace) -> dict | None:
    return D.launch(early_exit_worker, args)
