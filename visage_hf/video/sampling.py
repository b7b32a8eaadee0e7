"""Which source frame stands for each 4-fps video frame: exact-time sampling, or the frames FFmpeg picked.

Two samplings exist (:data:`FRAME_SAMPLINGS`):

- ``"exact"``: frame ``k`` is the source frame a player shows at ``start + k / fps`` (the last frame whose
  timestamp is at or before that time).
- ``"ffmpeg"``: the frames ``ffmpeg -ss start -to start+duration -i video -r fps out.mp4`` writes, which is how
  ViSAGe's training clips were cut (its ``utils/prepare_dataset.py``; FFmpeg 5.x command-line tool, constant
  frame rate output). The released checkpoint saw these frames, so converted checkpoints use this sampling.

FFmpeg's rule (``fftools/ffmpeg.c``, ``do_video_out`` with ``-vsync cfr``, measured against Debian's FFmpeg 5.1
by ``tests/video/test_sampling.py``): input seeking shifts timestamps so that ``start`` is 0 and drops the
frames before it; each remaining frame, at ``x = t · fps`` output frames with a length ``d`` (output frames per
source frame, ``fps / source rate``), is compared with the next output slot ``n``: with ``delta = x + d - n`` it
is written once when ``-1.1 <= delta <= 1.1``, dropped when ``delta < -1.1``, and written ``round(delta)`` times
when ``delta > 1.1`` (the first ``round(x - n - 0.6)`` of them repeating the previous source frame). So for
sources faster than 8 fps, output frame 0 is the first source frame at or after ``start``, frame 1 the next
source frame (a near duplicate), and frame ``n >= 2`` the first source frame at or after
``(n - 1.1 - d) / fps`` seconds: at 4 fps about ``0.25 (n - 1) - 0.04`` s, some 0.29 s before the frame
exact-time sampling shows for ``n``. :class:`FfmpegFrameSelector` re-implements
the rule on the frames' timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["FRAME_SAMPLINGS", "FfmpegFrameSelector", "check_frame_sampling", "ffmpeg_frame_selection"]

FRAME_SAMPLINGS = ("exact", "ffmpeg")

# FFmpeg's constants (fftools/ffmpeg.c, 5.x): the drop / duplicate thresholds of constant-frame-rate output,
# and the nudge it adds to every timestamp to stay off exact midpoints.
_DROP_BELOW = -1.1
_DUPLICATE_ABOVE = 1.1
_MIDPOINT_NUDGE = 1.0 / (1 << 17)
_AV_TIME_BASE = 1_000_000


def check_frame_sampling(sampling: str) -> str:
    """``sampling`` if it is one of :data:`FRAME_SAMPLINGS`, else a one-line ``ValueError``."""
    if sampling not in FRAME_SAMPLINGS:
        raise ValueError(f"frame sampling: expected one of {FRAME_SAMPLINGS}, got {sampling!r}")
    return sampling


def _rescale(value: int, source: Fraction, target: Fraction) -> int:
    """FFmpeg's ``av_rescale_q``: ``value · source / target`` rounded to nearest, halves away from zero."""
    exact = Fraction(value) * source / target
    return int(math.copysign(math.floor(abs(exact) + Fraction(1, 2)), exact))


def _encoder_time(pts: int, time_base: Fraction, fps: Fraction) -> float:
    """A timestamp in output frames, as FFmpeg computes it (extra fractional bits, then the midpoint nudge)."""
    extra_bits = min(max(29 - (fps.numerator.bit_length() - 1), 0), 16)
    fine = Fraction(1, fps.numerator << extra_bits) * fps.denominator
    value = _rescale(pts, time_base, fine) / (1 << extra_bits)
    return value + (_MIDPOINT_NUDGE if value > 0 else -_MIDPOINT_NUDGE)


