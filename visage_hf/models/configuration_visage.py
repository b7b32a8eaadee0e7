"""`VisageConfig`: sizes, special ids, the code pattern and all frame arithmetic of a ViSAGe model.

Every conversion between seconds, video frames, codec frames, decoder steps and audio samples lives here, so
that the model, the pipeline and the data code agree. Two modes exist where the original implementation
differs from the physics:

- ``"corrected"`` (default): the codec frame rate is the true 44100 / 512 = 86.1328 frames/s, and a clip
  gets the whole codec frames that fit in its video duration: ``floor(seconds · 86.1328)`` (430 for 5 s,
  i.e. 4.992 s of audio; the 7.7 ms remainder is not a whole frame). 431 frames (what DAC returns for 5 s)
  would need 2·431+1 = 863 decoder positions, but the released checkpoint learned 861 — so the model can
  only produce 430 frames per 5 s window, exactly the 430 frames it was trained on (the original training
  crop drops the 431st). The pipeline repeats the 430th frame for the partial 431st (not a second
  generate call, see ``pipelines/windowing``) and trims the audio to the exact sample count.
- ``"original"``: the original's integer rate 86: ``int(T / 4 · 86)`` frames are generated, then padded to
  ``ceil(int(T / 4 · 44100) / 512)`` (431 for 5 s) by repeating the last frame.
"""

from __future__ import annotations

import math
from fractions import Fraction

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .modes import MODES, check_mode
from .patterns import PATTERN_NAMES, CodePattern, get_pattern

# The samplings of :mod:`visage_hf.video.sampling` (repeated here: modules of the auto_map chain import only
# their siblings).
FRAME_SAMPLINGS = ("exact", "ffmpeg")
GUIDANCE_MODES = ("joint", "dual", "visual", "direction", "none")

# Defaults written into `model.generation_config` (transformers keeps generation settings out of the model
# config). Custom names avoid `guidance_scale`, which would switch on transformers' own CFG processor.
DEFAULT_GENERATION_SETTINGS = {
    "do_sample": True,
    "top_k": 256,
    "guidance_mode": "joint",
    "cfg_guidance_scale": 2.5,
    "cfg_direction_guidance_scale": 2.5,
}


