"""Where the video file of a list path is: `<video_root>/<path>` with its extension, or found among the
containers the reader knows (`VIDEO_EXTS`), or `<path><ext>` with a forced extension (`--video_ext`).

The search lists each folder once (os.scandir) and keeps the listing for the life of the process, so an epoch
over a million-video list costs one scan per folder, not a stat per sample; a DataLoader worker builds its own
listings once (persistent workers keep them across epochs).
"""

from __future__ import annotations

import os
import threading

from ops.data.video_io import FrameReadError

# Searched in this order when a list path has no extension (the first present one is read).
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def normalize_ext(ext: str) -> str:
    """Returns `ext` with a leading dot ('avi' -> '.avi'); raises ValueError for an empty one."""
    ext = ext.strip()
    if not ext.lstrip("."):
        raise ValueError(f"empty video extension {ext!r}")
    return ext if ext.startswith(".") else "." + ext


def has_video_ext(path: str) -> bool:
    """True when `path` ends in one of VIDEO_EXTS (any case)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS


class VideoLocator:
    """Maps list paths to video files under `root`.

    - a path that ends in a known extension (`walk/vtest.avi`) is `root/path` as it is;
    - with `ext` (forced, e.g. '.avi' or 'avi'), any other path is `root/path + ext`;
    - otherwise `root/path.<e>` for the first e of VIDEO_EXTS present in the folder (extension case ignored);
      none present raises FrameReadError naming every file tried.
    """

    def __init__(self, root: str, ext: str | None = None) -> None:
        self.root = root
        self.ext = None if ext is None else normalize_ext(ext)
        self._listings: dict[str, dict[tuple[str, str], str]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # Sent to DataLoader workers: the lock cannot be pickled; listings travel if already built.
        return {"root": self.root, "ext": self.ext, "_listings": dict(self._listings)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _listing(self, folder: str) -> dict[tuple[str, str], str]:
        """Returns {(stem, lower-case extension): file name} of the video files in `folder` (cached)."""
        listing = self._listings.get(folder)
        if listing is None:
            listing = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        stem, ext = os.path.splitext(entry.name)
                        if ext.lower() in VIDEO_EXTS:
                            listing.setdefault((stem, ext.lower()), entry.name)
            except OSError:
                pass  # a missing folder lists nothing; find() names it in its error
            with self._lock:
                self._listings[folder] = listing
        return listing

    def find(self, path: str) -> str:
        """Returns the video file of list path `path`; raises FrameReadError when the search finds none."""
        full = os.path.join(self.root, path)
        if has_video_ext(path):
            return full
        if self.ext is not None:
            return full if full.lower().endswith(self.ext.lower()) else full + self.ext
        folder, stem = os.path.split(full)
        listing = self._listing(folder)
        for ext in VIDEO_EXTS:
            name = listing.get((stem, ext))
            if name is not None:
                return os.path.join(folder, name)
        where = "" if os.path.isdir(folder) else f" (folder {folder} does not exist)"
        raise FrameReadError(
            f"no video file for list path {path!r}: tried {', '.join(full + e for e in VIDEO_EXTS)}{where}; "
            "give the extension in the list or force one with --video_ext"
        )
