"""ViSAGe spatial-audio demo: a Gradio app that runs as a Hugging Face Space and locally (``python app.py``).

UI wiring only; the logic is in :mod:`visage_hf.app.logic` (requests, limits, model, files) and
:mod:`visage_hf.video.overlay` (pictures).

Environment: ``VISAGE_MODEL`` (a Hub id or folder; default the released checkpoint ``jaeyeonkim99/visage``,
converted on load; ``tiny-random`` runs offline and makes noise), ``VISAGE_CONCURRENCY`` (generations at
once, default 1), ``VISAGE_MAX_UPLOAD_MB`` / ``VISAGE_MAX_VIDEO_SECONDS`` / ``VISAGE_MAX_CLIP_SECONDS``
(limits), ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860; a Space sets them).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import atexit
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import gradio as gr

from visage_hf.app import logic as logic
from visage_hf.video.overlay import camera_direction_picture

logger = logging.getLogger("visage_hf.app")

TITLE = "ViSAGe · video to spatial audio"
INTRO = """
# ViSAGe · video → spatial audio
Upload a short, silent video and say where the camera points. The model (ViSAGe, ICLR 2025) writes
**first-order ambisonics**: 4-channel spatial audio (AmbiX) that YouTube and 360° players turn with the viewer.
Listen to the **headphone preview**, watch **where the sound comes from**, and download the AmbiX WAV or a
**YouTube-ready MP4**.
"""
HOW_TO_READ = """
**Reading the results.** The overlay colours each part of the picture by how much sound comes from there
(bright = loud); the panel beside it is the whole sphere around the camera — left on the left, the front in the
middle, behind at both edges — with the camera's view outlined in blue. The headphone preview is turned so the
camera direction is in front of you. Directions: azimuth counter-clockwise from the front toward the left,
elevation up. AmbiX = ACN channel order W, Y, Z, X with SN3D normalisation.
[Model card](https://huggingface.co/jaeyeonkim99/visage) ·
[Paper](https://arxiv.org/abs/2506.12199) ·
[Code](https://github.com/visage-hf/visage-hf): `visage generate VIDEO --azimuth A --elevation E -o out/` for any length.
"""
CSS = """
.limits { font-size: 0.85em; opacity: 0.8; }
#model-status { font-size: 0.9em; }
#camera, #camera * { background: #fff !important; }
"""


def build_demo(
    pipeline=None,
    model: str | None = None,
    limits: logic.DemoLimits | None = None,
    output_root: str | os.PathLike | None = None,
    start_loading: bool = False,
) -> gr.Blocks:
    """The Blocks app. ``pipeline`` (ready) or ``model`` (loaded by ``demo.model_loader``: in the background
    from now on with ``start_loading``, else with the first request) — default ``$VISAGE_MODEL`` or the
    released checkpoint. Endpoints: ``/generate`` and ``/model_status``."""
    from visage_hf.pipelines.pipeline_visage import DEFAULT_MODEL_REPO

    limits = limits or logic.DemoLimits.from_env()
    loader = logic.ModelLoader(model or os.environ.get(logic.MODEL_ENV) or DEFAULT_MODEL_REPO, pipeline)
    if start_loading:
        loader.start()
    output_root = Path(output_root or tempfile.mkdtemp(prefix="visage-app-"))
    example = logic.example_video(output_root / "examples", seconds=min(5.0, limits.max_video_seconds))
    defaults = logic.DEFAULT_SETTINGS

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
            logic.prune_outputs(output_root)
            progress(0.0, desc="starting" if not loader.loading else "waiting for the model to load")
            result = logic.run_generation(
                loader.get(), request, output_root, lambda fraction, message: progress(fraction, desc=message)
            )
        except logic.DemoError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # never a stack trace in the page; the log has it
            logger.exception("generation failed")
            raise gr.Error(
                f"Generation failed: {' '.join(str(error).split()) or type(error).__name__}"
            ) from None
        return (
            result.summary,
            str(result.binaural),
            str(result.overlay_video),
            str(result.foa),
            str(result.spatial_video),
            str(result.energy_map),
            result.seed,
        )

    def model_status_text() -> str:
        return loader.status()

    def refresh_status():
        return loader.status(), gr.Timer(active=loader.loading)

    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(loader.status(), elem_id="model-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                video = gr.Video(label="Video (its sound is ignored)", sources=["upload"], height=250)
                gr.Markdown(limits.describe(), elem_classes="limits")
                with gr.Row():
                    start = gr.Number(label="Start (s)", value=0.0, minimum=0.0, step=0.5)
                    duration = gr.Slider(
                        limits.min_clip_seconds, limits.max_clip_seconds, value=min(5.0, limits.max_clip_seconds),
                        step=0.5, label="Duration (s)",
                    )  # fmt: skip
                with gr.Group():
                    with gr.Row():
                        azimuth = gr.Slider(
                            -180,
                            180,
                            value=0,
                            step=1,
                            label="Camera azimuth",
                            info="degrees, + = to the left",
                        )
                        elevation = gr.Slider(
                            -90, 90, value=0, step=1, label="Camera elevation", info="degrees, + = up"
                        )
                    camera = gr.Image(
                        camera_direction_picture(0.0, 0.0), label="Where the camera looks", show_label=False,
                        interactive=False, buttons=[], container=False, elem_id="camera",
                    )  # fmt: skip
                with gr.Accordion("Sampling settings", open=False):
                    guidance = gr.Dropdown(
                        list(logic.GUIDANCE_MODES), value=defaults["guidance"], label="Guidance",
                        info="joint: picture and direction together (the released model's); dual: separate scales",
                    )  # fmt: skip
                    with gr.Row():
                        guidance_scale = gr.Slider(
                            *logic.GUIDANCE_SCALE_RANGE, value=defaults["guidance_scale"], step=0.1,
                            label="Guidance scale", info="s in l_c + s·(l_c − l_u); 0 = no guidance",
                        )  # fmt: skip
                        direction_guidance_scale = gr.Slider(
                            *logic.GUIDANCE_SCALE_RANGE, value=defaults["direction_guidance_scale"], step=0.1,
                            label="Direction guidance scale", info="dual and direction modes",
                        )  # fmt: skip
                    with gr.Row():
                        top_k = gr.Slider(
                            *logic.TOP_K_RANGE, value=defaults["top_k"], step=1, label="Top-k (0 = off)"
                        )
                        temperature = gr.Slider(
                            *logic.TEMPERATURE_RANGE,
                            value=defaults["temperature"],
                            step=0.05,
                            label="Temperature",
                        )
                    with gr.Row():
                        seed = gr.Number(
                            label="Seed", value=0, precision=0, minimum=0, maximum=logic.MAX_SEED
                        )
                        random_seed = gr.Checkbox(label="Random seed (the one used is shown)", value=True)
                run = gr.Button("Generate spatial audio", variant="primary", elem_id="generate")
                gr.Examples(
                    [[str(example), 30, 0]],
                    inputs=[video, azimuth, elevation],
                    label="Example (synthetic: a red disc crossing the view)",
                )
            with gr.Column(scale=6):
                summary = gr.Markdown("Results appear here.", elem_id="summary")
                binaural = gr.Audio(
                    label="Headphone preview (binaural; camera direction in front)", type="filepath",
                    interactive=False, elem_id="binaural",
                )  # fmt: skip
                overlay = gr.Video(
                    label="Where the sound comes from (energy map over the video; headphone mix)",
                    interactive=False, elem_id="overlay",
                )  # fmt: skip
                with gr.Row():
                    foa_file = gr.File(
                        label="AmbiX WAV · 4 ch W, Y, Z, X (SN3D)", interactive=False, elem_id="foa-file"
                    )
                    mp4_file = gr.File(
                        label="YouTube-ready MP4 (spatial audio)", interactive=False, elem_id="mp4-file"
                    )
                with gr.Accordion("Energy map of the whole clip", open=False):
                    energy = gr.Image(label="Energy map", interactive=False, buttons=["download"])
        gr.Markdown(HOW_TO_READ, elem_classes="limits")

        for slider in (azimuth, elevation):
            slider.change(
                camera_direction_picture, [azimuth, elevation], camera, show_progress="hidden",
                trigger_mode="always_last", concurrency_limit=None, api_visibility="private",
            )  # fmt: skip
        run.click(
            generate,
            [video, start, duration, azimuth, elevation, guidance, guidance_scale, direction_guidance_scale,
             top_k, temperature, seed, random_seed],
            [summary, binaural, overlay, foa_file, mp4_file, energy, seed],
            api_name="generate",
            scroll_to_output=True,
        )  # fmt: skip
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


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = _parse_args(argv)
    demo = build_demo(model=args.model, start_loading=True)
    atexit.register(shutil.rmtree, demo.output_root, ignore_errors=True)
    # A stop request (Spaces, process managers, tests) exits through atexit, so the outputs are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=32).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=demo.limits.max_file_size,
        theme=gr.themes.Soft(primary_hue="orange", secondary_hue="slate"),
        css=CSS,
    )


if __name__ == "__main__":
    main()