class FfmpegFrameSelector:
    """FFmpeg's constant-frame-rate selection, one decoded frame at a time (so frames need not be kept).

    Args:
        time_base: the video stream's time base.
        start, duration: the ``-ss`` seconds and the ``-to`` minus ``-ss`` seconds (None: to the end).
        fps: the ``-r`` output rate.
        source_rate: the stream's guessed frame rate (FFmpeg's ``av_guess_frame_rate``); None or 0: unknown.
        container_start: the container's start time in microseconds (FFmpeg's ``start_time``).
        single_stream: whether the file has only this stream (FFmpeg then skips duplicating initial frames).
    """

    def __init__(
        self,
        time_base: Fraction,
        *,
        start: float,
        duration: float | None,
        fps: float | Fraction = 4,
        source_rate: Fraction | float | None,
        container_start: int = 0,
        single_stream: bool = True,
    ) -> None:
        self.time_base = Fraction(time_base)
        self.fps = Fraction(fps).limit_denominator(1001)
        micro = Fraction(1, _AV_TIME_BASE)
        self.offset = _rescale(round(start * _AV_TIME_BASE) + container_start, micro, self.time_base)
        self.end = (
            None if duration is None else _rescale(round(duration * _AV_TIME_BASE), micro, self.time_base)
        )
        rate_length = float(self.fps / Fraction(source_rate)) if source_rate else 0.0
        self.rate_length = min(rate_length, 1.0)
        self.single_stream = single_stream
        self.slot = 0  # the next output slot (FFmpeg's ``sync_opts``)
        self.written = 0
        self.first_kept: int | None = None
        self.recent_repeats = [0, 0, 0]
        self.finished = False

    def kept(self, pts: int) -> bool:
        """Whether a frame at ``pts`` is at or after the seek point (earlier frames never reach the output)."""
        return pts - self.offset >= 0

    def push(self, pts: int, frame_duration: int = 0) -> tuple[int, int] | None:
        """Feed the next frame in presentation order: ``(times to repeat the previous frame, times to write this
        one)``, or None once the clip has ended (stop decoding)."""
        shifted = pts - self.offset
        if shifted < 0:  # before the seek point: decoded, then dropped (accurate seek)
            return 0, 0
        if self.first_kept is None:
            self.first_kept = shifted
        if self.finished or (self.end is not None and shifted - self.first_kept >= self.end):
            self.finished = True
            return None
        length = self.rate_length
        if frame_duration:
            whole = round(float(Fraction(frame_duration) * self.time_base * self.fps))
            length = whole if whole > 0 else length
        time = _encoder_time(shifted, self.time_base, self.fps)
        if (
            self.single_stream and not self.written and time - self.slot >= 0.5
        ):  # "vscfr": no initial duplicates
            self.slot = round(time)
            repeats, count = _output_counts(0.0, length)
        else:
            repeats, count = _output_counts(time - self.slot, length)
        self.slot += count
        self.written += count
        self.recent_repeats = [repeats, *self.recent_repeats[:2]]
        return repeats, count - repeats

    def flush(self) -> int:
        """How many more times the last frame is written at the end (the median of the last three repeats)."""
        return sorted(self.recent_repeats)[1] if self.written else 0


def ffmpeg_frame_selection(
    pts: Sequence[int],
    time_base: Fraction,
    *,
    frame_durations: Sequence[int] | None = None,
    **options,
) -> list[int]:
    """The source frames ``ffmpeg -ss start -to start+duration -i video -r fps out.mp4`` writes, in order.

    Args:
        pts: presentation timestamps of the decoded frames in ``time_base`` units, in presentation order,
            from a key frame at or before ``start`` on (earlier frames are dropped).
        frame_durations: each frame's duration in ``time_base`` units (0 when unknown); FFmpeg uses them for
            sources slower than ``fps / 2``.
        **options: ``start``, ``duration``, ``fps``, ``source_rate``, ``container_start``, ``single_stream``
            of :class:`FfmpegFrameSelector`.

    Returns:
        indices into ``pts``, one per output frame.
    """
    selector = FfmpegFrameSelector(time_base, **options)
    picked: list[int] = []
    previous = None
    for index, stamp in enumerate(pts):
        counts = selector.push(stamp, frame_durations[index] if frame_durations is not None else 0)
        if counts is None:
            break
        repeats, own = counts
        picked.extend([index if previous is None else previous] * repeats + [index] * own)
        if selector.kept(stamp):
            previous = index
    if previous is not None:
        picked.extend([previous] * selector.flush())
    return picked


def _output_counts(delta0: float, length: float) -> tuple[int, int]:
    """``(repeats of the previous frame, output frames in all)`` for a source frame ``delta0`` output frames
    after the next slot, ``length`` output frames long."""
    delta = delta0 + length
    if delta0 < 0 < delta:  # starts before the slot but reaches into it: clipped to the slot
        delta0 = 0.0
    if delta < _DROP_BELOW:
        return 0, 0
    if delta > _DUPLICATE_ABOVE:
        count = _round_half_even(delta)
        repeats = _round_half_even(delta0 - 0.6) if delta0 > _DUPLICATE_ABOVE else 0
        return min(repeats, count), count
    return 0, 1


def _round_half_even(value: float) -> int:
    """C's ``llrintf`` in the default rounding mode (half to even), on a float32 like FFmpeg's."""
    import numpy as np

    return int(np.rint(np.float32(value)))
