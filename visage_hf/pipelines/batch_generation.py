"""``visage generate-batch``: FOA for a list of clips (e.g. the 11,166-clip YT-Ambigen test split), one WAV per
clip, resumable, with per-clip seeds, sharded over processes / GPUs with accelerate.

::

    visage generate-batch --features features/ --clips test.csv -o generated/            # one process
    accelerate launch -m visage_hf.cli generate-batch --features features/ --clips test.csv -o generated/
    visage generate-batch --videos video/ --directions ambi.json --clips test.csv --equirect -o generated/
    visage generate-batch --videos clips.csv -o generated/    # CSV: video,azimuth,elevation[,start,duration]
    visage evaluate --pred generated/ --gt test_audio/ -o report/

**Inputs** (:mod:`visage_hf.pipelines.batch_inputs`): ``--features`` (a folder of ``<clip id>.npz`` from
``dataset_scripts/extract_features.py``, or a Parquet / ``datasets`` feature split), or ``--videos`` (a folder
of ``<clip id>.mp4`` with ``--directions``, or a CSV ``video,azimuth,elevation[,start,duration]``);
``--directions`` (``ambi.json``, JSON or CSV, as ``visage evaluate`` reads them) gives or overrides directions;
``--clips`` (an ``id`` / ``clip`` / ``file_path`` column, like the original's ``test.csv``) selects clips.

A clip that cannot be generated — listed but absent from the source, no direction, an unreadable or malformed
input, an error while generating — is written to ``failed.csv`` (``clip,stage,error``) and the run goes on.

**Output folder**: ``<clip id>.wav`` per clip, float32, 4-channel AmbiX (W, Y, Z, X; SN3D) at
``--sample-rate`` (default 16000 Hz, the rate of the paper's evaluation and of the original's released test
outputs; ``round(T / 4 · rate)`` samples for ``T`` video frames), each written atomically; ``failed.csv``;
``run_config.json`` (the settings that decide the audio — model, seed, sample rate, sampling and guidance,
mode, dtype, input kind — and, for information, the package version, processes, batch size and device).

**Per-clip seeds.** Clip ``c`` samples from its own ``torch.Generator`` (on the model's device) seeded with
:func:`clip_seed`: the first 8 bytes of ``SHA-256("<seed>/<clip id>")``, big-endian, modulo 2**63. Each clip's
generator draws only that clip's codes (:class:`PerClipSamplingLogitsProcessor`), so a clip's audio does not
depend on the other clips of its batch, on the batch size, on the process that ran it or on resuming: it is
what ``VisageForFOA.generate(..., seed=clip_seed(seed, c))`` gives for that clip alone, and for a video clip
what ``VisagePipeline(video, azimuth, elevation, seed=clip_seed(seed, c))`` gives (videos longer than the
model's window are featurised in one pass rather than window by window: equal up to float rounding).
The one caveat is floating point: a batched forward pass must give each row the same logits as a forward pass
of that row alone. That holds on CPU (tested); GPU kernels may pick other reduction orders for other batch
sizes, which can flip a draw with a vanishing probability; ``--batch-size 1`` rules it out. Same seed, same
device type, same audio.

**Sharding.** Every process lists the clips whose WAV is missing, sorted by clip id, and takes its contiguous
share (``PartialState.split_between_processes``); it writes only its own files. Processes wait for each
other twice: once after listing (so no file written meanwhile changes another process's list) and once at
the end (the main process then merges the failure lists and prints totals). Without ``accelerate launch`` it
is a single process. On a machine without GPUs, several CPU processes need
``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...`` (accelerate 1.15 runs
``--cpu --num_processes N`` as one process).

**Resuming.** Rerunning the same command generates only the clips without a WAV (failed clips are retried).
A folder whose ``run_config.json`` holds other settings is refused unless ``--overwrite`` is given, which
regenerates every listed clip (files of clips no longer listed are left alone).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

from ..models.configuration_visage import DEFAULT_GENERATION_SETTINGS
from ..models.generation import (
    CodeSamplingLogitsProcessor,
    build_code_canvas,
    check_prefix_codes,
    frames_to_generate,
    repeat_last_frame,
    resolve_sampling,
    settings_in_effect,
)
from .batch_inputs import ClipConditions, ClipSource, VideoRequest, open_source, read_clip_list

if TYPE_CHECKING:
    from .pipeline_visage import VisagePipeline
    from .windowing import WindowPlan

__all__ = [
    "CONFIG_FILE",
    "FAILED_FILE",
    "BatchReport",
    "BatchSettings",
    "PerClipSamplingLogitsProcessor",
    "clip_generator",
    "clip_seed",
    "open_source",
    "read_clip_list",
    "run_batch_generation",
]

CONFIG_FILE, FAILED_FILE = "run_config.json", "failed.csv"
PARTS_DIR = ".generate-batch"  # per-process reports, merged by the main process at the end
OUTPUT_SUFFIX = ".wav"
CROSSFADE_SECONDS = 0.05  # the pipeline's default join crossfade


# ============================================================================================== seeds


def clip_seed(seed: int, clip_id: str) -> int:
    """The seed of one clip: ``int.from_bytes(sha256(f"{seed}/{clip_id}")[:8], "big") % 2**63``.

    A pure function of the run's seed and the clip id (stable across Python versions, unlike ``hash``)."""
    digest = hashlib.sha256(f"{int(seed)}/{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def clip_generator(seed: int, clip_id: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`clip_seed`."""
    return torch.Generator(device=device).manual_seed(clip_seed(seed, clip_id))


class PerClipSamplingLogitsProcessor(LogitsProcessor):
    """Samples every clip's code streams with that clip's own generator (``VisageForFOA.generate`` rows are
    ``clip · streams + stream``).

    Each clip gets a :class:`~visage_hf.models.generation.CodeSamplingLogitsProcessor` over its own canvas, so its draws
    are exactly those of a batch of one sampled with that generator. Pass it with ``do_sample=False``: greedy
    decoding then keeps the drawn codes (the model's own sampler does the same).

    Args:
        canvases: one ``(1, steps, streams)`` code canvas per clip (``build_code_canvas``).
        generators: one generator per clip.
        codebook_size, temperature, top_k, top_p, per_stream_draws: see ``CodeSamplingLogitsProcessor``.
    """

    def __init__(
        self,
        canvases: Sequence[torch.Tensor],
        generators: Sequence[torch.Generator],
        codebook_size: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        per_stream_draws: bool = False,
    ):
        if len(canvases) != len(generators):
            raise ValueError(
                f"expected one generator per clip, got {len(generators)} for {len(canvases)} clips"
            )
        self.streams = canvases[0].shape[2]
        self.samplers = [
            CodeSamplingLogitsProcessor(
                canvas, codebook_size, temperature, top_k, top_p, generator, per_stream_draws
            )
            for canvas, generator in zip(canvases, generators)
        ]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.samplers) * self.streams:
            raise ValueError(
                f"expected {len(self.samplers) * self.streams} generate rows (clips × streams), got {scores.shape[0]}"
            )
        sampled = scores.clone()
        for index, sampler in enumerate(self.samplers):
            rows = slice(index * self.streams, (index + 1) * self.streams)
            sampled[rows] = sampler(input_ids[rows], scores[rows])
        return sampled


