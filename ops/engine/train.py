"""main.py: training with periodic validation, or validation only (`--evaluate`), on one or many processes."""

from __future__ import annotations

import argparse
import random
import time

import torch

from ops.engine import distributed as D
from ops.engine.backends import configure_backends
from ops.engine.batchnorm import check_batch_statistics, sync_batchnorm
from ops.engine.checkpoint import (
    CheckpointSaveError,
    RNGWorldSizeError,
    check_writable,
    get_rng_state,
    load_checkpoint,
    rank_states,
    restore_rng,
    save_checkpoint,
)
from ops.engine.loops import (
    build_dataset,
    build_loader,
    input_spec,
    predict,
    save_scores,
    seed_epoch,
    summarize,
    train_one_epoch,
)
from ops.engine.optim import adjust_learning_rate, build_optimizer, make_grad_scaler, model_param_groups
from ops.engine.runlog import RunLogger
from ops.engine.setup import build, load_dataset_config, metric_name


def main_worker(args: argparse.Namespace) -> dict | None:
    """One process of main.py; returns the last validation metrics on the main process."""
    info = D.init(args)
    backends = configure_backends(args, info.device, training=not args.evaluate)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    D.seed_everything(seed, info.rank)
    with D.closing(info), RunLogger(args.log_dir, enabled=info.is_main) as logger:
        if backends:
            logger.info(backends)
        return _run(args, info, seed, logger)


def _run(args: argparse.Namespace, info: D.DistInfo, seed: int, logger: RunLogger) -> dict | None:
    config = load_dataset_config(args)
    model, cfg = build(args, info, config)
    if not args.evaluate:
        model, note = sync_batchnorm(model, args, info)
        if note:
            logger.info(note)
    layout = model.input_layout(cfg)
    logger.write_args(args)
    for note in getattr(args, "config_notes", ()):  # where the model came from (ops/model_source.py)
        logger.info(note)
    criterion = model.criterion()
    if info.world_size > 1 and not args.evaluate and model.single_process:
        raise ValueError(f"{model.single_process}; this run has {info.world_size} processes")
    optimizer = model.make_optimizer(args)
    if optimizer is None:
        optimizer = build_optimizer(model_param_groups(model, args), args)
    scaler = make_grad_scaler(info.device, args.amp)
    start_epoch, best = 0, None
    if getattr(args, "resume_auto", False) and not args.resume:
        logger.info(f"=> --resume auto: no checkpoint in {args.run_dir} yet, starting from scratch")
    if args.resume:
        ckpt = load_checkpoint(
            args.resume,
            model,
            None if args.evaluate else optimizer,
            None if args.evaluate else scaler,
            trust=args.trust_checkpoint,
        )
        start_epoch, best = ckpt["epoch"], ckpt["best_metric"]
        seed = (
            ckpt.get("seed", seed) if args.seed is None else seed
        )  # replay the interrupted run's data order
        if not args.evaluate:
            _restore_rng(args, info, ckpt, seed, start_epoch, logger)
        logger.info(f"=> loaded {args.resume} (epoch {start_epoch}, best {best})")
    if args.start_epoch is not None:
        start_epoch = args.start_epoch
    spec = input_spec(model)
    val_set = build_dataset(args, config, "val", layout, num_clips=args.num_clips, spec=spec)
    val_loader = build_loader(val_set, args, info, shuffle=False)
    name = metric_name(config)
    if args.evaluate:
        pred = predict(model, val_loader, args, info, logger)
        metrics = summarize(pred, config.multi_label)
        logger.info("Testing: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        logger.log_metrics(start_epoch, "test", metrics)
        if args.save_scores and info.is_main:
            save_scores(args.save_scores, pred, [val_set.records[i].path for i in pred.index.tolist()])
        return metrics if info.is_main else None

    train_set = build_dataset(args, config, "train", layout, spec=spec)
    train_loader = build_loader(train_set, args, info, shuffle=True, drop_last=True)
    if len(train_loader) == 0:
        raise ValueError(
            f"{config.train_list}: {len(train_set)} videos give no full batch of "
            f"{args.batch_size // info.world_size} per process; lower --batch-size"
        )
    check_batch_statistics(model, train_loader.batch_size, info)
    train_model = D.wrap_ddp(model, info, find_unused_parameters=model.find_unused_parameters)
    if args.compile:
        train_model = torch.compile(train_model)
    metrics = None
    for epoch in range(start_epoch, args.epochs):
        seed_epoch(train_loader, epoch, seed, info.rank)
        train_set.reset_counters()
        lr = adjust_learning_rate(optimizer, epoch, args)  # per iteration too with --lr_per_step (engine)
        t0 = time.perf_counter()
        stats = train_one_epoch(
            train_model, criterion, train_loader, optimizer, args, info, epoch, logger, scaler
        )
        stats["epoch_s"] = time.perf_counter() - t0
        for counter in ("missing_frames", "bad_videos"):  # counted replacements / skips of this epoch
            if getattr(train_set, counter):
                stats[counter] = getattr(train_set, counter)
        logger.log_metrics(epoch, "train", stats, lr)
        logger.info(f"Epoch {epoch}: lr {lr:.5f} " + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
        is_best = False
        if (epoch + 1) % args.eval_freq == 0 or epoch == args.epochs - 1:
            D.broadcast_buffers(model, info)  # every rank evaluates rank 0's BN statistics: the saved model
            pred = predict(model, val_loader, args, info, logger)
            metrics = summarize(pred, config.multi_label)
            is_best = best is None or metrics[name] > best
            best = metrics[name] if is_best else best
            metrics[f"{name}_best"] = best
            logger.log_metrics(epoch, "test", metrics)
            logger.info(f"Epoch {epoch} test: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        rng = rank_states(D.all_gather_objects(get_rng_state(), info))  # each rank's own states
        failed = None
        if info.is_main:
            try:
                save_checkpoint(
                    args.run_dir,
                    model,
                    epoch=epoch + 1,
                    best_metric=best,
                    is_best=is_best,
                    optimizer=optimizer,
                    scaler=scaler,
                    args=args,
                    extra={"model_config": cfg.to_dict(), "seed": seed, "categories": config.categories},
                    rng=rng,
                )
            except CheckpointSaveError as exc:
                failed = str(exc)
        failed = D.all_gather_objects(failed, info)[0]  # every rank stops with rank 0's reason (no hang)
        if failed:
            raise CheckpointSaveError(f"epoch {epoch}: {failed}")
    return metrics if info.is_main else None


def _restore_rng(
    args: argparse.Namespace, info: D.DistInfo, ckpt: dict, seed: int, epoch: int, logger: RunLogger
) -> None:
    """Restores this rank's RNG states from `ckpt`; saved by another number of processes, every rank is reseeded
    from (seed, epoch, rank) instead (a warning says the draws are not replayed)."""
    try:
        if not restore_rng(ckpt, rank=info.rank, world_size=info.world_size):
            logger.info(
                f"{args.resume}: no RNG state saved; the resumed run will not replay the original draws"
            )
    except RNGWorldSizeError as exc:
        logger.info(f"WARNING {args.resume}: {exc}")
        D.seed_everything((seed * 1000 + epoch) * 1000, info.rank)


def run(args: argparse.Namespace) -> dict | None:
    """Entry of main.py: launches the processes the flags ask for and runs training / evaluation in each. The log
    and checkpoint folders must be writable: a run is refused before its first step otherwise."""
    check_writable(args.log_dir, "--root_log")
    if not args.evaluate:
        check_writable(args.run_dir, "--root_model" if "root_model" in args.explicit else "--root_log")
    return D.launch(main_worker, args)
