import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data.distributed import DistributedSampler

from ops.engine.distributed import DistInfo, gather_in_sampler_order
from ops.engine.metrics import (
    AverageMeter,
    accuracy,
    average_precisions,
    mean_average_precision,
    multi_hot,
)

# 4 samples x 3 classes; every class occurs, so the original's label remapping is the identity.
SCORES = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.2, 0.6, 0.9], [0.1, 0.5, 0.4]])
TARGET = torch.tensor([[0, -1, -1], [1, 2, -1], [2, -1, -1], [0, 1, -1]])


def test_accuracy_small_example():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.2, 0.3],
            [0.8, 0.1, 0.7, 0.0, 0.6],
            [0.2, 0.3, 0.1, 0.4, 0.0],
            [0.5, 0.4, 0.3, 0.2, 0.1],
        ]
    )
    target = torch.tensor([1, 2, 4, 0])
    # top1 hits: rows 0, 3; top2: + row 1; top3 (row 2: target 4 ranks last) unchanged.
    assert accuracy(logits, target, topk=(1, 2, 3, 5)) == [50.0, 75.0, 75.0, 100.0]
    assert accuracy(logits, target, topk=(1, 10)) == [50.0, 100.0]  # k capped at C
    # multi-label targets padded with -1 are scored on column 0, as the original AN validate
    padded = torch.tensor([[1, 3, -1], [3, 2, -1], [4, -1, -1], [0, -1, -1]])
    assert accuracy(logits, padded, topk=(1, 2)) == [50.0, 50.0]
    assert accuracy(logits.numpy(), target.numpy(), topk=(1,)) == [50.0]


def test_multi_hot_padding_and_remap():
    gt = multi_hot(torch.tensor([[5, -1, -1], [2, 9, -1]]), num_classes=10, remap_labels=False)
    assert gt.nonzero().tolist() == [[0, 5], [1, 2], [1, 9]]
    # the original ranks the present labels: 2 -> 0, 5 -> 1, 9 -> 2
    gt = multi_hot(torch.tensor([[5, -1, -1], [2, 9, -1]]), num_classes=10)
    assert gt.nonzero().tolist() == [[0, 1], [1, 0], [1, 2]]
    with pytest.raises(ValueError):
        multi_hot(torch.tensor([3, 10]), num_classes=10, remap_labels=False)


def test_map_hand_computed():
    # class 0 ranks r0+ r1 r2 r3+ -> (1 + 2/4)/2; class 1: r1+ r2 r3+ r0 -> (1 + 2/3)/2; class 2: r2+ r3 r0 r1+
    ap = average_precisions(SCORES, TARGET, apply_softmax=False)
    assert torch.allclose(ap, torch.tensor([0.75, 5 / 6, 0.75], dtype=torch.float64), atol=1e-12)
    assert mean_average_precision(SCORES, TARGET, apply_softmax=False) == pytest.approx(700 / 9, abs=1e-9)
    # with softmax (cal_map) the column rankings change: class 0 becomes r0+ r1 r3+ r2
    ap = average_precisions(SCORES, TARGET)
    probs = torch.softmax(SCORES, 1)
    assert probs[3, 0] > probs[2, 0]
    assert torch.allclose(ap[0], torch.tensor(0.5 * (1 + 2 / 3), dtype=torch.float64), atol=1e-12)


def test_map_remap_and_absent_classes():
    scores = torch.tensor([[3.0, 1.0, 0.0, 2.0], [0.0, 2.0, 1.0, 3.0], [1.0, 0.0, 3.0, 2.0]])
    target = torch.tensor([1, 3, 3])  # only labels 1 and 3 occur among C = 4
    # original behaviour: 1 -> 0, 3 -> 1, i.e. scored against columns 0 and 1; columns 2, 3 have no
    # positives and add AP 0 to the mean
    same = average_precisions(scores, torch.tensor([0, 1, 1]), remap_labels=False)
    ap = average_precisions(scores, target)
    assert torch.equal(ap, same)
    assert ap[2] == 0 and ap[3] == 0
    assert mean_average_precision(scores, target) == pytest.approx(float(same.mean()) * 100)
    fixed = average_precisions(scores, target, remap_labels=False)
    assert fixed[0] == 0 and fixed[2] == 0 and fixed[1] > 0 and fixed[3] > 0
    # (n,) and (n, 1) targets are the same thing
    assert mean_average_precision(scores, target[:, None]) == mean_average_precision(scores, target)


def test_average_meter():
    m = AverageMeter("Acc@1", ":.2f")
    m.update(50.0, n=2)
    m.update(80.0, n=1)
    assert (m.val, m.sum, m.count, m.avg) == (80.0, 180.0, 3, 60.0)
    assert str(m) == "Acc@1 80.00 (60.00)"
    m.reset()
    assert m.count == 0 and m.avg == 0.0


