"""The demo: train Uni-AdaFocus on the built-in synthetic dataset on a CPU (minutes), evaluate it, run early exit,
and compare (a) the learned policies, (b) the same model with random patches and uniform frames, (c) the glance
network alone. The last line printed is one JSON object with the figures.

    python scripts/demo.py [--root_dataset DIR] [--root_log DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ops.evaluate import run_early_exit, run_nview  # noqa: E402
from ops.opts import parse_args  # noqa: E402
from ops.train import run  # noqa: E402


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root_dataset', default=os.environ.get('ADAFOCUS_DATA', 'data'))
    p.add_argument('--root_log', default='runs/demo')
    p.add_argument('--epochs', type=int, help='training epochs (default: the synthetic preset)')
    p.add_argument('--seed', type=int, default=0)
    opts = p.parse_args()
    start = time.perf_counter()
    common = ['synthetic', 'RGB', '--root_dataset', opts.root_dataset, '--root_log', opts.root_log,
              '--seed', str(opts.seed)] + (['--epochs', str(opts.epochs)] if opts.epochs else [])
    train_args = parse_args(common)
    run(train_args)
    ckpt = os.path.join(train_args.run_dir, 'ckpt.pth.tar')
    learned = run_nview(parse_args(common + ['--resume', ckpt], script='nview'))
    uniform = run_nview(parse_args(common + ['--resume', ckpt, '--policy', 'random'], script='nview'))
    curves = run_early_exit(parse_args(common + ['--resume', ckpt, '--criteria', 'entropy'], script='early_exit'))
    half = min(curves['entropy'], key=lambda q: abs(q['exit_fractions'][0] - 0.5))
    summary = {
        'learned_acc': learned['top1'], 'random_acc': uniform['top1'], 'glance_acc': learned['glance_top1'],
        'margin_learned_vs_random': learned['top1'] - uniform['top1'],
        'gflops_learned': learned['gflops'], 'gflops_glance': learned['gflops_glance'],
        'early_exit_half_acc': half['metric'], 'early_exit_half_gflops': half['gflops'],
        'epochs': train_args.epochs, 'wall_s': round(time.perf_counter() - start, 1),
    }
    print(f"\n(a) learned policies        top-1 {summary['learned_acc']:6.2f}%  {summary['gflops_learned']:.3f} GFLOPs")
    print(f"(b) random patches, uniform top-1 {summary['random_acc']:6.2f}%  {summary['gflops_learned']:.3f} GFLOPs")
    print(f"(c) glance network alone    top-1 {summary['glance_acc']:6.2f}%  {summary['gflops_glance']:.3f} GFLOPs")
    print(f"early exit, half exit at the glance: top-1 {half['metric']:.2f}% at {half['gflops']:.3f} GFLOPs")
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
