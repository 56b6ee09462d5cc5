"""Runs the original Uni-AdaFocus-X3D README's three command lines (train, 3-crop evaluation, early exit) as
written, on a tiny kinetics-format dataset made here, with only `--epochs 1 --batch-size 2 -j 0 --root_dataset DIR`
appended; then the 3-crop evaluation in its short form, `--resume CKPT --test_crops 3` and the dataset alone (the
model comes from the checkpoint). The PySlowFast X3D weights are replaced by random ones of the same format (nothing
is downloaded).

    python scripts/check_readme_commands.py [--workdir DIR]

Exits non-zero when a command fails; prints each command's wall time and its last output line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAUNCH = "--dist-url 'tcp://127.0.0.1:12345' --dist-backend 'nccl' --multiprocessing-distributed --world-size 1 --rank 0"
X3D_FLAGS = (
    "--arch resnet50 --num_glance_segments 16 --num_input_focus_segments 96 --num_focus_segments 32 --gd 20 "
    "-j 24 --lr_steps 0 0 --lr_type cos --epochs 50 --batch-size 64 --lr 0.005 --wd 5e-5 --dropout 0.5 "
    "--consensus_type=avg --eval-freq=1 --shift --shift_div=8 --shift_place=blockres --npb --print-freq=50 "
    "--glance_size 160 --patch_size 128 --stn_hidden_dim 128 --temporal_hidden_dim 64 --global_lr_ratio 0.5 "
    "--stn_lr_ratio 0.40 --temporal_lr_ratio 0.40 --temperature 1.0 --norm_ratio 0.50"
)
RUN_NAME = "UniAdaFocus_kinetics_RGB_x3d_s_x3d_l_segment16_p128_e1_cos"  # --epochs 1 names the run


def make_kinetics(root: str, videos: int = 2, frames: int = 20) -> None:
    """`<root>/kinetics/images/<video>/img_00001.jpg` (256x320 noise) + `kinetics/labels/{train,val}_videofolder.txt`."""
    rng = np.random.default_rng(0)
    rows = []
    for v in range(videos):
        folder = os.path.join(root, "kinetics", "images", f"clip{v}")
        os.makedirs(folder, exist_ok=True)
        for t in range(1, frames + 1):
            img = cv2.blur(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8), (5, 5))
            cv2.imwrite(os.path.join(folder, f"img_{t:05d}.jpg"), img)
        rows.append(f"clip{v} {frames} {v * 7}\n")
    os.makedirs(os.path.join(root, "kinetics", "labels"), exist_ok=True)
    for split in ("train", "val"):
        with open(os.path.join(root, "kinetics", "labels", f"{split}_videofolder.txt"), "w") as f:
            f.writelines(rows)


def make_x3d_weights(weights_root: str) -> None:
    """Random X3D-S / X3D-L Kinetics weights in PySlowFast's `.pyth` format (`model_state`)."""
    from archs import create_backbone, pretrained_path

    for name in ("x3d_s", "x3d_l"):
        path = pretrained_path(name, weights_root, must_exist=False)
        os.makedirs(path.parent, exist_ok=True)
        torch.save({"model_state": create_backbone(name, num_classes=400).state_dict()}, path)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", help="keep the data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="readme_cmds_")
    data, weights = os.path.join(work, "data"), os.path.join(work, "weights")
    make_kinetics(data)
    make_x3d_weights(weights)
    tail = f"--epochs 1 --batch-size 2 -j 0 --root_dataset {data}"
    short = f"--batch-size 2 -j 0 --root_dataset {data}"  # the dataset, and a batch for a small machine
    ckpt = f"log/{RUN_NAME}/ckpt.best.pth.tar"  # relative to the working directory, as in the original
    commands = [
        (f"python main.py kinetics RGB {LAUNCH} {X3D_FLAGS}", tail),
        (
            f"python main_nViewEval.py kinetics RGB {LAUNCH} {X3D_FLAGS} --evaluate --resume {ckpt} --test_crops 3",
            tail,
        ),
        (f"python test_early_exit.py kinetics RGB {X3D_FLAGS} --resume {ckpt} --test_crops 3", tail),
        (f"python main_nViewEval.py kinetics RGB --resume {ckpt} --test_crops 3", short),
    ]
    env = dict(os.environ, ADAFOCUS_WEIGHTS=weights, PYTHONPATH=ROOT)
    for cmd, tail in commands:
        argv = shlex.split(f"{cmd} {tail}")
        argv[0] = sys.executable
        argv[1] = os.path.join(ROOT, argv[1])
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        print(f"[{time.perf_counter() - start:6.1f} s] exit {proc.returncode}: {cmd} {tail}")
        print("    " + (lines[-1] if lines else "(no output)"))
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
