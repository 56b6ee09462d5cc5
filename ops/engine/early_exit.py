"""Sample-wise early exit (spec section 4): exit criteria, threshold calibration on the training split
for a target exit distribution, the accuracy/mAP-vs-GFLOPs sweep and its CSV/PNG output.

Float32 torch ops where the original used them (criteria, exit distributions, ``floor(n * p_k)``), so the
curves equal the official ``early_exit()`` on the same logits; expected GFLOPs are summed in float64.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ops.engine.metrics import accuracy, mean_average_precision

CRITERIA = ("confidence", "max_softmax", "entropy")
FAMILIES = ("geometric", "two_exit", "geometric_v2")
METRICS = ("top1", "mAP")


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).detach().cpu()


def exit_scores(exit_logits: torch.Tensor | np.ndarray, criterion: str = "confidence") -> torch.Tensor:
    """(n, E) confidence of every exit; higher = more confident. exit_logits (n, E, C).

    'confidence': raw max logit (the original's, no softmax); 'max_softmax': max softmax probability;
    'entropy': negative entropy sum_c p_c log p_c of the softmax.
    """
    x = _tensor(exit_logits)
    if criterion == "confidence":
        return x.max(dim=-1).values
    if criterion == "max_softmax":
        return F.softmax(x, dim=-1).max(dim=-1).values
    if criterion == "entropy":
        p = F.softmax(x, dim=-1)
        # p == 0 (softmax underflow) contributes 0; the original's p * log(p) gave NaN there (fixed knowingly).
        # Not torch.special.xlogy: it rounds differently from p * log(p) and the thresholds would drift.
        return torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(dim=-1)
    raise ValueError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")


def exit_distributions(family: str, num_exits: int) -> list[tuple[float, torch.Tensor]]:
    """[(q, probs (E,) float32)] of a swept family of target exit distributions, in sweep order.

    'geometric' (UA-AN): p_k ∝ q^k, k = 0..E-1, q = j/20, j = 1..19. 'geometric_v2' (AdaFocus V2's conditional
    exit, also applied to V1 models): k = 1..E (its exponents), q = j/10, j = 5..39. 'two_exit' (UA-TSM/X3D, E must be 2):
    p ∝ [1, q], q = j/100 for j = 1..399, 4e3, 4e4, 4e5, 4e6. Computed as the original does,
    exp(log(q) * k) normalised in float32, so floor(n * p_k) agrees bit for bit.
    """
    if family == "geometric":
        js = [j / 20 for j in range(1, 20)]
    elif family == "geometric_v2":
        js = [j / 10 for j in range(5, 40)]
    elif family == "two_exit":
        if num_exits != 2:
            raise ValueError(f"family 'two_exit' needs 2 exits, got {num_exits}")
        js = [j / 100 for j in [*range(1, 400), 4e3, 4e4, 4e5, 4e6]]
    else:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    k = torch.arange(num_exits, dtype=torch.float32) + (1 if family == "geometric_v2" else 0)
    out = []
    for q in js:
        probs = torch.exp(torch.log(torch.full((1,), q, dtype=torch.float32)) * k)
        out.append((q, probs / probs.sum()))
    return out


def find_thresholds(
    train_scores: torch.Tensor | np.ndarray,
    probs: torch.Tensor | np.ndarray,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """(E,) float32 thresholds T calibrated so that a fraction ~probs[k] of the training set exits at k.

    train_scores (n, E); probs (E,) is normalised again in float32 (as the original). For k < E-1:
    out_n = floor(n * p_k); among samples not exited yet, sorted by score k descending, T_k = score of the
    out_n-th and those out_n exit; out_n = 0 leaves T_k = 1e8. T_{E-1} = -1e8. ``order`` (E, n): optional
    precomputed descending argsort of each column (reused across a sweep).
    """
    scores = _tensor(train_scores).float()
    n, num_exits = scores.shape
    p = _tensor(probs).float()
    p = p / p.sum()
    out_ns = torch.floor(float(n) * p).long().tolist()  # float32 product, as the original
    if order is None:
        order = torch.sort(scores.t(), dim=1, descending=True, stable=True).indices
    thresholds = torch.full((num_exits,), 1e8, dtype=torch.float32)
    exited = torch.zeros(n, dtype=torch.bool)
    for k in range(num_exits - 1):
        out_n = out_ns[k]
        if out_n <= 0:
            continue
        remaining = order[k][~exited[order[k]]]
        # Float rounding could ask for more samples than remain; the original would raise IndexError.
        chosen = remaining[: min(out_n, remaining.numel())]
        if chosen.numel():
            thresholds[k] = scores[chosen[-1], k]
            exited[chosen] = True
    thresholds[-1] = -1e8
    return thresholds


def exit_points(val_scores: torch.Tensor | np.ndarray, thresholds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(n,) int64 exit of each sample: the first k with score_k >= T_k, else the last exit.
    val_scores (n, E); thresholds (E,)."""
    scores = _tensor(val_scores).float()
    ok = scores >= _tensor(thresholds).float().view(1, -1)
    ok[:, -1] = True  # the last exit takes everyone (also NaN scores)
    return ok.int().argmax(dim=1)


def select_exit_logits(exit_logits: torch.Tensor | np.ndarray, exits: torch.Tensor) -> torch.Tensor:
    """(n, C) logits of each sample's exit. exit_logits (n, E, C); exits (n,) int."""
    x = _tensor(exit_logits)
    return x[torch.arange(x.shape[0]), exits.long()]


def random_exits(counts: Sequence[int], rng: random.Random) -> torch.Tensor:
    """(n,) int64 exits of the UA-AN "random exit" control: the same number of samples per exit as the
    dynamic policy (counts (E,), n = sum) assigned through one ``rng.shuffle`` of range(n): exit 0 takes
    the first counts[0] shuffled samples, and so on (the original's sequence of random calls)."""
    n = int(sum(counts))
    perm = list(range(n))
    rng.shuffle(perm)
    exits = torch.empty(n, dtype=torch.long)
    exits[torch.tensor(perm, dtype=torch.long)] = torch.repeat_interleave(
        torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long)
    )
    return exits


