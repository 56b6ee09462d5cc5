"""The demo: train Uni-AdaFocus on the built-in synthetic dataset on a CPU (minutes), evaluate it, run early exit,
and compare (a) the learned policies, (b) the same model with random patches and uniform frames, (c) the glance
network alone. The last line printed is one JSON object with the figures.

    python scripts/demo.py [--root_dataset DIR] [--root_log DIR] [--epochs N] [--seed S] [--pretrain_steps G F]
                           [--method M] [main.py flags, e.g. --shared_crop]

Any other flag is passed on to the parser of every run (training, evaluation, early exit), e.g. --shared_crop or
--resize_backend cv2. `--method adafocus_v1` runs that method instead, through its training schedule (stages 0-3,
each from the previous stage's checkpoint, every stage `--epochs` epochs; its stage 0 trains the backbones, so there
is no separate backbone pretraining); (c) is then its first exit (one frame). `--method adafocus_v2` runs V2 as
Uni-AdaFocus (backbone pretraining, then its training; (b) random patch positions on the same frames, since V2 selects
no frames). A method without learned policies (e.g. tsm) is refused before anything runs, since (b) needs them.

The glance and focus backbones are first pretrained on the training videos (ops/demo/frame_pretrain.py, the stand-in
for ImageNet weights) and saved as <root_log>/pretrained.pth.tar, which main.py loads with --tune_from; the
policies start from random. Where the policies look is measured with ops/demo/policy_check.py, and what the
networks make of the glyph when handed to them with its oracle_accuracy (glyph-centred patches). The run folder
gets policies.png (where the learned policies look on the first validation videos) and accuracy_gflops.png
(ops/demo/demo_figures.py); the JSON line also holds the seed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from models import DEFAULT_METHOD, build_model, config_from_args, get_method, method_names
from ops.demo.demo_figures import accuracy_gflops_plot, policy_picture
from ops.demo.frame_pretrain import load_frames, pretrain_backbones
from ops.demo.policy_check import glyph_coverage, oracle_accuracy
from ops.engine.checkpoint import save_checkpoint
from ops.engine.evaluate import run_early_exit, run_nview
from ops.engine.host_memory import apply_host_memory
from ops.engine.loops import build_dataset
from ops.engine.setup import load_dataset_config, setup_eval
from ops.engine.train import run
from ops.opts import parse_args


def pretrain(args, steps: tuple[int, int]) -> tuple[str, dict]:
    """Pretrains the glance and focus backbones on single clips (ops.demo.frame_pretrain) and saves the model as
    `<root_log>/pretrained.pth.tar` for --tune_from; returns its path and the training report."""
    config = load_dataset_config(args)  # generates the dataset on first use
    torch.manual_seed(args.seed)
    model = build_model(config_from_args(args, num_classes=config.num_classes))
    report = pretrain_backbones(
        model, os.path.dirname(config.train_list), glance_steps=steps[0], focus_steps=steps[1], seed=args.seed
    )
    path = save_checkpoint(args.root_log, model, epoch=0, args=args, filename="pretrained.pth.tar")
    return path, report


def run_schedule(common: list[str], schedule: tuple[tuple[str, ...], ...]) -> tuple:
    """Runs a staged method's training schedule (Method.schedule; `{i}` = the best checkpoint of step i, as the
    staged original, which saved only the best on validation); returns the last step's resolved arguments and
    its best checkpoint's path."""
    ckpts: list[str] = []
    for step in schedule:
        args = parse_args(common + [flag.format(*ckpts) for flag in step])
        print(f"=> schedule step {len(ckpts)}: {' '.join(step)}")
        run(args)
        ckpts.append(os.path.join(args.run_dir, "ckpt.best.pth.tar"))
    return args, ckpts[-1]


