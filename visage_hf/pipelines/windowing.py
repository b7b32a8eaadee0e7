"""Any-length generation: cut a clip into model-sized windows that overlap, and stitch their audio back.

A ViSAGe model sees at most ``window_video_frames`` video frames (20 = 5 s at 4 fps) and writes at most
``max_window_frames`` codec frames (430) per generate call. A longer clip is generated window by window:

* **Video.** Window ``k`` covers video frames ``[s_k, s_k + W)`` with ``s_k = k·(W − O)`` (``O`` = overlap in
  video frames, 4 = 1 s by default); the last window is moved back to end exactly at the clip's last frame
  (so it overlaps its neighbour by at least ``O`` and still sees a full ``W`` frames of video).
* **Codes.** Window ``k`` writes codec frames ``[c_k, e_k)`` aligned with its video span: ``c_k`` is the codec
  frame boundary nearest the window's first video frame (``c_0 = 0``) and ``e_k`` the last whole codec frame
  inside its video span, capped at ``c_k + max_window_frames``. The last window ends at ``F = ceil(N / hop)``,
  the frames covering the requested ``N`` samples; its start moves later (by at most a frame or two) if the
  model could not otherwise reach ``F``. Frames ``[c_k, e_{k−1})`` are the **prefix**: window ``k`` is given
  window ``k−1``'s last codes there (``prefix_codes``) and continues after them, so the token stream is
  continuous across the join.
* **The last partial frame.** A clip needs ``F = ceil(N / hop)`` codec frames, but its video covers only
  ``floor(T · sample_rate / (fps · hop))`` whole ones (``T`` video frames): the frame that straddles the end
  of the video (at most one, since ``T = ceil(N · fps / sample_rate)``) is partly outside it. The corrected
  model is trained to write the whole frames of its video and no more (20 video frames -> 430 codec frames,
  the 861 decoder positions of the release), so exactly 5 s (220 500 samples, ``F = 431``) is 430 generated
  frames plus that partial one. A clip that fits one window therefore **repeats its last generated frame**
  for the partial frame (:attr:`Window.repeated_frames`, 0 or 1: at most one hop, 11.6 ms, of which the
  trim to ``N`` samples keeps 7.7 ms for 5 s) when the model cannot write it, as the original does for its 431st frame. A
  continuation window over the same video is planned only when the model cannot write all the *whole*
  frames of its video (``max_window_frames`` below them, e.g. 429 for 20 video frames): whole frames are
  always generated. Continuing for the partial frame (as this module did before) cost a second generate
  call that prefilled 859 prefix positions (×2 guidance branches) to write one frame: about 6 s of a ~40 s
  int8 generation of a 5-s clip on a 2-core AMD EPYC (AVX2); interleaved in one process on that CPU while
  shared (1 torch thread, load 4.1–5.3), 84 / 106 s before against 59 / 60 s after. A long clip's last
  window never needs this: its start moves a frame later instead, so even its last frame is generated.
* **Audio.** Each window's codes are decoded on their own and the pieces are joined with a short raised-cosine
  crossfade centred in the middle of each overlap (:func:`stitch_windows`). Both sides decode the same prefix
  codes there, so they agree up to the codec's edge effects (its receptive field is under ten frames, far
  from the overlap's middle); the crossfade hides what is left of them. A window only needs decoding over the
  samples it contributes (:func:`contribution_spans`, plus the codec's context), so the overlaps are not
  decoded twice.

Every function here is pure integer/array arithmetic, independent of torch and of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "Window",
    "WindowPlan",
    "contribution_spans",
    "crossfade_weights",
    "plan_windows",
    "stitch_windows",
]


@dataclass(frozen=True)
class Window:
    """One generate call: video frames ``[video_start, video_stop)`` of the clip (at the model's fps) and
    codec frames ``[code_start, code_stop)`` of the output, of which the first ``prefix_frames`` are copied
    from the previous window and the last ``repeated_frames`` (0 or 1: the frame partly past the end of the
    video) repeat the last generated frame."""

    video_start: int
    video_stop: int
    code_start: int
    code_stop: int
    prefix_frames: int
    repeated_frames: int = 0

    @property
    def generated_frames(self) -> int:
        """Codec frames the window's generate call writes, prefix included (the rest repeats its last frame)."""
        return self.num_code_frames - self.repeated_frames

    @property
    def num_video_frames(self) -> int:
        return self.video_stop - self.video_start

    @property
    def num_code_frames(self) -> int:
        return self.code_stop - self.code_start

    @property
    def new_frames(self) -> int:
        """Codec frames this window generates (beyond its prefix, without its repeated frames)."""
        return self.generated_frames - self.prefix_frames


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one clip of ``num_samples`` samples: ``num_video_frames`` video frames and
    ``num_code_frames`` codec frames in all."""

    windows: tuple[Window, ...]
    num_samples: int
    num_video_frames: int
    num_code_frames: int
    hop_length: int

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self):
        return iter(self.windows)

    def __getitem__(self, index: int) -> Window:
        return self.windows[index]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _video_starts(num_video_frames: int, window: int, overlap: int) -> list[int]:
    if num_video_frames <= window:
        return [0]
    stride = window - overlap
    starts = [0]
    while starts[-1] + window < num_video_frames:
        starts.append(starts[-1] + stride)
    starts[-1] = num_video_frames - window  # end exactly at the clip's end, with a full window of video
    return starts


def plan_windows(
    num_samples: int,
    *,
    sample_rate: int = 44100,
    hop_length: int = 512,
    video_fps: int | float = 4,
    window_video_frames: int = 20,
    max_window_frames: int = 430,
    overlap_video_frames: int = 4,
) -> WindowPlan:
    """Plan the windows covering ``[0, num_samples)`` samples (see the module docstring).

    Args:
        num_samples: output samples at ``sample_rate`` (the requested duration · sample rate, rounded).
        sample_rate, hop_length: codec rate and samples per codec frame (44100, 512).
        video_fps: video frames per second the model is conditioned on (4).
        window_video_frames: video frames one window sees (the model's ``max_source_positions``, 20).
        max_window_frames: codec frames one generate call can write (the model's ``max_frames``, 430).
        overlap_video_frames: video frames shared by neighbouring windows (>= 1, < window_video_frames).

    Returns:
        the :class:`WindowPlan`: ``num_video_frames = ceil(num_samples · fps / sample_rate)`` (every frame
        shown before the end), ``num_code_frames = ceil(num_samples / hop_length)``; the windows' code spans
        are increasing, start at 0, end at ``num_code_frames`` and overlap their predecessor by >= 1 frame; a
        single window may repeat its last frame once (``repeated_frames``, the frame partly past the video).

    Raises:
        ValueError: a non-positive size, an overlap outside ``[1, window_video_frames)``, or windows too short
            for their video (the model could not continue from a prefix).
    """
    num_samples = _positive_int(num_samples, "num_samples")
    sample_rate = _positive_int(sample_rate, "sample_rate")
    hop_length = _positive_int(hop_length, "hop_length")
    window = _positive_int(window_video_frames, "window_video_frames")
    max_frames = _positive_int(max_window_frames, "max_window_frames")
    overlap = _positive_int(overlap_video_frames, "overlap_video_frames")
    if overlap >= window:
        raise ValueError(
            f"overlap_video_frames: expected fewer than the window's {window} video frames, got {overlap}"
        )
    if not video_fps > 0:
        raise ValueError(f"video_fps: expected a positive number, got {video_fps!r}")
    fps = Fraction(video_fps).limit_denominator(1000)

    num_code_frames = -(-num_samples // hop_length)
    num_video_frames = math.ceil(Fraction(num_samples) * fps / sample_rate)
    frames_per_video_frame = Fraction(sample_rate) / (fps * hop_length)

    starts = _video_starts(num_video_frames, window, overlap)
    windows: list[Window] = []
    for index, video_start in enumerate(starts):
        video_stop = min(video_start + window, num_video_frames)
        whole_frames = math.floor(video_stop * frames_per_video_frame)  # codec frames inside the video so far
        last = index == len(starts) - 1
        code_start = 0 if index == 0 else round(video_start * frames_per_video_frame)
        repeated = 0
        if last and index == 0:
            code_stop, repeated = _single_window_end(num_code_frames, whole_frames, max_frames)
        elif last:
            code_stop = num_code_frames
            code_start = max(code_start, code_stop - max_frames)
        else:
            code_stop = min(whole_frames, code_start + max_frames)
        windows.append(_checked_window(windows, video_start, video_stop, code_start, code_stop, repeated))

    if windows[-1].code_stop < num_code_frames:
        # One window of video needs more codec frames than one call writes: continue over the same video.
        final = windows[-1]
        windows.append(
            _checked_window(
                windows, final.video_start, final.video_stop, num_code_frames - max_frames, num_code_frames
            )
        )
    return WindowPlan(tuple(windows), num_samples, num_video_frames, num_code_frames, hop_length)


def _single_window_end(num_code_frames: int, whole_frames: int, max_frames: int) -> tuple[int, int]:
    """``(code_stop, repeated_frames)`` of a clip's only window: all ``num_code_frames`` generated if the model
    writes that many, else the partial frame past the video's end (``num_code_frames <= whole_frames + 1``)
    repeated; ``(max_frames, 0)`` when the model cannot write all the whole frames of its video (a
    continuation window over the same video writes the rest)."""
    if min(num_code_frames, whole_frames) > max_frames:
        return max_frames, 0
    return num_code_frames, num_code_frames - min(num_code_frames, max_frames)


def _checked_window(
    previous: list[Window],
    video_start: int,
    video_stop: int,
    code_start: int,
    code_stop: int,
    repeated_frames: int = 0,
) -> Window:
    if code_stop - repeated_frames <= code_start:
        raise ValueError(
            f"a window of video frames [{video_start}, {video_stop}) gets no codec frames; the model's "
            "window is too short for its video frame rate"
        )
    if not previous:
        return Window(video_start, video_stop, code_start, code_stop, 0, repeated_frames)
    before = previous[-1]
    if not before.code_start < code_start < before.code_stop:
        raise ValueError(
            f"window codec frames [{code_start}, {code_stop}) do not continue the previous window "
            f"[{before.code_start}, {before.code_stop}): the model writes too few codec frames per window "
            "for this overlap"
        )
    return Window(
        video_start, video_stop, code_start, code_stop, before.code_stop - code_start, repeated_frames
    )


def crossfade_weights(length: int) -> np.ndarray:
    """Raised-cosine fade-in ``(length,)`` float64 from near 0 to near 1, with ``w[i] + w[length-1-i] = 1``.

    The two sides of a join decode the same codes (they are correlated), so their gains must sum to one
    (equal-gain), not their powers.
    """
    if length < 1:
        return np.zeros(0)
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)


def _fades(plan: WindowPlan, crossfade_samples: int) -> list[tuple[int, int]]:
    """Sample span ``[start, stop)`` of the crossfade at each join, centred in the overlap."""
    if (
        isinstance(crossfade_samples, bool)
        or int(crossfade_samples) != crossfade_samples
        or crossfade_samples < 0
    ):
        raise ValueError(f"crossfade_samples: expected an integer >= 0, got {crossfade_samples!r}")
    hop, fades = plan.hop_length, []
    for before, window in zip(plan.windows, plan.windows[1:]):
        overlap_start, overlap_stop = window.code_start * hop, before.code_stop * hop
        length = min(int(crossfade_samples), overlap_stop - overlap_start)
        start = (overlap_start + overlap_stop - length) // 2
        fades.append((start, start + length))
    return fades


def contribution_spans(plan: WindowPlan, crossfade_samples: int) -> list[tuple[int, int]]:
    """The output samples ``[start, stop)`` each window's audio is used for, crossfades included.

    Only these need decoding: from the previous join's fade to the next join's fade (the clip's start and
    the plan's last codec frame at the ends). Each span lies inside its window's codec frames.
    """
    fades = _fades(plan, crossfade_samples)
    starts = [0] + [start for start, _ in fades]
    stops = [stop for _, stop in fades] + [plan.num_code_frames * plan.hop_length]
    return list(zip(starts, stops))


def stitch_windows(pieces, plan: WindowPlan, crossfade_samples: int) -> np.ndarray:
    """Join the decoded audio of each window into one signal of ``plan.num_samples`` samples.

    Args:
        pieces: one float array ``(..., stop - start)`` per window: its audio over its
            :func:`contribution_spans` ``[start, stop)``.
        plan: the :class:`WindowPlan` the pieces were generated with.
        crossfade_samples: length of the raised-cosine crossfade centred in each overlap (shortened to the
            overlap when the overlap is shorter); 0 cuts hard at the overlap's middle.

    Returns:
        float32 ``(..., plan.num_samples)``.
    """
    if len(pieces) != len(plan.windows):
        raise ValueError(f"pieces: expected one per window ({len(plan.windows)}), got {len(pieces)}")
    spans = contribution_spans(plan, crossfade_samples)
    fades = _fades(plan, crossfade_samples)
    pieces = [np.asarray(piece, dtype=np.float32) for piece in pieces]
    for (start, stop), piece in zip(spans, pieces):
        if piece.shape[-1] != stop - start:
            raise ValueError(
                f"the piece for output samples [{start}, {stop}) must have {stop - start} samples, "
                f"got {piece.shape[-1]}"
            )
    output = np.zeros((*pieces[0].shape[:-1], spans[-1][1]), dtype=np.float32)
    output[..., : spans[0][1]] = pieces[0]
    for (fade_start, fade_stop), (_, stop), piece in zip(fades, spans[1:], pieces[1:]):
        length = fade_stop - fade_start
        fade_in = crossfade_weights(length).astype(np.float32)
        output[..., fade_start:fade_stop] = (1 - fade_in) * output[
            ..., fade_start:fade_stop
        ] + fade_in * piece[..., :length]
        output[..., fade_stop:stop] = piece[..., length:]
    return output[..., : plan.num_samples]