class VisageConfig(PreTrainedConfig):
    r"""Configuration of [`VisageForFOA`]: video (CLIP + energy map) and a camera direction -> FOA codec codes.

    Defaults are the released ViSAGe model (`cfg/config.json` of the original repository): a 6 + 12 layer
    post-LayerNorm BART-style encoder-decoder, d_model 1024, over 36 DAC code streams (4 ambisonic channels in
    AmbiX order W, Y, Z, X × 9 RVQ levels, stream ``j = 9·c + q``). ``num_channels=1`` gives the mono variant
    (9 streams, no energy-map or direction input) used for VGGSound pre-training.

    Args:
        d_model, encoder_layers, decoder_layers, encoder_attention_heads, decoder_attention_heads,
        encoder_ffn_dim, decoder_ffn_dim, activation_function, dropout, attention_dropout, activation_dropout,
        init_std, layer_norm_eps: transformer sizes (BART names and meanings).
        clip_dim: size of a CLIP frame feature (512, ViT-B/32).
        energy_map_dim: size of the patchwise energy map per video frame (7×7 = 49).
        direction_dim: size of the camera-direction vector (3).
        num_channels: 4 (FOA) or 1 (mono variant).
        num_codebooks, codebook_size: RVQ levels per channel and codes per level (DAC 44.1 kHz: 9, 1024).
        code_pad_id: id of the pad code (zero embedding; never predicted).
        code_embedding_rows: rows of each code-embedding table (the original rounds 1025 up to 1088).
        max_source_positions: video frames the encoder has positions for (20 = 5 s at 4 fps).
        max_target_positions: decoder positions (861 = 2·430 + 1 pattern steps).
        sample_rate, hop_length: codec sample rate and samples per codec frame.
        video_fps: CLIP frames per second.
        pattern: code interleaving pattern, one of ``visage``, ``delay``, ``parallel``, ``flatten``, ``custom``.
        pattern_delays, pattern_substeps: the stream delays and sub-steps per frame of a ``custom`` pattern.
        mode: ``"corrected"`` (default) or ``"original"`` frame arithmetic and generation details.
        frame_sampling: which source frames stand for the ``video_fps`` frames of a video file: ``"ffmpeg"``
            (default; the frames ``ffmpeg -ss S -to S+5 -i video -r 4`` writes, how the original's training
            clips were cut, so what the released weights saw) or ``"exact"`` (the frame shown at ``k / fps``;
            for models trained on data prepared that way). See :mod:`visage_hf.video.sampling`.
        visual_dropout_prob, direction_dropout_prob: classifier-free-guidance dropout used by the training
            collator (visual = CLIP + energy map, nulled together, as in the original).
        label_smoothing: cross-entropy label smoothing (original: 0).
        ambisonics_format: channel convention of the codes' audio (``"ambix"``: ACN order, SN3D).
    """

    model_type = "visage"
    keys_to_ignore_at_inference = ("cache",)

    d_model: int = 1024
    encoder_layers: int = 6
    decoder_layers: int = 12
    encoder_attention_heads: int = 16
    decoder_attention_heads: int = 16
    encoder_ffn_dim: int = 4096
    decoder_ffn_dim: int = 4096
    activation_function: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    layer_norm_eps: float = 1e-5
    clip_dim: int = 512
    energy_map_dim: int = 49
    direction_dim: int = 3
    num_channels: int = 4
    num_codebooks: int = 9
    codebook_size: int = 1024
    code_pad_id: int = 1024
    code_embedding_rows: int = 1088
    max_source_positions: int = 20
    max_target_positions: int = 861
    sample_rate: int = 44100
    hop_length: int = 512
    video_fps: int = 4
    pattern: str = "visage"
    pattern_delays: list[int] | None = None
    pattern_substeps: int | None = None
    mode: str = "corrected"
    frame_sampling: str = "ffmpeg"
    visual_dropout_prob: float = 0.1
    direction_dropout_prob: float = 0.1
    label_smoothing: float = 0.0
    ambisonics_format: str = "ambix"
    use_cache: bool = True
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    decoder_start_token_id: int | None = None

    def __post_init__(self, **kwargs):
        # The decoder start "token" is a placeholder replaced by the learned BOS vector; the pad code serves.
        if self.pad_token_id is None:
            self.pad_token_id = self.code_pad_id
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.code_pad_id
        super().__post_init__(**kwargs)
        self.validate_visage()

    # ------------------------------------------------------------------ validation
    def validate_visage(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        _require(
            self.num_channels in (1, 4), f"num_channels must be 4 (FOA) or 1 (mono), got {self.num_channels}"
        )
        for name in (
            "d_model",
            "encoder_layers",
            "decoder_layers",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "clip_dim",
            "energy_map_dim",
            "direction_dim",
            "num_codebooks",
            "codebook_size",
            "max_source_positions",
            "max_target_positions",
            "sample_rate",
            "hop_length",
        ):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"{name} must be a positive integer, got {value!r}",
            )
        _require(
            isinstance(self.video_fps, (int, float)) and self.video_fps > 0,
            f"video_fps must be positive, got {self.video_fps!r}",
        )
        for heads_name in ("encoder_attention_heads", "decoder_attention_heads"):
            heads = getattr(self, heads_name)
            _require(
                self.d_model % heads == 0,
                f"d_model ({self.d_model}) must be divisible by {heads_name} ({heads})",
            )
        _require(
            self.code_pad_id >= self.codebook_size,
            f"code_pad_id ({self.code_pad_id}) must lie outside the codebook [0, {self.codebook_size})",
        )
        _require(
            self.code_embedding_rows > self.code_pad_id,
            f"code_embedding_rows ({self.code_embedding_rows}) must exceed code_pad_id ({self.code_pad_id})",
        )
        _require(
            self.activation_function in ACT2FN,
            f"activation_function {self.activation_function!r} is not a transformers activation",
        )
        for name in (
            "dropout",
            "attention_dropout",
            "activation_dropout",
            "visual_dropout_prob",
            "direction_dropout_prob",
        ):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, f"{name} must be a probability in [0, 1], got {value!r}")
        check_mode(self.mode)
        _require(
            self.frame_sampling in FRAME_SAMPLINGS,
            f"frame_sampling must be one of {list(FRAME_SAMPLINGS)}, got {self.frame_sampling!r}",
        )
        _require(
            self.pattern in PATTERN_NAMES,
            f"pattern must be one of {list(PATTERN_NAMES)}, got {self.pattern!r}",
        )
        pattern = self.code_pattern  # validates custom delays
        _require(
            pattern.num_steps(1) <= self.max_target_positions,
            f"max_target_positions ({self.max_target_positions}) cannot hold even one frame of the "
            f"{self.pattern!r} pattern ({pattern.num_steps(1)} steps)",
        )

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_streams(self) -> int:
        """Code streams: channels × RVQ levels (36 for FOA, 9 for mono)."""
        return self.num_channels * self.num_codebooks

    @property
    def is_mono(self) -> bool:
        return self.num_channels == 1

    @property
    def code_pattern(self) -> CodePattern:
        return get_pattern(
            self.pattern, self.num_channels, self.num_codebooks, self.pattern_delays, self.pattern_substeps
        )

    # ------------------------------------------------------------------ frame arithmetic (the one place)
    @property
    def codec_frame_rate(self) -> float:
        """True codec frames per second: sample_rate / hop_length (86.1328 for DAC 44.1 kHz)."""
        return self.sample_rate / self.hop_length

    @property
    def original_codec_frame_rate(self) -> int:
        """The original implementation's integer frame rate (86 for 44.1 kHz / 512)."""
        return int(self.sample_rate / self.hop_length)

    def frame_rate(self, mode: str | None = None) -> Fraction:
        """Codec frames per second as an exact number: sample_rate / hop_length (corrected) or the original's
        integer 86 (original). Offsets in seconds map to codec frames through this one rate."""
        if self.resolve_mode(mode) == "original":
            return Fraction(self.original_codec_frame_rate)
        return Fraction(self.sample_rate, self.hop_length)

    @property
    def max_frames(self) -> int:
        """Codec frames one generate call can produce: the pattern must fit ``max_target_positions``."""
        return self.code_pattern.max_frames(self.max_target_positions)

    @property
    def max_duration(self) -> float:
        """Seconds of video the encoder has positions for."""
        return self.max_source_positions / self.video_fps

    @property
    def window_video_frames(self) -> int:
        """Video frames one generate window takes: what BOTH sides hold — the encoder's positions, and no more
        than the decoder has positions for the codec frames of (a model trained with a short decoder window)."""
        frames = self.max_source_positions
        while frames > 1 and self.frames_for_video_frames(frames, "corrected") > self.max_frames:
            frames -= 1
        return frames

    def frames_for_video_frames(self, num_video_frames: int, mode: str | None = None) -> int:
        """Codec frames to generate for ``num_video_frames`` CLIP frames.

        corrected: whole codec frames inside the video duration, exact rational arithmetic (20 -> 430).
        original: ``int(T / fps · 86)`` with the original's float expression (20 -> 430).
        """
        _require_count(num_video_frames, "num_video_frames")
        if self.resolve_mode(mode) == "original":
            return int(num_video_frames / self.video_fps * self.original_codec_frame_rate)
        frames = Fraction(num_video_frames) * self.sample_rate / (Fraction(self.video_fps) * self.hop_length)
        return math.floor(frames)

    def frames_for_duration(self, seconds: float, mode: str | None = None) -> int:
        """Codec frames to generate for ``seconds`` of audio (same rules as :meth:`frames_for_video_frames`)."""
        if not seconds > 0:
            raise ValueError(f"duration must be positive, got {seconds!r} s")
        if self.resolve_mode(mode) == "original":
            return int(seconds * self.original_codec_frame_rate)
        return math.floor(Fraction(seconds) * self.sample_rate / self.hop_length)

    def output_frames_for_video_frames(self, num_video_frames: int, mode: str | None = None) -> int:
        """Frames `generate` returns: as generated (corrected), or padded to cover the clip (original: 431)."""
        if self.resolve_mode(mode) == "original":
            samples = int(num_video_frames / self.video_fps * self.sample_rate)
            return math.ceil(samples / self.hop_length)
        return self.frames_for_video_frames(num_video_frames, mode)

    def pattern_steps(self, num_frames: int) -> int:
        """Decoder steps (= positions) the code pattern needs for ``num_frames`` frames."""
        return self.code_pattern.num_steps(num_frames)

    def samples_for_frames(self, num_frames: int) -> int:
        """Audio samples the codec decodes from ``num_frames`` frames."""
        return num_frames * self.hop_length

    def seconds_for_frames(self, num_frames: int) -> float:
        return num_frames * self.hop_length / self.sample_rate

    def resolve_mode(self, mode: str | None = None) -> str:
        """``mode`` checked (one of :data:`~visage_hf.models.modes.MODES`), or this config's ``mode`` when None."""
        return check_mode(self.mode if mode is None else mode)

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls, **overrides) -> VisageConfig:
        """A few-hundred-thousand-parameter config for tests and demos (full 4×9 stream layout)."""
        settings = {
            "d_model": 32,
            "encoder_layers": 1,
            "decoder_layers": 2,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64,
            "max_source_positions": 8,
            "max_target_positions": 87,
        }
        settings.update(overrides)
        return cls(**settings)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_count(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


__all__ = ["DEFAULT_GENERATION_SETTINGS", "GUIDANCE_MODES", "MODES", "VisageConfig"]
