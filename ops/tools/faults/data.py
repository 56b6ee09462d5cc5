"""Fault-check cases of bad data: frame folders, videos and list files (ops/tools/fault_check.py)."""

from __future__ import annotations

import os

import numpy as np

from ops.tools.faults.common import (
    Ctx,
    captured_log,
    custom_dataset,
    expect_error,
    folder_frames,
    frames_dir,
    list_rows,
    load_all,
    short,
    write_video,
)


def case_jpeg_truncated(ctx: Ctx) -> tuple[bool, str]:
    """A JPEG cut in half: read as missing (libjpeg alone would return it grey-filled), replaced by its nearest
    readable neighbour, counted and named."""
    root = ctx.data_copy("jpeg_truncated")
    name, n, label = list_rows(root, "val")[0]
    broken = {}
    for kind, t in (("truncated", 2), ("zero-byte", 4)):
        path = os.path.join(frames_dir(root, name), f"img_{t:05d}.jpg")
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if kind == "truncated" else b"")
        broken[kind] = path
    with captured_log() as log:
        ds = custom_dataset(root, f"{name} {n} {label}\n")
        ds.num_candidates = n  # read every frame
        load_all(ds)
    named = any(frames_dir(root, name) in line for line in log)
    ok = ds.missing_frames >= 2 and named
    return ok, f"missing_frames {ds.missing_frames}, warned about {name}: {named}"


def case_folder_short(ctx: Ctx) -> tuple[bool, str]:
    """A folder with fewer frames than its row says: the frames past its end are replaced by the last one, counted
    and named (as the original replaced missing frames)."""
    root = ctx.data_copy("folder_short")
    name, n, label = list_rows(root, "val")[0]
    with captured_log() as log:
        ds = custom_dataset(root, f"{name} {n + 8} {label}\n")
        ds.num_candidates = 8
        load_all(ds)
    named = any(name in line and "missing frame" in line for line in log)
    return ds.missing_frames > 0 and named, f"missing_frames {ds.missing_frames}, named: {named}"


def case_folder_empty(ctx: Ctx) -> tuple[bool, str]:
    """An empty frame folder: an error naming the list line and the folder; skipped and counted with
    --on_bad_video skip."""
    root = ctx.data_copy("folder_empty")
    rows = list_rows(root, "val")[:3]
    name = rows[1][0]
    for f in os.listdir(frames_dir(root, name)):
        os.remove(os.path.join(frames_dir(root, name), f))
    text = "".join(f"{p} {n} {c}\n" for p, n, c in rows)
    held, detail = expect_error(
        lambda: load_all(custom_dataset(root, text)), RuntimeError, "list.txt:2", name
    )
    ds = custom_dataset(root, text, on_bad="skip")
    with captured_log():
        load_all(ds)
    return held and ds.bad_videos == 1, f"{detail} | skip: bad_videos {ds.bad_videos}"


def _videos(ctx: Ctx, name: str) -> tuple[str, list]:
    root = ctx.data_copy(name)
    os.makedirs(os.path.join(root, "videos"))
    return root, list_rows(root, "val")[:2]


def case_video_zero_byte(ctx: Ctx) -> tuple[bool, str]:
    root, rows = _videos(ctx, "video_zero_byte")
    vids = os.path.join(root, "videos")
    write_video(os.path.join(vids, rows[0][0] + ".avi"), folder_frames(root, rows[0][0], rows[0][1]))
    open(os.path.join(vids, rows[1][0] + ".avi"), "wb").close()
    text = "".join(f"{p} {n} {c}\n" for p, n, c in rows)
    held, detail = expect_error(
        lambda: load_all(custom_dataset(root, text, video_root=vids)), RuntimeError, "list.txt:2", rows[1][0]
    )
    ds = custom_dataset(root, text, on_bad="skip", video_root=vids)
    with captured_log():
        load_all(ds)
    return held and ds.bad_videos == 1, f"{detail} | skip: bad_videos {ds.bad_videos}"


def case_video_no_stream(ctx: Ctx) -> tuple[bool, str]:
    import av

    root, rows = _videos(ctx, "video_no_stream")
    vids = os.path.join(root, "videos")
    path = os.path.join(vids, rows[0][0] + ".mkv")
    with av.open(path, "w") as c:  # one second of silence, no video stream
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    text = f"{rows[0][0]} {rows[0][1]} {rows[0][2]}\n"
    return expect_error(
        lambda: load_all(custom_dataset(root, text, video_root=vids)),
        RuntimeError,
        "list.txt:1",
        "no video stream",
    )


