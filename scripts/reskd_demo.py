"""ResKD on the synthetic data: a low-resolution student trained under a high-resolution teacher against the same
student trained alone, same budget, several seeds. The last line printed is one JSON object with the figures.

    python scripts/reskd_demo.py [--root_dataset DIR] [--root_log DIR] [--seeds 0 1 2] [--epochs N]
                                 [--teacher_epochs N] [--size S] [--student_size s]

The setting is one where resolution limits optimisation, not information: 4 classes = the 4 hues of the glyph
(one pattern), the glyph on screen in every frame and no same-hue distractors, so the class is a 16 px coloured tile
that is still an 8 px tile at half resolution. Every network is a TSN ResNet-18 of base width 8 on 2 frames, trained
from random weights: the teacher at `--size`, each student at `--student_size` (the frames resized in the model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from ops.data.synthetic import ensure_synthetic
from ops.engine.train import run
from ops.opts import parse_args

DATA = dict(
    num_classes=4,
    videos_per_class_train=40,
    videos_per_class_val=20,
    min_frames=6,
    max_frames=8,
    height=64,
    width=80,
    num_clutter=2,
    num_distractors=0,
    window=(1.0, 1.0),
)
NET = (
    "--model tsn --focus_arch resnet18 --focus_base_width 8 --pretrain none --num_segments 2 --dropout 0.2 -j 0 -b 16"
).split()


def train(
    root: str, log: str, seed: int, epochs: int, lr: float, extra: list[str]
) -> tuple[dict, float, str]:
    """Runs main.py's training; returns (final validation metrics, seconds, checkpoint path)."""
    argv = ["synthetic", "RGB", "--root_dataset", root, "--root_log", log, *NET, "--seed", str(seed)]
    args = parse_args(argv + ["--epochs", str(epochs), "--lr", str(lr), "--eval-freq", str(epochs), *extra])
    t0 = time.perf_counter()
    metrics = run(args)
    return metrics, time.perf_counter() - t0, os.path.join(args.run_dir, "ckpt.pth.tar")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dataset", default="data_reskd_demo", help="where the synthetic videos are written")
    p.add_argument("--root_log", default="log_reskd_demo", help="where the runs are written")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6, help="epochs of every student")
    p.add_argument("--teacher_epochs", type=int, default=12)
    p.add_argument(
        "--teacher", help="a teacher checkpoint of an earlier run of this script (skips its training)"
    )
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--size", type=int, default=64, help="the teacher's frame side (the loader's crop)")
    p.add_argument("--student_size", type=int, default=32)
    a = p.parse_args()
    ensure_synthetic(a.root_dataset, progress=True, **DATA)
    sizes = ["--input_size", str(a.size)]
    if a.teacher:
        teacher_ckpt, result = a.teacher, {"teacher": a.teacher}
    else:
        teacher, t_sec, teacher_ckpt = train(
            a.root_dataset, os.path.join(a.root_log, "teacher"), 0, a.teacher_epochs, a.lr, sizes
        )
        result = {"teacher_top1": teacher["top1"], "teacher_s": round(t_sec)}
    student = [*sizes, "--student_size", str(a.student_size)]
    arms = {"alone": student, "distilled": [*student, "--distill", teacher_ckpt]}
    for name, extra in arms.items():
        top1, secs = [], []
        for seed in a.seeds:
            m, s, _ = train(
                a.root_dataset, os.path.join(a.root_log, f"{name}_{seed}"), seed, a.epochs, a.lr, extra
            )
            top1.append(m["top1"])
            secs.append(round(s))
            print(f"== {name} seed {seed}: top1 {m['top1']:.2f} ({s:.0f} s)", flush=True)
        result[name] = {"top1": top1, "mean": statistics.mean(top1), "seconds": secs}
        if len(top1) > 1:
            result[name]["std"] = statistics.stdev(top1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