def random_exit_logits(
    exit_logits: torch.Tensor | np.ndarray, counts: Sequence[int], rng: random.Random
) -> torch.Tensor:
    """(n, C) logits of the random-exit control (see :func:`random_exits`). exit_logits (n, E, C)."""
    x = _tensor(exit_logits)
    if int(sum(counts)) != x.shape[0]:
        raise ValueError(f"counts sum to {int(sum(counts))}, expected {x.shape[0]}")
    return select_exit_logits(x, random_exits(counts, rng))


def expected_gflops(counts: Sequence[int], flops_per_exit: Sequence[float]) -> float:
    """Average GFLOPs per video: sum_k counts_k / n * flops_k (float64)."""
    n = float(sum(counts))
    return float(sum(c / n * f for c, f in zip(counts, flops_per_exit)))


def _score(logits: torch.Tensor, target: torch.Tensor, metric: str) -> float:
    if metric == "top1":
        return accuracy(logits, target, topk=(1,))[0]
    if metric == "mAP":
        return mean_average_precision(logits, target)
    raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")


def _scorer(exit_logits: torch.Tensor, target: torch.Tensor, metric: str) -> Callable[[torch.Tensor], float]:
    """exits (n,) -> metric of the exit-selected logits. Top-1 hits of every exit are computed once
    (same topk as :func:`ops.engine.metrics.accuracy`), so a 400-point sweep only indexes a (n, E) table."""
    if metric == "top1":
        labels = target[:, 0] if target.dim() == 2 else target
        hits = exit_logits.topk(1, dim=-1).indices[..., 0].eq(labels.long().view(-1, 1))  # (n, E)
        rows = torch.arange(hits.shape[0])
        return lambda exits: 100.0 * float(hits[rows, exits].sum()) / hits.shape[0]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    return lambda exits: _score(select_exit_logits(exit_logits, exits), target, metric)


def no_exit_point(
    val_logits: torch.Tensor | np.ndarray,
    val_target: torch.Tensor | np.ndarray,
    flops_per_exit: Sequence[float],
    metric: str = "top1",
) -> tuple[float, float]:
    """(gflops, metric) of the full model: every sample takes the last exit. val_logits (n, E, C)."""
    x = _tensor(val_logits)
    return float(flops_per_exit[-1]), _score(x[:, -1], _tensor(val_target), metric)