def case_video_fewer_frames(ctx: Ctx) -> tuple[bool, str]:
    """A video cut short (its header says more frames than its data holds) and a row asking for more frames than
    it has: the missing frames are replaced by the nearest decoded one, counted and named, or the video is refused
    by name; never garbage."""
    root, rows = _videos(ctx, "video_fewer_frames")
    vids = os.path.join(root, "videos")
    name, n, label = rows[0]
    path = os.path.join(vids, name + ".avi")
    write_video(path, folder_frames(root, name, n))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 6 // 10])  # the header (frame count, index) still describes n frames
    with captured_log() as log:
        ds = custom_dataset(root, f"{name} {n + 6} {label}\n", video_root=vids)
        ds.num_candidates = n + 6
        try:
            load_all(ds)
        except RuntimeError as exc:
            named = name in str(exc) and "list.txt:1" in str(exc)
            return named, f"refused: {short(str(exc))}"
    named = any(name in line for line in log)
    return ds.missing_frames > 0 and named, f"missing_frames {ds.missing_frames}, named: {named}"


def case_video_size_change(ctx: Ctx) -> tuple[bool, str]:
    """A video whose frame size changes mid-stream (two MPEG-TS segments of other sizes, concatenated): refused by
    name, or read with every frame at one size."""
    root, rows = _videos(ctx, "video_size_change")
    vids = os.path.join(root, "videos")
    name, n, label = rows[0]
    frames = folder_frames(root, name, n)
    half = n // 2
    a, b = os.path.join(ctx.work, "a.ts"), os.path.join(ctx.work, "b.ts")
    write_video(a, frames[:half], "mpeg2video", "mpegts")
    write_video(b, np.ascontiguousarray(frames[half:, :48, :64]), "mpeg2video", "mpegts")
    with open(os.path.join(vids, name + ".ts"), "wb") as f:
        f.write(open(a, "rb").read() + open(b, "rb").read())
    ds = custom_dataset(root, f"{name} {n} {label}\n", video_root=vids, video_ext=".ts")
    ds.num_candidates = n
    try:
        with captured_log():
            load_all(ds)
    except RuntimeError as exc:
        msg = str(exc)
        return name in msg and "list.txt:1" in msg, f"refused: {short(msg)}"
    return False, "read without an error although its frames have two sizes"


def case_list_rows(ctx: Ctx) -> tuple[bool, str]:
    """Rows with a label out of range, a negative frame count, a duplicate path: refused naming file:line (the
    duplicate's later rows skipped by name with --on_bad_video skip)."""
    from ops.data.lists import ListFileError

    root = ctx.data_copy("list_rows")
    (a, na, ca), (b, nb, cb) = list_rows(root, "val")[:2]
    results = []
    for text, line, needle in (
        (f"{a} {na} {ca}\n{b} {nb} 7\n", 2, "label 7"),
        (f"{a} {na} {ca}\n{b} -3 {cb}\n", 2, "num_frames"),
        (f"{a} {na} {ca}\n{b} {nb} {cb}\n{a} {na} {ca}\n", 3, "listed again"),
    ):
        ok, detail = expect_error(
            lambda t=text: custom_dataset(root, t), ListFileError, f"list.txt:{line}", needle
        )
        results.append((ok, detail))
    with captured_log() as log:
        ds = custom_dataset(root, f"{a} {na} {ca}\n{b} {nb} {cb}\n{a} {na} {ca}\n", on_bad="skip")
    skipped = len(ds) == 2 and any("list.txt:3" in x for x in log)
    held = all(ok for ok, _ in results) and skipped
    return held, " | ".join(d for _, d in results) + f" | skip: {len(ds)} rows kept, named: {skipped}"


def case_list_encodings(ctx: Ctx) -> tuple[bool, str]:
    """A list file with a UTF-8 byte-order mark, CRLF line ends, and paths with spaces and non-ASCII characters:
    read, every item loads the frames of its folder."""
    root = ctx.data_copy("list_encodings")
    rows = list_rows(root, "val")[:3]
    names = ["clip one", "vidéo_été", "日本 語"]
    for (old, _, _), new in zip(rows, names):
        os.rename(frames_dir(root, old), frames_dir(root, new))
    text = "".join(f"{new} {n} {c}\r\n" for (_, n, c), new in zip(rows, names))
    ds = custom_dataset(root, b"\xef\xbb\xbf" + text.encode("utf-8"))
    load_all(ds)
    got = [r.path for r in ds.records]
    ok = got == names and ds.missing_frames == 0
    return ok, f"paths {got}, missing_frames {ds.missing_frames}"