def inspect(args, picture: str) -> tuple[dict, dict | None]:
    """For the checkpoint `args.resume` on val: returns ({policy: glyph_coverage} for the learned and random
    policies, oracle_accuracy or None for a model it does not apply to) and writes the picture of where the
    learned policies look on the first validation videos at `picture`."""
    _, config, model, cfg = setup_eval(args)
    val = build_dataset(args, config, "val", model.input_layout(cfg))
    result = {}
    for policy in ("learned", "random"):
        model.policy = policy
        result[policy] = glyph_coverage(model, val, config.dataset_dir)
    model.policy = "learned"
    policy_picture(model, val, config.dataset_dir, picture)
    try:
        oracle = oracle_accuracy(model, load_frames(config.dataset_dir, "val", cfg.input_size))
    except ValueError as exc:  # not a TSN-wrapped glance + focus model
        print(f"oracle patches: not measured ({exc})")
        oracle = None
    return result, oracle


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dataset", default=os.environ.get("ADAFOCUS_DATA", "data"))
    p.add_argument("--root_log", default="runs/demo")
    p.add_argument("--epochs", type=int, help="training epochs (default: the synthetic preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pretrain_steps",
        type=int,
        nargs=2,
        default=(400, 600),
        metavar=("GLANCE", "FOCUS"),
        help="backbone pretraining steps (stand-in for ImageNet weights); 0 0 starts from scratch",
    )
    p.add_argument("--method", "--model", dest="method", default=DEFAULT_METHOD, help="the method to train")
    opts, run_flags = p.parse_known_args()
    if opts.method not in method_names() or not get_method(opts.method).has_policy:
        learned = ", ".join(n for n in method_names() if get_method(n).has_policy)
        p.error(
            f"--method {opts.method}: the demo compares learned policies with random ones (--policy random), "
            f"which needs a method with learned policies: {learned}"
        )
    start = time.perf_counter()
    common = [
        "synthetic",
        "RGB",
        "--root_dataset",
        opts.root_dataset,
        "--root_log",
        opts.root_log,
        "--seed",
        str(opts.seed),
        "--method",
        opts.method,
    ] + (["--epochs", str(opts.epochs)] if opts.epochs else [])
    common += run_flags
    schedule = get_method(opts.method).schedule
    if schedule:
        train_args, ckpt = run_schedule(common, schedule)
    else:
        train_args = parse_args(common)
        apply_host_memory(train_args.host_memory)  # from the pretraining on, as main.py does from its start
        extra = []
        if any(opts.pretrain_steps):
            path, report = pretrain(train_args, opts.pretrain_steps)
            print(f"pretrained backbones: {json.dumps(report)}")
            extra = ["--tune_from", path]
        train_args = parse_args(common + extra)
        run(train_args)
        ckpt = os.path.join(train_args.run_dir, "ckpt.pth.tar")
    learned = run_nview(parse_args(common + ["--resume", ckpt], script="nview"))
    uniform = run_nview(parse_args(common + ["--resume", ckpt, "--policy", "random"], script="nview"))
    figures = {"policies": os.path.join(train_args.run_dir, "policies.png")}
    looks, oracle = inspect(parse_args(common + ["--resume", ckpt], script="nview"), figures["policies"])
    curves = run_early_exit(
        parse_args(common + ["--resume", ckpt, "--criteria", "entropy"], script="early_exit")
    )
    half = min(curves["entropy"], key=lambda q: abs(q["exit_fractions"][0] - 0.5))
    first = "first exit (one frame)" if schedule else "glance network alone"
    figures["accuracy_gflops"] = accuracy_gflops_plot(
        {
            "learned policies": (learned["gflops"], learned["top1"]),
            "random patches, uniform frames": (learned["gflops"], uniform["top1"]),
            first: (learned["gflops_glance"], learned["glance_top1"]),
        },
        curves["entropy"],
        os.path.join(train_args.run_dir, "accuracy_gflops.png"),
    )
    summary = {
        "learned_acc": learned["top1"],
        "random_acc": uniform["top1"],
        "glance_acc": learned["glance_top1"],
        "margin_learned_vs_random": learned["top1"] - uniform["top1"],
        "gflops_learned": learned["gflops"],
        "gflops_glance": learned["gflops_glance"],
        "early_exit_half_acc": half["metric"],
        "early_exit_half_gflops": half["gflops"],
        "glyph_in_patch_learned": looks["learned"]["glyph_in_patch"],
        "glyph_in_patch_random": looks["random"]["glyph_in_patch"],
        "glyph_frames_learned": looks["learned"]["glyph_frames"],
        "glyph_frames_uniform": looks["random"]["glyph_frames"],
        "region_side_learned": looks["learned"]["region_side"],
        "epochs": train_args.epochs,
        "seed": opts.seed,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if oracle is not None:
        summary.update({f"oracle_{key}_acc": value for key, value in oracle.items()})
    print(
        f"\n(a) learned policies        top-1 {summary['learned_acc']:6.2f}%  {summary['gflops_learned']:.3f} GFLOPs"
    )
    print(
        f"(b) random patches, uniform top-1 {summary['random_acc']:6.2f}%  {summary['gflops_learned']:.3f} GFLOPs"
    )
    print(f"(c) {first:<24} top-1 {summary['glance_acc']:6.2f}%  {summary['gflops_glance']:.3f} GFLOPs")
    where = "the first exit" if schedule else "the glance"
    print(f"early exit, half exit at {where}: top-1 {half['metric']:.2f}% at {half['gflops']:.3f} GFLOPs")
    for name, policy in (("learned", "learned"), ("random/uniform", "random")):
        look = looks[policy]
        print(
            f"{name:>15}: selected frames showing the glyph {look['glyph_frames']:5.1f}%, glyph wholly inside the "
            f"focus region {look['glyph_in_patch']:5.1f}% (region side {look['region_side']:.0f} px)"
        )
    if oracle is not None:
        print(
            f"oracle patches (K frames in the glyph's window, P x P centred on it): focus alone "
            f"{oracle['focus']:.1f}%, fused with the glance {oracle['fused']:.1f}%, glance {oracle['glance']:.1f}%"
        )
    for name, path in figures.items():
        print(f"figure ({name}): {path}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