# ============================================================================================== settings


@dataclass
class BatchSettings:
    """Everything that decides a clip's audio (recorded in ``run_config.json``; None = the model's default)."""

    model: str
    seed: int = 0
    sample_rate: int = 16000
    guidance: str | None = None
    guidance_scale: float | None = None
    direction_guidance_scale: float | None = None
    do_sample: bool | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    mode: str | None = None
    dtype: str = "float32"
    equirect: bool | None = None


@dataclass
class BatchReport:
    """What one run did: clip ids generated / skipped (already there) and failures ``(clip, stage, error)``."""

    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    generated_per_process: list[int] = field(default_factory=list)


# ============================================================================================== generation


class _ClipGenerator:
    """Conditions -> FOA at the output rate, a batch of equal-length clips at a time, each with its own seed."""

    def __init__(self, pipe: VisagePipeline, settings: BatchSettings):
        from ..models.feature_extraction_visage import VisageFeatureExtractor

        self.pipe, self.settings = pipe, settings
        self.model = pipe.foa_model
        config = self.model.config
        self.mode = config._mode(settings.mode)
        defaults = self.model.generation_config
        do_sample = settings.do_sample
        if do_sample is None:
            do_sample = getattr(defaults, "do_sample", None)
        self.do_sample = bool(DEFAULT_GENERATION_SETTINGS["do_sample"] if do_sample is None else do_sample)
        sampling = resolve_sampling(
            defaults, settings.top_k, settings.top_p, settings.temperature, None, None, self.model.device
        )
        self.sampling = {key: sampling[key] for key in ("temperature", "top_k", "top_p")}
        self.guidance = {
            "guidance": settings.guidance,
            "guidance_scale": settings.guidance_scale,
            "direction_guidance_scale": settings.direction_guidance_scale,
        }
        self.extractor = VisageFeatureExtractor(
            pipe.image_encoder,
            pipe.image_processor,
            mode="original" if self.mode == "original" else "default",
        )

    # ------------------------------------------------------------------ inputs
    def conditions(self, item: ClipConditions | VideoRequest) -> ClipConditions:
        """Checked conditions with ``num_samples`` set; a video is read and featurised (whole clip at once)."""
        if isinstance(item, VideoRequest):
            return self._video_conditions(item)
        config = self.model.config
        frames = item.clip_features.shape[0] if item.clip_features.ndim == 2 else 0
        expected = {
            "clip_features": (frames, config.clip_dim),
            "energy_map": (frames, config.energy_map_dim),
            "direction": (config.direction_dim,),
        }
        for name, shape in expected.items():
            value = getattr(item, name)
            if frames < 1 or value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"{name}: expected finite values of shape {shape}, got {value.shape}")
        if item.num_samples is None:
            item.num_samples = round(frames / config.video_fps * self.pipe.sample_rate)
        return item

    @torch.no_grad()
    def _video_conditions(self, request: VideoRequest) -> ClipConditions:
        frames, plan, _ = self.pipe.load_frames(
            request.video, request.azimuth, request.elevation, request.start, request.duration,
            equirect=self.settings.equirect, mode=self.mode,
        )  # fmt: skip
        num_samples = plan.num_samples
        inputs = self.extractor(frames, request.azimuth, request.elevation)
        return ClipConditions(
            request.clip_id,
            inputs["clip_features"][0].float().cpu().numpy(),
            inputs["energy_map"][0].float().cpu().numpy(),
            inputs["direction"][0].float().cpu().numpy(),
            num_samples,
        )

    def plan(self, num_samples: int) -> WindowPlan:
        """The pipeline's window plan for a clip of ``num_samples`` (so a clip generates as ``pipe(...)`` does)."""
        return self.pipe.plan_windows(num_samples, mode=self.mode)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(self, clips: Sequence[ClipConditions]) -> list[np.ndarray]:
        """FOA float32 ``(4, samples)`` at the output rate for each clip (all of one length)."""
        plan = self.plan(clips[0].num_samples)
        if any(clip.num_samples != clips[0].num_samples for clip in clips):
            raise ValueError("a batch must hold clips of one length")
        codes = self._codes(clips, plan)
        crossfade = round(CROSSFADE_SECONDS * self.pipe.sample_rate)
        audio = []
        for index in range(len(clips)):  # one clip per decode: a clip's audio never depends on its batch
            foa = self.pipe.decode(codes[index : index + 1], plan, crossfade, progress=False)[0]
            audio.append(self._resample(foa))
        return audio

    def _codes(self, clips: Sequence[ClipConditions], plan: WindowPlan) -> torch.LongTensor:
        """The pipeline's window loop (``VisagePipeline.generate_codes``) over a batch, one generator per clip."""
        model, config, device = self.model, self.model.config, self.model.device
        features, energy, direction = (
            torch.from_numpy(np.stack([getattr(clip, name) for clip in clips])).to(device)
            for name in ("clip_features", "energy_map", "direction")
        )
        generators = [clip_generator(self.settings.seed, clip.clip_id, device) for clip in clips]
        shape = (len(clips), config.num_channels, config.num_codebooks, plan.num_code_frames)
        codes = torch.zeros(shape, dtype=torch.long)
        single_original = (
            self.mode == "original"
            and len(plan) == 1
            and plan[0].num_video_frames <= config.max_source_positions
        )
        for window in plan:
            prefix = None
            if window.prefix_frames:
                prefix = codes[..., window.code_start : window.code_start + window.prefix_frames]
            num_frames = None if single_original else window.num_code_frames
            processors = LogitsProcessorList()
            if self.do_sample:
                processors.append(self._sampler(window, num_frames, prefix, generators))
            window_codes = model.generate(
                features[:, window.video_start : window.video_stop],
                energy[:, window.video_start : window.video_stop],
                direction,
                **self.guidance,
                do_sample=False,  # the per-clip sampler draws; greedy keeps its draw
                prefix_codes=None if prefix is None else prefix.to(device),
                num_frames=num_frames,
                mode=self.mode,
                logits_processor=processors,
            )
            if window_codes.shape[-1] < window.num_code_frames:  # original mode's own count fell short
                window_codes = repeat_last_frame(window_codes, window.num_code_frames)
            codes[..., window.code_start : window.code_stop] = window_codes[
                ..., : window.num_code_frames
            ].cpu()
        return codes

    def _sampler(self, window, num_frames, prefix, generators) -> PerClipSamplingLogitsProcessor:
        config = self.model.config
        frames = frames_to_generate(
            config, num_frames, window.num_video_frames, self.mode, 0 if prefix is None else prefix.shape[-1]
        )
        canvases = [
            build_code_canvas(
                config.code_pattern,
                1,
                frames,
                config.code_pad_id,
                None if prefix is None else check_prefix_codes(config, prefix[index : index + 1], 1),
            )
            for index in range(len(generators))
        ]
        return PerClipSamplingLogitsProcessor(
            canvases,
            generators,
            config.codebook_size,
            per_stream_draws=self.mode == "original",
            **self.sampling,
        )

    def _resample(self, foa: np.ndarray) -> np.ndarray:
        from ..audio.io import resample

        return resample(foa, self.pipe.sample_rate, self.settings.sample_rate).astype(np.float32, copy=False)


