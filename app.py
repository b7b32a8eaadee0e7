"""ViSAGe spatial-audio demo: a Gradio app that runs as a Hugging Face Space and locally (``python app.py``).

UI wiring only; the logic is in :mod:`visage_hf.app.logic` (requests, limits, model, files) and
:mod:`visage_hf.video.overlay` (pictures).

Environment: ``VISAGE_MODEL`` (a Hub id or folder; default the released checkpoint ``jaeyeonkim99/visage``,
converted on load; ``tiny-random`` runs offline and makes noise), ``VISAGE_CONCURRENCY`` (generations at
once, default 1), ``VISAGE_QUEUE_SIZE`` (requests that may wait, default 32), ``VISAGE_MAX_UPLOAD_MB`` / ``VISAGE_MAX_VIDEO_SECONDS`` / ``VISAGE_MAX_CLIP_SECONDS``
(limits), ``VISAGE_KEEP_SECONDS`` (how long results and uploads stay on disk, default 3600), ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860; a Space sets them).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import atexit
import ctypes
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import gradio as gr
import soundfile as sf

from visage_hf.app import logic as logic
from visage_hf.app import player as player
from visage_hf.app.cache import CacheSweeper
from visage_hf.video.overlay import camera_direction_picture

logger = logging.getLogger("visage_hf.app")

TITLE = "ViSAGe · video to spatial audio"
INTRO = """
# ViSAGe · video → spatial audio
Upload a short, silent video and say where the camera points. The model (ViSAGe, ICLR 2025) writes
**first-order ambisonics**: 4-channel spatial audio (AmbiX) that YouTube and 360° players turn with the viewer.
**Look around** in it with headphones (drag on the picture: the sound field stays put while your head turns),
watch **where the sound comes from**, and download the AmbiX WAV or a **YouTube-ready MP4**.
"""
HOW_TO_READ = """
**Reading the results.** The overlay colours each part of the picture by how much sound comes from there
(bright = loud); the panel beside it is the whole sphere around the camera — left on the left, the front in the
middle, behind at both edges — with the camera's view outlined in blue. The look-around player renders the FOA to your headphones in
the browser (the same HRIR filters as the headphone preview file); with "follow the camera" on you face the
camera direction, and dragging on its picture or the sliders turns your head (the orange cross and compass
needle show where you face, blue where the camera looks). Directions: azimuth counter-clockwise from the front toward the left,
elevation up. AmbiX = ACN channel order W, Y, Z, X with SN3D normalisation.
[Model card](https://huggingface.co/jaeyeonkim99/visage) ·
[Paper](https://arxiv.org/abs/2506.12199) ·
[Code](https://github.com/visage-hf/visage-hf): `visage generate VIDEO --azimuth A --elevation E -o out/` for any length,
or `--camera-path path.csv` for a camera that pans (keyframes `time,azimuth,elevation`; the released weights saw one
direction per 5-s clip, so smooth paths work best). The MP4 to download is a 360° video: the clip painted on the
sphere where the camera looked, with the spatial audio YouTube turns with the viewer.
"""
LISTEN_INTRO = """
Already have first-order ambisonics — a recording, or the `foa_ambix.wav` / `spatial.mp4` that `visage generate`
wrote? Upload it to see where its sound comes from over time and to **look around** in it with headphones.
No model is involved.
"""
CSS = """
.limits { font-size: 0.85em; opacity: 0.8; }
#model-status { font-size: 0.9em; }
#camera, #camera * { background: #fff !important; }
"""


GENERATE_INPUTS = (
    "video", "start", "duration", "azimuth", "elevation", "guidance", "guidance_scale",
    "direction_guidance_scale", "top_k", "temperature", "seed", "random_seed",
)  # fmt: skip
GENERATE_OUTPUTS = ("summary", "binaural", "overlay", "foa_file", "mp4_file", "energy", "seed", "player_data")
# Hands a finished result to the page's look-around player (visage_hf/app/assets/lookaround.js).
LOAD_PLAYER_JS = "(foa, video, config) => {{ window.visageLookAround.load('{name}', foa, video, config); }}"


def _one_line_failure(error: Exception, what: str) -> gr.Error:
    """A Gradio error for the page: the reason for a refused input, else ``"<what> failed: <one line>"``
    (the log has the trace)."""
    if isinstance(error, logic.DemoError):
        return gr.Error(str(error), print_exception=False)
    return gr.Error(f"{what} failed: {' '.join(str(error).split()) or type(error).__name__}")


def _generation_handler(loader: logic.ModelLoader, limits: logic.DemoLimits, output_root: Path):
    """The ``/generate`` endpoint: check the request, generate, and return what GENERATE_OUTPUTS lists."""

    def generate(
        video, start, duration, azimuth, elevation, guidance, guidance_scale, direction_guidance_scale,
        top_k, temperature, seed, random_seed, progress=gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's API)
    ):  # fmt: skip
        try:
            request, notes = logic.check_request(
                video, start, duration, azimuth, elevation, guidance, guidance_scale, direction_guidance_scale,
                top_k, temperature, seed, random_seed, limits,
            )  # fmt: skip
            for note in notes:
                gr.Warning(note)
            logic.prune_outputs(output_root, limits.keep_seconds)
            progress(0.0, desc="starting" if not loader.loading else "waiting for the model to load")
            result = logic.run_generation(
                loader.get(), request, output_root, lambda fraction, message: progress(fraction, desc=message)
            )
            for note in result.notes:
                gr.Warning(note)
            config = player.player_config(
                sf.info(str(result.foa)).samplerate, request.azimuth, request.elevation,
                player.sphere_start_of_overlay(result.overlay_video), title="generated",
            )  # fmt: skip
        except Exception as error:  # never a stack trace in the page; the log has it
            if not isinstance(error, logic.DemoError):
                logger.exception("generation failed")
            raise _one_line_failure(error, "Generation") from None
        files = (result.binaural, result.overlay_video, result.foa, result.spatial_video, result.energy_map)
        return (result.summary, *map(str, files), result.seed, config)

    return generate


def _listening_handler(limits: logic.DemoLimits, output_root: Path):
    """The ``/listen`` endpoint: any first-order ambisonics file -> summary, energy maps, the player's input."""

    def listen(upload, fuma):
        try:
            logic.prune_outputs(output_root, limits.keep_seconds)
            result = player.prepare_listening(upload, bool(fuma), output_root, limits)
        except Exception as error:
            if not isinstance(error, logic.DemoError):
                logger.exception("reading an ambisonics file failed")
            raise _one_line_failure(error, "Reading the file") from None
        return (
            result.summary,
            str(result.energy_map),
            str(result.foa),
            str(result.energy_video),
            result.config,
        )

    return listen


def _generation_settings(limits: logic.DemoLimits, example: Path) -> dict[str, gr.components.Component]:
    """The left column of the generate tab: video, clip, camera direction and sampling settings."""
    defaults = logic.DEFAULT_SETTINGS
    ui: dict[str, gr.components.Component] = {}
    ui["video"] = gr.Video(label="Video (its sound is ignored)", sources=["upload"], height=250)
    gr.Markdown(limits.describe(), elem_classes="limits")
    with gr.Row():
        ui["start"] = gr.Number(label="Start (s)", value=0.0, minimum=0.0, step=0.5)
        ui["duration"] = gr.Slider(
            limits.min_clip_seconds, limits.max_clip_seconds, value=min(5.0, limits.max_clip_seconds),
            step=0.5, label="Duration (s)",
        )  # fmt: skip
    with gr.Group():
        with gr.Row():
            ui["azimuth"] = gr.Slider(
                -180, 180, value=0, step=1, label="Camera azimuth", info="degrees, + = to the left"
            )
            ui["elevation"] = gr.Slider(
                -90, 90, value=0, step=1, label="Camera elevation", info="degrees, + = up"
            )
        ui["camera"] = gr.Image(
            camera_direction_picture(0.0, 0.0), label="Where the camera looks", show_label=False,
            interactive=False, buttons=[], container=False, elem_id="camera",
        )  # fmt: skip
    with gr.Accordion("Sampling settings", open=False):
        ui["guidance"] = gr.Dropdown(
            list(logic.GUIDANCE_MODES), value=defaults["guidance"], label="Guidance",
            info="joint: picture and direction together (the released model's); dual: separate scales",
        )  # fmt: skip
        with gr.Row():
            ui["guidance_scale"] = gr.Slider(
                *logic.GUIDANCE_SCALE_RANGE, value=defaults["guidance_scale"], step=0.1,
                label="Guidance scale", info="s in l_c + s·(l_c − l_u); 0 = no guidance",
            )  # fmt: skip
            ui["direction_guidance_scale"] = gr.Slider(
                *logic.GUIDANCE_SCALE_RANGE, value=defaults["direction_guidance_scale"], step=0.1,
                label="Direction guidance scale", info="dual and direction modes",
            )  # fmt: skip
        with gr.Row():
            ui["top_k"] = gr.Slider(
                *logic.TOP_K_RANGE, value=defaults["top_k"], step=1, label="Top-k (0 = off)"
            )
            ui["temperature"] = gr.Slider(
                *logic.TEMPERATURE_RANGE, value=defaults["temperature"], step=0.05, label="Temperature"
            )
        with gr.Row():
            ui["seed"] = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=logic.MAX_SEED)
            ui["random_seed"] = gr.Checkbox(label="Random seed (the one used is shown)", value=True)
    ui["run"] = gr.Button("Generate spatial audio", variant="primary", elem_id="generate")
    gr.Examples(
        [[str(example), 30, 0]],
        inputs=[ui["video"], ui["azimuth"], ui["elevation"]],
        label="Example (synthetic: a red disc crossing the view)",
    )
    return ui


def _generation_results() -> dict[str, gr.components.Component]:
    """The right column of the generate tab: summary, look-around player, fixed previews and downloads."""
    ui: dict[str, gr.components.Component] = {}
    ui["summary"] = gr.Markdown("Results appear here.", elem_id="summary")
    gr.HTML(player.player_markup("gen"), label="Look around", elem_id="player-gen")
    ui["binaural"] = gr.Audio(
        label="Headphone preview (binaural; camera direction in front)", type="filepath",
        interactive=False, elem_id="binaural",
    )  # fmt: skip
    ui["overlay"] = gr.Video(
        label="Where the sound comes from (energy map over the video; headphone mix)",
        interactive=False, elem_id="overlay",
    )  # fmt: skip
    with gr.Row():
        ui["foa_file"] = gr.File(
            label="AmbiX WAV · 4 ch W, Y, Z, X (SN3D)", interactive=False, elem_id="foa-file"
        )
        ui["mp4_file"] = gr.File(
            label="YouTube-ready 360° MP4 (spatial audio turns with the viewer)",
            interactive=False,
            elem_id="mp4-file",
        )
    with gr.Accordion("Energy map of the whole clip", open=False):
        ui["energy"] = gr.Image(label="Energy map", interactive=False, buttons=["download"])
    ui["player_data"] = gr.JSON(visible="hidden", elem_id="player-data-gen")
    return ui


def _generate_tab(loader, limits, output_root: Path, example: Path) -> None:
    """Tab 1: video + camera direction -> FOA, previews, downloads and the look-around player."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            ui = _generation_settings(limits, example)
        with gr.Column(scale=6):
            ui |= _generation_results()
    for slider in (ui["azimuth"], ui["elevation"]):
        slider.change(
            camera_direction_picture, [ui["azimuth"], ui["elevation"]], ui["camera"], show_progress="hidden",
            trigger_mode="always_last", concurrency_limit=None, api_visibility="private",
        )  # fmt: skip
    ui["run"].click(
        _generation_handler(loader, limits, output_root),
        [ui[name] for name in GENERATE_INPUTS],
        [ui[name] for name in GENERATE_OUTPUTS],
        api_name="generate",
        scroll_to_output=True,
    ).success(
        None, [ui["foa_file"], ui["overlay"], ui["player_data"]], None, js=LOAD_PLAYER_JS.format(name="gen")
    )


def _listen_tab(limits: logic.DemoLimits, output_root: Path) -> None:
    """Tab 2: any first-order ambisonics file -> energy map over time and the look-around player."""
    gr.Markdown(LISTEN_INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            upload = gr.File(
                label="4-channel WAV / FLAC, or MP4 / MOV with spatial audio (SA3D)",
                file_types=[".wav", ".flac", ".mp4", ".mov"], type="filepath", elem_id="ambix-upload",
            )  # fmt: skip
            fuma = gr.Checkbox(
                label="FuMa channel order (W, X, Y, Z; W at −3 dB)", value=False, elem_id="fuma"
            )
            listen = gr.Button("Listen", variant="primary", elem_id="listen")
            summary = gr.Markdown("", elem_id="listen-summary")
            energy = gr.Image(label="Energy map (whole file)", interactive=False, buttons=["download"])
        with gr.Column(scale=6):
            gr.HTML(player.player_markup("file"), label="Look around", elem_id="player-file")
            played = gr.File(label="As played: AmbiX WAV", interactive=False, elem_id="listen-foa")
            movie = gr.Video(visible="hidden", elem_id="listen-movie")
            data = gr.JSON(visible="hidden", elem_id="player-data-file")
    listen.click(
        _listening_handler(limits, output_root), [upload, fuma], [summary, energy, played, movie, data],
        api_name="listen",
    ).success(None, [played, movie, data], None, js=LOAD_PLAYER_JS.format(name="file"))  # fmt: skip


def build_demo(
    pipeline=None,
    model: str | None = None,
    limits: logic.DemoLimits | None = None,
    output_root: str | os.PathLike | None = None,
    start_loading: bool = False,
) -> gr.Blocks:
    """The Blocks app. ``pipeline`` (ready) or ``model`` (loaded by ``demo.model_loader``: in the background
    from now on with ``start_loading``, else with the first request) — default ``$VISAGE_MODEL`` or the
    released checkpoint. Endpoints: ``/generate``, ``/listen`` and ``/model_status``. Launch it with
    ``head=player.player_head()`` (as :func:`main` does) for the look-around player."""
    from visage_hf.pipelines.pipeline_visage import DEFAULT_MODEL_REPO

    limits = limits or logic.DemoLimits.from_env()
    loader = logic.ModelLoader(model or os.environ.get(logic.MODEL_ENV) or DEFAULT_MODEL_REPO, pipeline)
    if start_loading:
        loader.start()
    output_root = Path(output_root or tempfile.mkdtemp(prefix="visage-app-"))
    example = logic.example_video(output_root / "examples", seconds=min(5.0, limits.max_video_seconds))

    def model_status_text() -> str:
        return loader.status()

    def refresh_status():
        return loader.status(), gr.Timer(active=loader.loading)

    # delete_cache=None: Gradio's own cleanup task dies at its first race with a request (visage_hf/app/cache.py);
    # main() runs ours on the same schedule.
    with gr.Blocks(title=TITLE, delete_cache=None) as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(loader.status(), elem_id="model-status")
        with gr.Tabs():
            with gr.Tab("Generate from a video", id="generate-tab"):
                _generate_tab(loader, limits, output_root, example)
            with gr.Tab("Listen to any AmbiX file", id="listen-tab", elem_id="listen-tab"):
                _listen_tab(limits, output_root)
        gr.Markdown(HOW_TO_READ, elem_classes="limits")
        # The status line follows a background load until it is done.
        timer = gr.Timer(2.0, active=loader.loading)
        timer.tick(refresh_status, None, [status, timer], concurrency_limit=None, api_visibility="private")
        demo.load(refresh_status, None, [status, timer], api_visibility="private")
        gr.api(model_status_text, api_name="model_status", concurrency_limit=None)
    demo.model_loader = loader
    demo.limits = limits
    demo.output_root = output_root
    return demo


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="ViSAGe spatial-audio demo (Gradio).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--model", default=None, help=f"Hub id, folder or tiny-random (default ${logic.MODEL_ENV})"
    )
    parser.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("VISAGE_CONCURRENCY", "1")),
        help="generations that run at once (default 1; more queue)",
    )  # fmt: skip
    return parser.parse_args(argv)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """What ``MALLOC_ARENA_MAX=2`` does, for a server started without it (glibc only).

    glibc gives threads that allocate at the same time their own heap arenas (up to 8 per core), and memory freed
    in one arena is not handed to another; Gradio runs requests on a pool of threads, so the server's RSS crept
    up by ~0.4 MB a request after warm-up, and stayed flat with two arenas (benchmarks/space_load.py,
    docs/reliability.md)."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX: applies to arenas made from now on
    except (OSError, AttributeError):  # musl or another C library: nothing to tune
        return


def _stop(demo: gr.Blocks) -> None:
    """A stop request (Spaces, process managers, tests): close the server, so that launch() returns and main()
    deletes the files Gradio cached (uploads and served results), and exit through atexit, which removes our
    outputs."""
    if demo.is_running:
        demo.close()  # launch() returns, then main()
    else:
        sys.exit(0)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = _parse_args(argv)
    _limit_malloc_arenas()  # before the model loads and Gradio's threads start
    demo = build_demo(model=args.model, start_loading=True)
    atexit.register(shutil.rmtree, demo.output_root, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *_: _stop(demo))
    queue_size = int(os.environ.get("VISAGE_QUEUE_SIZE", "32"))  # waiting requests; more are told it is full
    sweeper = CacheSweeper(demo, *demo.limits.delete_cache).start()
    try:
        demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=queue_size).launch(
            server_name=args.host,
            server_port=args.port,
            max_file_size=demo.limits.max_file_size,
            theme=gr.themes.Soft(primary_hue="orange", secondary_hue="slate"),
            css=CSS,
            head=player.player_head(),
        )
    finally:
        sweeper.stop()


if __name__ == "__main__":
    main()
