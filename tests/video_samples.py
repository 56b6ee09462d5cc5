"""Small videos with the features real datasets ship and that break timestamp-based seeking, written with PyAV.

- `write_packed`: MPEG-4 Part 2 in AVI with DivX-style packed B-frames, as UCF101 and HMDB51 ship (Xvid /
  DivX 5): encoded with 2 B-frames, then every reference VOP and the B-VOP that follows it in decoding order
  are put in one AVI chunk, the other B-VOP keeps its own chunk, and a not-coded VOP (N-VOP, vop_coded = 0)
  fills the freed slot, so there is one chunk per frame and chunk k sits at frame time k. The VOL user data
  says `DivX503b1393p` (the trailing `p`: packed bitstream), as DivX 5 writes it.
- `write_nvop`: MPEG-4 Part 2 in AVI with N-VOPs where an encoder dropped a frame (Xvid frame dropping):
  the chunk is there, the decoder gives no frame for it.
- `write_h264`: H.264 with open GOPs (x264 `open-gop`) and/or variable frame durations, in any container.
"""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np

RATE = 25  # frames per second; MPEG-4 writes vop_time_increment_resolution = RATE
VOP = b"\x00\x00\x01\xb6"  # vop_start_code


def clip(n: int, h: int, w: int, seed: int = 3) -> np.ndarray:
    """(n, h, w, 3) uint8: a blurred noise texture panning 2 px per frame (each frame unlike its neighbours)."""
    tex = np.random.default_rng(seed).integers(0, 256, (h, w + 2 * n, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(tex, (5, 5), 0)
    return np.stack([tex[:, 2 * t : 2 * t + w] for t in range(n)])


def encode_mpeg4(frames: np.ndarray, b_frames: int, gop: int) -> list[bytes]:
    """MPEG-4 Part 2 packets of RGB frames (T, H, W, 3) in decoding order."""
    ctx = av.CodecContext.create("mpeg4", "w")
    ctx.width, ctx.height, ctx.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, RATE), RATE
    ctx.gop_size, ctx.max_b_frames = gop, b_frames
    ctx.options = {"sc_threshold": "1000000000"}  # keyframes every `gop` frames only
    packets = []
    for t, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24")
        frame.pts = t
        packets += [bytes(p) for p in ctx.encode(frame)]
    return packets + [bytes(p) for p in ctx.encode(None)]


def split_vops(data: bytes) -> tuple[bytes, list[bytes]]:
    """(headers before the first VOP: VOS, VOL, user data, GOV; the VOPs) of an MPEG-4 packet."""
    starts, k = [], data.find(VOP)
    while k >= 0:
        starts.append(k)
        k = data.find(VOP, k + 4)
    return data[: starts[0]], [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def vop_type(vop: bytes) -> str:
    """'I', 'P', 'B' or 'S': vop_coding_type, the two bits after the start code."""
    return "IPBS"[vop[4] >> 6]


def n_vop(like: bytes, coding_type: str = "P") -> bytes:
    """A not-coded VOP with the time fields of the VOP `like`: start code, vop_coding_type,
    modulo_time_base, marker, vop_time_increment, marker, vop_coded = 0, then stuffing to a byte."""
    bits = "".join(f"{b:08b}" for b in like[4:12])
    increment_bits = (RATE - 1).bit_length()
    i = 2
    while bits[i] == "1":  # modulo_time_base: ones ended by a zero
        i += 1
    end = i + 1 + 1 + increment_bits + 1  # the zero, marker, vop_time_increment, marker
    out = {"I": "00", "P": "01", "B": "10"}[coding_type] + bits[2:end] + "0"
    out += "0" + "1" * (-(len(out) + 1) % 8)  # next_start_code stuffing
    return VOP + int(out, 2).to_bytes(len(out) // 8, "big")


def write_chunks(path: str, chunks: list[bytes], keys: list[bool], size: tuple[int, int], tag: str) -> None:
    """Writes MPEG-4 chunks, one per frame time, keyframe flags as given, into an AVI (FourCC `tag`) or any
    container PyAV writes (as a remux of such an AVI would)."""
    with av.open(path, "w") as c:
        s = c.add_stream("mpeg4", rate=RATE)
        s.height, s.width, s.pix_fmt = size[0], size[1], "yuv420p"
        if path.endswith(".avi"):
            s.codec_tag = tag
        for t, (chunk, key) in enumerate(zip(chunks, keys)):
            p = av.Packet(chunk)
            p.stream, p.time_base, p.pts, p.dts, p.is_keyframe = s, Fraction(1, RATE), t, t, key
            c.mux(p)


def _divx(headers: bytes) -> bytes:
    """The encoder's headers with its user data (`Lavc...`) replaced by DivX 5's."""
    k = headers.find(b"\x00\x00\x01\xb2")
    if k < 0:
        return headers
    end = headers.find(b"\x00\x00\x01", k + 4)
    return headers[:k] + b"\x00\x00\x01\xb2DivX503b1393p" + (headers[end:] if end >= 0 else b"")


def write_packed(path: str, frames: np.ndarray, gop: int = 8) -> None:
    """Writes frames (T, H, W, 3) as DivX-style packed B-frames (see the module docstring)."""
    packets = encode_mpeg4(frames, b_frames=2, gop=gop)
    chunks, keys, i = [], [], 0
    while i < len(packets):
        head, vops = split_vops(packets[i])
        kind, j = vop_type(vops[0]), i + 1
        b_vops = []
        while j < len(packets) and vop_type(split_vops(packets[j])[1][0]) == "B":
            b_vops.append(packets[j])
            j += 1
        if b_vops:  # reference + first B-VOP, then the other B-VOPs, then an N-VOP in the freed slot
            chunks += [_divx(head) + vops[0] + b_vops[0]] + b_vops[1:] + [n_vop(split_vops(b_vops[-1])[1][0])]
            keys += [kind == "I"] + [False] * len(b_vops)
        else:
            chunks.append(_divx(head) + vops[0])
            keys.append(kind == "I")
        i = j
    assert len(chunks) == len(frames)
    write_chunks(path, chunks, keys, frames.shape[1:3], "DX50")


def write_nvop(path: str, frames: np.ndarray, after: tuple[int, ...], gop: int = 8) -> None:
    """Writes frames (T, H, W, 3) as MPEG-4 without B-frames, with an N-VOP chunk after each packet in `after`
    (0-based): T + len(after) chunks, T decoded frames."""
    chunks, keys = [], []
    for t, packet in enumerate(encode_mpeg4(frames, b_frames=0, gop=gop)):
        chunks.append(packet)
        keys.append(vop_type(split_vops(packet)[1][0]) == "I")
        if t in after:
            chunks.append(n_vop(split_vops(packet)[1][0]))
            keys.append(False)
    write_chunks(path, chunks, keys, frames.shape[1:3], "XVID")


def write_h264(path: str, frames: np.ndarray, x264: str, durations: list[int] | None = None) -> None:
    """Writes frames (T, H, W, 3) with libx264 (`x264` as x264-params); with `durations` (in 1/RATE s, cycled)
    the frame times are uneven (variable frame rate)."""
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=RATE, options={"x264-params": x264})
        s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        t = 0
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, RATE)
            t += durations[i % len(durations)] if durations else 1
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