def sweep(
    train_logits: torch.Tensor | np.ndarray,
    val_logits: torch.Tensor | np.ndarray,
    val_target: torch.Tensor | np.ndarray,
    flops_per_exit: Sequence[float],
    family: str = "geometric",
    criterion: str = "confidence",
    metric: str = "top1",
    random_seed: int | None = None,
) -> list[dict]:
    """Accuracy/mAP-vs-GFLOPs curve: one point per target exit distribution of ``family``.

    train_logits (n_train, E, C) (calibration only; labels are not needed), val_logits (n_val, E, C),
    val_target (n_val,) or (n_val, L) padded with -1, flops_per_exit (E,) GFLOPs of stopping at each exit.
    Returns a list of dicts: gflops, metric, exit_fractions (E floats), exit_counts (E ints),
    thresholds (E floats), q, probs (E floats) and, with ``random_seed``, random_metric (the random-exit
    control; one ``random.Random(random_seed)`` drawn once per point, which reproduces the original's
    sequence after ``random.seed(seed)``).
    """
    train_scores = exit_scores(train_logits, criterion)
    val_x = _tensor(val_logits)
    val_scores = exit_scores(val_x, criterion)
    target = _tensor(val_target)
    num_exits = val_x.shape[1]
    if len(flops_per_exit) != num_exits or train_scores.shape[1] != num_exits:
        raise ValueError(
            f"{num_exits} exits but {len(flops_per_exit)} flops / {train_scores.shape[1]} train exits"
        )
    order = torch.sort(train_scores.t(), dim=1, descending=True, stable=True).indices
    score = _scorer(val_x, target, metric)
    rng = random.Random(random_seed) if random_seed is not None else None
    points = []
    for q, probs in exit_distributions(family, num_exits):
        thresholds = find_thresholds(train_scores, probs, order)
        exits = exit_points(val_scores, thresholds)
        counts = torch.bincount(exits, minlength=num_exits).tolist()
        point = dict(
            gflops=expected_gflops(counts, flops_per_exit),
            metric=score(exits),
            exit_fractions=[c / len(exits) for c in counts],
            exit_counts=counts,
            thresholds=thresholds.tolist(),
            q=q,
            probs=probs.tolist(),
        )
        if rng is not None:
            point["random_metric"] = score(random_exits(counts, rng))
        points.append(point)
    return points


def write_csv(points: Sequence[dict], path: str, views: int = 1) -> None:
    """Write ``gflops,gflops_per_view,metric,exit0,...,exit{E-1}`` rows (exit fractions), plus a last
    ``random_metric`` column when the points carry the random-exit control.

    ``gflops`` is the cost per video of all ``views`` (crops x clips); ``gflops_per_view`` = gflops / views,
    the figure the papers quote as "GFLOPs x views" (e.g. 4.9x3) and the original X3D script wrote."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    num_exits = len(points[0]["exit_fractions"]) if points else 0
    has_random = bool(points) and "random_metric" in points[0]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["gflops", "gflops_per_view", "metric", *[f"exit{k}" for k in range(num_exits)]]
            + (["random_metric"] if has_random else [])
        )
        for p in points:
            w.writerow(
                [f"{p['gflops']:.6f}", f"{p['gflops'] / views:.6f}", f"{p['metric']:.4f}"]
                + [f"{r:.6f}" for r in p["exit_fractions"]]
                + ([f"{p['random_metric']:.4f}"] if has_random else [])
            )


def plot_curve(
    points: Sequence[dict],
    path: str,
    no_exit_point: tuple[float, float] | None = None,
    title: str = "",
    metric_name: str = "metric (%)",
) -> None:
    """Save a PNG of metric vs GFLOPs (points sorted by GFLOPs), marking the no-exit model with a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(points, key=lambda p: p["gflops"])
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.plot([p["gflops"] for p in pts], [p["metric"] for p in pts], "o-", ms=3, label="early exit")
    if pts and "random_metric" in pts[0]:
        ax.plot(
            [p["gflops"] for p in pts], [p["random_metric"] for p in pts], "x--", ms=3, label="random exit"
        )
    if no_exit_point is not None:
        ax.plot([no_exit_point[0]], [no_exit_point[1]], "r*", ms=12, label="no exit")
    ax.set_xlabel("GFLOPs / video")
    ax.set_ylabel(metric_name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