# ============================================================================================== the run


def _output_path(output_dir: Path, clip_id: str) -> Path:
    relative = Path(clip_id)
    if relative.is_absolute() or ".." in relative.parts or not clip_id:
        raise ValueError(f"clip id {clip_id!r} cannot name a file inside the output folder")
    return output_dir / f"{clip_id}{OUTPUT_SUFFIX}"


def _settings_record(settings: BatchSettings, source: ClipSource) -> dict[str, Any]:
    record = {**asdict(settings), "inputs": source.kind}
    model = Path(settings.model).expanduser()
    if model.exists():  # a local folder: its place, not how it was spelled
        record["model"] = str(model.resolve())
    return record


def _check_run_config(output_dir: Path, record: dict, overwrite: bool) -> None:
    """ValueError when ``output_dir`` holds outputs of other settings (unless ``overwrite``)."""
    path = output_dir / CONFIG_FILE
    if overwrite:
        return
    if not path.is_file():
        stray = next(output_dir.rglob(f"*{OUTPUT_SUFFIX}"), None) if output_dir.is_dir() else None
        if stray is not None:
            raise ValueError(
                f"{output_dir} holds audio ({stray.name}, ...) but no {CONFIG_FILE}: its settings are unknown; "
                "pass --overwrite to regenerate every clip, or use another output folder"
            )
        return
    try:
        data = json.loads(path.read_text())
        saved = data.get("requested", data["settings"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a generate-batch run config ({error}); pass --overwrite") from None
    changed = [
        f"{key}: {saved.get(key)!r} -> {value!r}" for key, value in record.items() if saved.get(key) != value
    ]
    changed += [f"{key}: {saved[key]!r} -> absent" for key in saved if key not in record]
    if changed:
        raise ValueError(
            f"{output_dir} holds outputs of other settings ({'; '.join(changed)}); resume with the same settings, "
            "pass --overwrite to regenerate every clip, or use another output folder"
        )


def _write_json(path: Path, data: dict) -> None:
    from ..audio.io import atomic_output_path

    with atomic_output_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _remove_leftovers(output_dir: Path) -> None:
    """Temporary files of a killed run (``.<stem>.<pid>.<tag>.tmp.wav``) and stale per-process reports."""
    for path in output_dir.rglob(f".*.tmp{OUTPUT_SUFFIX}"):
        path.unlink(missing_ok=True)
    for path in (output_dir / PARTS_DIR).glob("*.json"):
        path.unlink(missing_ok=True)


def _batches(items: Sequence[ClipConditions], batch_size: int):
    """Consecutive groups of at most ``batch_size`` clips of one length (the model takes no padding mask)."""
    pending: dict[int, list[ClipConditions]] = {}
    for item in items:
        group = pending.setdefault(item.num_samples, [])
        group.append(item)
        if len(group) == batch_size:
            yield pending.pop(item.num_samples)
    yield from pending.values()


def run_batch_generation(
    source: ClipSource,
    output_dir: str | os.PathLike,
    load_pipeline: Callable[[torch.device], VisagePipeline] | VisagePipeline,
    settings: BatchSettings,
    *,
    clip_ids: Sequence[str] | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
    state=None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> BatchReport:
    """Generate ``<output_dir>/<clip id>.wav`` for every clip of ``source`` (or of ``clip_ids``), this
    process's share of them (see the module docstring for seeds, sharding and resuming).

    Args:
        source: from :func:`open_source`.
        load_pipeline: a `VisagePipeline`, or a function of the process's device returning one (called after
            the inputs are checked).
        settings: :class:`BatchSettings` (``model`` names the pipeline in ``run_config.json``).
        clip_ids: the clips to generate (default: all of ``source``); ids absent from ``source`` are failures.
        batch_size: clips per ``generate`` call.
        overwrite: regenerate every clip, even over outputs of other settings.
        state: an ``accelerate.PartialState`` (default: a new one).
        progress: a tqdm bar over this process's clips (main process only).
        log: where summary lines go (default: print on the main process).

    Returns:
        :class:`BatchReport`: on the main process, the totals of all processes; elsewhere, its own share.
    """
    from accelerate import PartialState

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    state = PartialState() if state is None else state
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"expected an output folder, got an existing file: {output_dir}")
    for clip in source.clip_ids:
        _output_path(output_dir, clip)
    log = log or (lambda line: print(line) if state.is_main_process else None)

    available = set(source.clip_ids)
    # Without a clip list, clips the source knows but cannot load (no direction, no video) are failures too.
    requested = [*source.clip_ids, *source.problems] if clip_ids is None else list(dict.fromkeys(clip_ids))
    input_failures = [
        (clip, "input", source.problems.get(clip, f"not found in {source.description}"))
        for clip in requested
        if clip not in available
    ]
    wanted = sorted(clip for clip in requested if clip in available)
    if not wanted:
        reasons = "; ".join(f"{clip}: {error}" for clip, _, error in input_failures[:3])
        raise ValueError(f"none of the {len(requested)} requested clips can be generated ({reasons} ...)")
    record = _settings_record(settings, source)
    _check_run_config(output_dir, record, overwrite)
    if state.is_main_process and output_dir.is_dir():
        _remove_leftovers(output_dir)
    done = set() if overwrite else {clip for clip in wanted if _output_path(output_dir, clip).is_file()}
    pending = [clip for clip in wanted if clip not in done]

    with state.split_between_processes(pending) as share:
        shard = list(share)
    pipe = _pipeline(load_pipeline, state.device) if shard else None
    # From here on files appear: every process must have listed the folder before any of them writes.
    state.wait_for_everyone()
    if state.is_main_process and (pipe is not None or not (output_dir / CONFIG_FILE).is_file()):
        from .. import __version__

        info = {
            "visage_hf": __version__,
            "num_processes": state.num_processes,
            "batch_size": batch_size,
            "device": str(state.device if pipe is None else pipe.foa_model.device),
            "torch": torch.__version__,
        }
        # "settings": the values used (None resolved on the loaded model); "requested": what resuming compares.
        used = record if pipe is None else {**record, **_settings_in_effect(pipe.foa_model, settings)}
        _write_json(output_dir / CONFIG_FILE, {"settings": used, "requested": record, "info": info})

    report = BatchReport(skipped=sorted(done))
    if shard:
        _generate_shard(pipe, settings, source, shard, output_dir, batch_size, report, state, progress)
    return _finish(output_dir, report, input_failures, state, log)


def _settings_in_effect(model, settings: BatchSettings) -> dict:
    names = ("guidance", "guidance_scale", "direction_guidance_scale", "do_sample", "top_k", "top_p")
    chosen = {name: getattr(settings, name) for name in (*names, "temperature", "mode")}
    return settings_in_effect(model.config, model.generation_config, **chosen)


def _pipeline(load_pipeline, device) -> VisagePipeline:
    from .pipeline_visage import VisagePipeline

    if isinstance(load_pipeline, VisagePipeline):
        return load_pipeline
    return load_pipeline(device)


def _generate_shard(pipe, settings, source, shard, output_dir, batch_size, report, state, progress) -> None:
    generator = _ClipGenerator(pipe, settings)
    bar = tqdm(
        total=len(shard),
        desc="generate-batch",
        unit="clip",
        disable=not (progress and state.is_main_process),
        file=sys.stderr,
    )

    def write(clips: list[ClipConditions]) -> None:
        try:
            results = list(zip(clips, generator(clips)))
        except Exception as error:
            if len(clips) > 1:  # find the bad clip: redo one by one (same seeds, same audio)
                for clip in clips:
                    write([clip])
                return
            report.failed.append((clips[0].clip_id, "generate", _one_line(error)))
            bar.update(1)
            return
        for clip, audio in results:
            try:
                from ..audio.io import write_audio

                write_audio(_output_path(output_dir, clip.clip_id), audio, settings.sample_rate)
                report.generated.append(clip.clip_id)
            except Exception as error:
                report.failed.append((clip.clip_id, "write", _one_line(error)))
            bar.update(1)

    def loaded():
        for clip_id in shard:
            try:
                yield generator.conditions(source.load(clip_id))
            except Exception as error:
                report.failed.append((clip_id, "input", _one_line(error)))
                bar.update(1)

    try:
        for batch in _batches(loaded(), batch_size):
            write(batch)
    finally:
        bar.close()


def _finish(output_dir: Path, report: BatchReport, input_failures, state, log) -> BatchReport:
    """Each process saves its report; after all are done the main process merges them into ``failed.csv``."""
    part = output_dir / PARTS_DIR / f"process{state.process_index}.json"
    part.parent.mkdir(parents=True, exist_ok=True)
    _write_json(part, {"generated": report.generated, "failed": report.failed})
    state.wait_for_everyone()
    if not state.is_main_process:
        return report
    total = BatchReport(skipped=report.skipped, failed=list(input_failures))
    for index in range(state.num_processes):
        path = output_dir / PARTS_DIR / f"process{index}.json"
        data = json.loads(path.read_text())
        total.generated += data["generated"]
        total.failed += [tuple(row) for row in data["failed"]]
        total.generated_per_process.append(len(data["generated"]))
        path.unlink()
    _remove_empty_folder(output_dir / PARTS_DIR)
    total.failed.sort()
    from ..audio.io import atomic_output_path

    with atomic_output_path(output_dir / FAILED_FILE) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "stage", "error"])
        writer.writerows(total.failed)
    shares = " + ".join(str(count) for count in total.generated_per_process)
    log(
        f"generated {len(total.generated)} clip(s) on {state.num_processes} process(es) ({shares}), "
        f"{len(total.skipped)} already done, {len(total.failed)} failed (see {output_dir / FAILED_FILE})"
    )
    if total.failed:
        shown = ", ".join(f"{clip} ({stage}: {error})" for clip, stage, error in total.failed[:3])
        log(f"failed: {shown}{' ...' if len(total.failed) > 3 else ''}")
    return total


def _remove_empty_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: something else lives there; leave it
        folder.rmdir()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
