"""The video dataset (TSM format: frame folders or raw videos) and its zero-copy loader.

Frame numbers are 1-based everywhere (the number in the frame file name). One item is the model's input layout
(`models.input_layout`): `num_glance` glance frames then `num_candidates` candidate frames, sampled
independently (as the original); `num_glance` is 0 where the model takes its glance frames among the candidates
(Uni-AdaFocus 'an') or has no glance (baselines).
Every distinct frame number of an item is decoded once (glance and candidate sets overlap).
"""

from __future__ import annotations

import logging
import math
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from ops.data.augment import TRAIN_CROPS, ClipAugment, crop_box
from ops.data.dataset_config import DatasetConfig, require_path
from ops.data.lists import (
    MAX_LABELS,
    VideoRecord,
    read_list_file,
    sample_clip_interval,
    sample_clip_loop,
    sample_eval,
    sample_train,
)
from ops.data.resize import RESIZE_BACKENDS, Scratch, planar, planes_resize_is_fast, resize_frames
from ops.data.transforms import (
    TEST_CROPS,
    crop_resize,
    flip_inplace,
    resize_to_slots,
    scaled_size,
    view_boxes,
)
from ops.data.video_io import FrameFolder, FrameReadError, read_frames
from ops.data.video_paths import VideoLocator

log = logging.getLogger(__name__)
_COUNTER_ROWS = 65  # row 0: main process, rows 1..64: DataLoader workers (id % 64)
_MISSING, _BAD = 0, 1


