"""The error the frame readers raise (frame folders and video files alike)."""


class FrameReadError(RuntimeError):
    """A video or frame folder could not be read; the message names the file."""