def test_gather_single_rank_truncates():
    x = torch.arange(6).view(3, 2)
    assert torch.equal(gather_in_sampler_order(x, DistInfo()), x)
    assert torch.equal(gather_in_sampler_order(x, DistInfo(), dataset_len=2), x[:2])
    with pytest.raises(ValueError):
        gather_in_sampler_order(x, DistInfo(), dataset_len=4)


def _gather_worker(rank: int, world_size: int, store: str, results) -> None:
    # a file store: no TCP port that another process could take between choosing it and binding it
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    info = DistInfo(rank=rank, world_size=world_size, is_main=rank == 0, backend="gloo")
    try:
        data = torch.arange(5 * 3, dtype=torch.float32).view(5, 3)  # dataset of 5 items
        sampler = DistributedSampler(range(5), num_replicas=world_size, rank=rank, shuffle=False)
        idx = list(sampler)  # rank 0: [0, 2, 4], rank 1: [1, 3, 0] (0 is padding)
        padded = gather_in_sampler_order(data[idx], info)
        clean = gather_in_sampler_order(data[idx], info, dataset_len=5)
        # strided layout without padding: ranks hold 3 and 2 items
        uneven = gather_in_sampler_order(torch.arange(rank, 5, world_size), info)
        results.put(
            (rank, idx, padded.tolist(), clean.tolist(), uneven.tolist())
        )  # plain lists: no shared memory
    finally:
        dist.destroy_process_group()


def test_gather_two_ranks_drops_sampler_padding(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "store"), results), nprocs=2, join=True)
    data = torch.arange(15, dtype=torch.float32).view(5, 3)
    got = sorted(results.get() for _ in range(2))
    assert [g[1] for g in got] == [[0, 2, 4], [1, 3, 0]]
    for _, _, padded, clean, uneven in got:
        assert padded == data[[0, 1, 2, 3, 4, 0]].tolist()  # the duplicate the original counted
        assert clean == data.tolist()
        assert uneven == list(range(5))


def test_map_numpy_inputs_equal_torch():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((30, 6)).astype(np.float32)
    target = rng.integers(0, 6, 30)
    assert mean_average_precision(scores, target) == mean_average_precision(
        torch.tensor(scores), torch.tensor(target)
    )


def test_view_fusion_of_logits_and_of_softmax():
    from ops.engine.metrics import fuse_views

    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, 5, generator=g) * 3
    torch.testing.assert_close(fuse_views(z, "logits"), z.mean(1))
    fused = fuse_views(z, "softmax")  # a logit vector whose softmax is the mean of the views' softmax
    torch.testing.assert_close(fused.exp(), z.softmax(-1).mean(1), rtol=1e-6, atol=1e-7)
    # TAdaConv sums the views' softmax: the same argmax (and, through softmax, the same mAP)
    assert torch.equal(fused.argmax(-1), z.softmax(-1).sum(1).argmax(-1))
    assert torch.equal(fuse_views(z[:, :1], "softmax"), z[:, 0])  # one view: the raw logits
    exits = torch.randn(4, 3, 2, 5, generator=g)  # (B, V, E, C): fused per exit
    torch.testing.assert_close(fuse_views(exits, "softmax")[:, 1].exp(), exits[:, :, 1].softmax(-1).mean(1))


def test_first_label_map_is_adafocus_v1s_activitynet_metric():
    from ops.engine.loops import Predictions, summarize

    # two videos with a second label: V1 scores ActivityNet on targets[:, 0:1] only (main_dist.py)
    logits = torch.tensor([[3.0, 2.0, -1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    target = torch.tensor([[0, 2, -1], [2, -1, -1], [2, 0, -1], [1, -1, -1]])
    pred = Predictions(logits, logits[:, None], target, torch.arange(4), 0.0)
    metrics = summarize(pred, multi_label=True)
    assert metrics["mAP"] == pytest.approx(mean_average_precision(logits, target))
    assert metrics["mAP_first_label"] == pytest.approx(mean_average_precision(logits, target[:, :1]))
    # by the first label every class's positives rank first (class 2: videos 1, 2 by p2 = .665, .245, .045, .013):
    # AP 1, 1, 1; all labels add video 2 to class 0 (rank 2: AP 1) and video 0 to class 2 (rank 4: (1+1+3/4)/3)
    assert logits.softmax(-1)[:, 2].argsort(descending=True).tolist() == [1, 2, 3, 0]
    assert metrics["mAP_first_label"] == pytest.approx(100.0)
    assert metrics["mAP"] == pytest.approx(100 * (1 + 1 + 2.75 / 3) / 3)