def collate(
    batch: list[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (frames (B, [V,] T, 3, H, W) uint8, targets (B,) or (B, 3), indices (B,)).

    Items fetched by VideoDataset.__getitems__ already lie side by side in one buffer (shared memory in a
    worker): the batch is that buffer, no copy. Other items are stacked (default_collate in a worker).
    """
    first = batch[0][0]
    store = first.untyped_storage()
    if store.nbytes() == len(batch) * first.nbytes and all(
        item[0].untyped_storage().data_ptr() == store.data_ptr()
        and item[0].is_contiguous()
        and item[0].storage_offset() == j * first.numel()
        for j, item in enumerate(batch)
    ):
        frames = torch.empty(0, dtype=first.dtype).set_(store, 0, (len(batch), *first.shape))
    elif get_worker_info() is not None:
        frames = default_collate([item[0] for item in batch])
    else:
        frames = torch.from_numpy(np.stack([item[0].numpy() for item in batch]))
    targets = torch.stack([item[1] for item in batch])
    return frames, targets, torch.tensor([item[2] for item in batch], dtype=torch.int64)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    workers: int = 0,
    sampler=None,
    drop_last: bool = False,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
    timeout: float = 0,
) -> DataLoader:
    """Return a DataLoader with this module's zero-copy collate (persistent workers if any).

    No worker_init_fn: cv2.setNumThreads in a forked worker deadlocks once the parent has used OpenCV's
    thread pool and PyAV; the loader's hot ops (imread, resize, flip) run single-threaded anyway."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=generator,
        timeout=timeout,
    )


class VideoDataset(Dataset):
    """TSM-format video dataset; item = (frames uint8 (T, 3, H, W) or (V, T, 3, H, W), target, index).

    Training (`train`, default: split == 'train'): random segment sampling, then a multi-scale crop and a
    flip (if config.flip) per frame set, as the original TSM/X3D loaders (which call the training transform
    once for the glance frames and once for the candidates): the glance frames get one crop box and flip,
    the candidate frames another. `shared_crop=True` uses one box and one flip for the whole item instead,
    so the glance and candidate frames show the same region. Preset 'an' (num_glance 0: the model takes
    the glance frames from the candidates) has one frame set, so both modes give the same item there.
    Evaluation: segment centres, the same deterministic views for every frame; V = num_clips * test_crops
    views, clip-major (view v = clip * test_crops + crop; crop order as ops.data.transforms.view_boxes).
    Random draws per training item, in order: glance sampler, candidate sampler, then per frame set (the
    glance set, then the candidate set; the whole item with shared_crop or preset 'an') crop size, crop
    offset, flip (only if config.flip), then the label permutation (multi-label). The generator is seeded
    from torch.initial_seed(), so it differs per DataLoader worker and epoch and follows torch.manual_seed;
    `seed(n)` fixes it.
    Clip models (`sampling` 'loop' or 'interval', one frame set: num_glance 0) take T = num_candidates frames of
    one clip instead of T segments: the Efficient-3DCNNs loop-padded clip every `clip_stride` frames or the TAdaConv
    interval clip (ops.data.lists); in evaluation clip c of num_clips replaces segment offset c.
    `train_crop` picks the training crop box: 'tsm' (default), the Efficient-3DCNNs 'random' / 'corner' /
    'center' multi-scale crops or TAdaConv's 'jitter' / 'rrc' (ops.data.augment.crop_box; the flip, if allowed,
    follows the crop); `augment` (ops.data.augment.ClipAugment) then changes each training frame set in place.
    Resizing: resize_backend='pil' (default) is PIL's bilinear filter, as the originals; 'cv2' is OpenCV
    INTER_LINEAR (no antialiasing when shrinking). Each frame set is cut, resized and written channels-first into
    the item in one batch (ops.data.resize).
    Raw videos: with `video_root`, the video of each list path is read instead of its frame folder: the path
    itself when it ends in a video extension, else `<path><video_ext>` when video_ext is given, else the
    first of `<path>.mp4 .avi .mkv .webm .mov` present (ops.data.video_paths.VideoLocator).
    `records` (VideoRecords) replaces the list file, e.g. for videos given on a command line.
    A missing frame is replaced by the nearest existing one (counted in `missing_frames`, warned once per
    video and process). An unreadable video raises (on_bad_video='error') or is replaced by another item
    (on_bad_video='skip': the next index in eval, a random one in training), counted in `bad_videos`.
    Counters live in shared memory, so the main process sees the workers' counts (`reset_counters()`).
    Batches: DataLoader calls `__getitems__`, which loads the items into one buffer (shared memory in a
    worker); `collate` hands that buffer on without copying (default_collate also works, with one copy).
    """

    def __init__(
        self,
        config: DatasetConfig,
        split: str = "train",
        *,
        train: bool | None = None,
        num_glance: int = 8,
        num_candidates: int = 36,
        input_size: int = 224,
        scale_size: int | None = None,
        test_crops: int = 1,
        num_clips: int = 1,
        list_file: str | None = None,
        video_root: str | None = None,
        video_ext: str | None = None,
        on_bad_video: str = "error",
        max_retries: int = 10,
        resize_backend: str = "pil",
        shared_crop: bool = False,
        records: list[VideoRecord] | None = None,
        sampling: str = "segments",
        clip_stride: int = 1,
        train_crop: str = "tsm",
        augment: ClipAugment | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if test_crops not in TEST_CROPS:
            raise ValueError(f"test_crops must be one of {TEST_CROPS}, got {test_crops}")
        if num_clips < 1 or on_bad_video not in ("error", "skip"):
            raise ValueError("need num_clips >= 1 and on_bad_video in ('error', 'skip')")
        self.config, self.train = config, (split == "train") if train is None else train
        self.num_glance = num_glance
        self.num_candidates = num_candidates
        if self.num_glance + self.num_candidates < 1:
            raise ValueError("need at least one frame per item (num_glance + num_candidates >= 1)")
        self.input_size, self.scale_size = input_size, scale_size or input_size * 256 // 224
        self.test_crops, self.num_clips = (1, 1) if self.train else (test_crops, num_clips)
        self.video_root, self.video_ext = video_root, video_ext
        self.locator = None if video_root is None else VideoLocator(video_root, video_ext)
        self.on_bad_video, self.max_retries = on_bad_video, max_retries
        if resize_backend not in RESIZE_BACKENDS:
            raise ValueError(f"resize_backend must be one of {RESIZE_BACKENDS}, got {resize_backend!r}")
        self.resize_backend, self.shared_crop = resize_backend, shared_crop
        if sampling not in ("segments", "loop", "interval") or clip_stride < 1:
            raise ValueError(
                f"sampling must be segments | loop | interval and clip_stride >= 1, got {sampling!r}"
            )
        if sampling != "segments" and num_glance:
            raise ValueError(
                f"{sampling!r} clip sampling takes one frame set (num_glance 0), got {num_glance}"
            )
        if train_crop not in TRAIN_CROPS:
            raise ValueError(f"train_crop must be one of {TRAIN_CROPS}, got {train_crop!r}")
        self.sampling, self.clip_stride, self.train_crop = sampling, clip_stride, train_crop
        self.augment = augment
        self.list_file = list_file or (config.train_list if split == "train" else config.val_list)
        if records is None:
            require_path(self.list_file, config.name, "lists", "list file")
        if video_root is None:
            require_path(config.frames_root, config.name, "frames", "frame folder root")
        else:
            require_path(video_root, config.name, "frames", "video folder")
        if records is None:
            records = read_list_file(
                self.list_file, config.separator, config.num_classes, config.multi_label, on_bad_video
            )
        self.records = records
        self._counts = torch.zeros((_COUNTER_ROWS, 2), dtype=torch.int64).share_memory_()
        self._warned: set[str] = set()
        self._rng, self._rng_key = None, None
        # set_epoch_key: seen by every worker, persistent ones included
        self._epoch_key = torch.full((1,), -1, dtype=torch.int64).share_memory_()
        self._scratch = np.empty(0, dtype=np.uint8)  # decode buffer reused across items (per process)
        self._resize_scratch = (Scratch(), Scratch())  # gathered crops, resized frames (per process)
        self._pool: list[np.ndarray] = []  # batch buffers for reuse (main process)

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def frames_per_view(self) -> int:
        return self.num_glance + self.num_candidates

    @property
    def num_views(self) -> int:
        return self.num_clips * self.test_crops

    @property
    def missing_frames(self) -> int:
        """Frames replaced by a neighbour since the last reset_counters(), summed over all workers."""
        return int(self._counts[:, _MISSING].sum())

    @property
    def bad_videos(self) -> int:
        """Items skipped because their video/folder was unreadable (on_bad_video='skip')."""
        return int(self._counts[:, _BAD].sum())

    def reset_counters(self) -> None:
        self._counts.zero_()

    def _count(self, kind: int, n: int = 1) -> None:
        info = get_worker_info()
        self._counts[0 if info is None else 1 + info.id % (_COUNTER_ROWS - 1), kind] += n

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg)

    def seed(self, seed: int) -> None:
        """Use np.random.default_rng(seed) in this process (tests, benchmarks)."""
        self._rng, self._rng_key = np.random.default_rng(seed), torch.initial_seed()

    def set_epoch_key(self, key: int) -> None:
        """Seed every DataLoader worker from (key, worker id) from its next item on, persistent workers too (the
        key is in shared memory); key >= 0 (e.g. from seed, epoch and rank). The main process keeps `seed`."""
        self._epoch_key[0] = key

    def rng(self) -> np.random.Generator:
        info = get_worker_info()
        shared = int(self._epoch_key[0]) if info is not None else -1
        # else torch.initial_seed(): differs per worker and per epoch (non-persistent workers)
        key = (shared, info.id) if shared >= 0 else torch.initial_seed()
        if self._rng is None or key != self._rng_key:
            self._rng, self._rng_key = np.random.default_rng(key), key
        return self._rng

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of an item's frames: (T, 3, S, S), or (V, T, 3, S, S) for V > 1 views."""
        view = (self.frames_per_view, 3, self.input_size, self.input_size)
        return view if self.num_views == 1 else (self.num_views, *view)

    def _batch_buffer(self, n: int) -> torch.Tensor:
        """Return uint8 (n, *item_shape) to load a batch into.

        In a DataLoader worker: shared memory, so the batch reaches the main process without a copy. In the
        main process: a recycled buffer that no tensor references any more (fresh multi-MB memory costs
        about 4 us per 4 KB page fault on a VM, a fifth of the decoding time of an X3D clip).
        """
        shape = (n, *self.item_shape)
        new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
        if get_worker_info() is not None and new_shared is not None:
            return torch.empty(0, dtype=torch.uint8).set_(new_shared(int(np.prod(shape))), 0, shape)
        for arr in self._pool:
            if arr.shape == shape and sys.getrefcount(arr) == 3:  # only the pool, `arr` and the call hold it
                return torch.from_numpy(arr)
        arr = np.empty(shape, dtype=np.uint8)
        self._pool = [arr, *self._pool[:1]]
        return torch.from_numpy(arr)

    def _alloc(self, shape: tuple[int, ...]) -> np.ndarray:
        """The decode buffer for frames `shape` (U, H, W, 3): planes seen as frames where the resize takes them
        (`planes_resize_is_fast`), else interleaved."""
        size = math.prod(shape)
        if self._scratch.size < size:
            self._scratch = np.empty(size, dtype=np.uint8)
        if planes_resize_is_fast(self.resize_backend):
            n, h, w, c = shape
            return planar(self._scratch[:size].reshape(n, c, h, w))
        return self._scratch[:size].reshape(shape)

    def source(self, record: VideoRecord) -> FrameFolder | str:
        """Return the frame folder or video file of a record."""
        if self.locator is not None:
            return self.locator.find(record.path)
        return FrameFolder(
            os.path.join(self.config.frames_root, record.path), self.config.image_tmpl, record.num_frames
        )

    # -- sampling -------------------------------------------------------------------------------------------
    def frame_numbers(self, record: VideoRecord, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return (num_clips, T) 1-based frame numbers: glance (if any), then candidates."""
        n, parts = record.num_frames, (self.num_glance, self.num_candidates)
        if self.sampling != "segments":
            sample = sample_clip_loop if self.sampling == "loop" else sample_clip_interval
            t, stride = self.num_candidates, self.clip_stride
            if self.train:
                return sample(n, t, stride, rng or self.rng())[None]
            return np.stack([sample(n, t, stride, None, c, self.num_clips) for c in range(self.num_clips)])
        if self.train:
            rng = rng or self.rng()
            return np.concatenate([sample_train(n, t, rng) for t in parts if t > 0])[None]
        return np.stack(
            [
                np.concatenate([sample_eval(n, t, c, self.num_clips) for t in parts if t > 0])
                for c in range(self.num_clips)
            ]
        )

    def crop_sets(self) -> list[slice]:
        """Return the frame sets of a training item that get their own crop and flip, as slices of its T
        frames: [glance, candidates], or one set for the whole item (shared_crop, or preset 'an')."""
        if self.shared_crop or self.num_glance == 0 or self.num_candidates == 0:
            return [slice(0, self.frames_per_view)]
        return [slice(0, self.num_glance), slice(self.num_glance, self.frames_per_view)]

    def target(self, record: VideoRecord, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Return an int64 scalar, or (3,) padded with -1 if multi-label (labels permuted in training)."""
        if not self.config.multi_label:
            return torch.tensor(record.labels[0], dtype=torch.int64)
        labels = np.asarray(record.labels, dtype=np.int64)
        if self.train and len(labels) > 1:
            labels = (rng or self.rng()).permutation(labels)
        return torch.tensor(
            np.pad(labels, (0, MAX_LABELS - len(labels)), constant_values=-1), dtype=torch.int64
        )

    # -- loading --------------------------------------------------------------------------------------------
    def load(self, index: int, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (frames, target) of one item, frames written into `out` if given (item_shape, uint8).

        Raises FrameReadError for an unreadable video."""
        record = self.records[index]
        rng = self.rng() if self.train else None
        numbers = self.frame_numbers(record, rng)
        unique, inverse = np.unique(numbers, return_inverse=True)
        inverse = inverse.reshape(numbers.shape)
        subs: list[tuple[int, int]] = []
        source = self.source(record)
        frames = read_frames(source, unique, subs, self._alloc)  # (U, H, W, 3): each distinct frame once
        if subs:
            self._count(_MISSING, sum(int((numbers == w).sum()) for w, _ in subs))
            name = source.folder if isinstance(source, FrameFolder) else source
            self._warn_once(
                name,
                f"{name}: {len(subs)} missing frame(s) replaced by the nearest one, "
                f"e.g. {subs[0][0]} -> {subs[0][1]}",
            )
        S = self.input_size
        frames_t = torch.empty(self.item_shape, dtype=torch.uint8) if out is None else out
        out = frames_t.numpy().reshape(self.num_views, numbers.shape[1], 3, S, S)  # a view
        if self.train:
            for part in self.crop_sets():
                box = crop_box(frames.shape[2], frames.shape[1], S, rng, self.train_crop)
                crop, slots, buffers = crop_resize(frames, box), inverse[0, part], self._resize_scratch
                view = resize_to_slots(crop, slots, out[0, part], self.resize_backend, buffers)
                if self.config.flip and rng.random() < 0.5:
                    flip_inplace(view)
                if self.augment is not None:
                    self.augment(view, rng)
        else:
            # GroupScale (a no-op if the short side fits), on the buffer the unresized views below leave free
            size = scaled_size(frames.shape[2], frames.shape[1], self.scale_size)
            scaled = resize_frames(frames, size, self.resize_backend, self._resize_scratch[1])
            boxes = view_boxes(scaled.shape[2], scaled.shape[1], S, self.test_crops)
            for c in range(self.num_clips):
                for k, (box, flipped) in enumerate(boxes):
                    crop, view = crop_resize(scaled, box), out[c * self.test_crops + k]
                    resize_to_slots(crop, inverse[c], view, self.resize_backend, self._resize_scratch)
                    if flipped:
                        flip_inplace(view)
        return frames_t, self.target(record, rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Return (frames uint8 (T, 3, H, W) or (V, T, 3, H, W), target, index of the item loaded)."""
        return self._get(index, None)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """Batch fetch used by DataLoader: the items are loaded side by side into one buffer (see collate)."""
        batch = self._batch_buffer(len(indices))
        return [self._get(i, batch[j]) for j, i in enumerate(indices)]

    def _get(self, index: int, out: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        for _ in range(self.max_retries + 1):
            try:
                frames, target = self.load(index, out)
                return frames, target, index
            except FrameReadError as e:
                where = self.where(index)
                if self.on_bad_video == "error":
                    raise FrameReadError(f"{where}: {e} (--on_bad_video skip skips such items)") from e
                self._count(_BAD)
                self._warn_once(f"bad:{index}", f"{where}: skipping unreadable item: {e}")
                last = f"{where}: {e}"
                index = int(self.rng().integers(len(self))) if self.train else (index + 1) % len(self)
        raise FrameReadError(f"{self.max_retries + 1} unreadable items in a row, the last: {last}")

    def where(self, index: int) -> str:
        """Returns '<list file>:<line>' of item `index` (its position in the list when not read from a file)."""
        record = self.records[index]
        return f"{self.list_file}:{record.line}" if record.line else f"{self.list_file} item {index}"

    def __getstate__(self) -> dict:
        # Sent to DataLoader workers: the counters tensor is shared memory; scratch/rng are per process.
        state = dict(self.__dict__)
        state.update(_scratch=np.empty(0, dtype=np.uint8), _pool=[], _rng=None, _rng_key=None, _warned=set())
        state["_resize_scratch"] = (Scratch(), Scratch())
        return state
