"""The package layout: every 0.1.0 import path still works, and imports run downward without circles.

`OLD_PUBLIC_NAMES` is the ``__all__`` of every module of visage-hf 0.1.0 (main at f5d0101, when all modules sat
flat in ``visage_hf/``), recorded before the move: a public name may move, never disappear.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "visage_hf"

OLD_PUBLIC_NAMES: dict[str, list[str]] = {
    "app_logic": [
        "DEFAULT_SETTINGS",
        "DemoError",
        "DemoLimits",
        "DemoResult",
        "GenerationRequest",
        "MODEL_ENV",
        "ModelLoader",
        "check_request",
        "example_video",
        "load_pipeline",
        "prune_outputs",
        "run_generation",
    ],
    "audio": [
        "atomic_output_path",
        "check_foa",
        "check_mono",
        "check_sample_rate",
        "read_audio",
        "resample",
        "write_audio",
    ],
    "baselines": [
        "CONVENTIONS",
        "SpatializeReport",
        "ambi_enc",
        "ambi_enc_from_indices",
        "spatialize_outputs",
    ],
    "batch_generation": [
        "BatchReport",
        "BatchSettings",
        "CONFIG_FILE",
        "FAILED_FILE",
        "PerClipSamplingLogitsProcessor",
        "clip_generator",
        "clip_seed",
        "open_source",
        "read_clip_list",
        "run_batch_generation",
    ],
    "batch_inputs": [
        "ClipConditions",
        "ClipSource",
        "FeatureFiles",
        "FeatureTable",
        "VideoFolder",
        "VideoRequest",
        "VideoTable",
        "open_source",
        "read_clip_list",
    ],
    "binaural": [
        "BinauralOutput",
        "BinauralRenderer",
        "HRIRSet",
        "binaural_filters",
        "decoder_matrix",
        "default_hrirs",
        "load_sofa",
        "loudspeaker_layout",
        "render_binaural",
        "spherical_head_hrirs",
    ],
    "checkpointing": [
        "COMPLETE_MARKER",
        "TRAINER_STATE",
        "TrainerState",
        "check_checkpoint_config",
        "complete_checkpoints",
        "discard_folder",
        "find_latest_checkpoint",
        "load_checkpoint",
        "remove_partial_checkpoints",
        "resolve_resume_checkpoint",
        "save_checkpoint",
        "write_json_atomic",
    ],
    "cli": ["COMMANDS", "CommandError", "build_parser", "main"],
    "clip_files": [
        "AUDIO_EXTENSIONS",
        "VIDEO_EXTENSIONS",
        "audio_files",
        "clip_id_from_name",
        "load_directions",
        "match_files",
    ],
    "codec": [
        "DAC_44KHZ_REPO",
        "DAC_44KHZ_REVISION",
        "DAC_SAMPLE_RATE",
        "FOACodec",
        "convert_descript_weights",
        "descript_config",
    ],
    "configuration_visage": ["DEFAULT_GENERATION_SETTINGS", "GUIDANCE_MODES", "MODES", "VisageConfig"],
    "convert_original": [
        "ORIGINAL_GENERATION_SETTINGS",
        "build_converted_model",
        "choose_checkpoint_folder",
        "convert_config",
        "convert_generation_settings",
        "convert_original",
        "convert_state_dict",
        "find_checkpoint_folders",
        "find_original_checkpoint",
        "is_original_checkpoint",
        "is_original_config",
        "load_original_checkpoint",
        "load_original_state_dict",
        "maybe_load_original_checkpoint",
        "resolve_and_load",
    ],
    "data": [
        "AZIMUTH_INDEX",
        "CLIP_FEATURES",
        "CLIP_ID",
        "CODES",
        "DIRECTION",
        "ELEVATION_INDEX",
        "ENERGY_MAP",
        "EpochBatchSampler",
        "FeatureDataset",
        "ORIGINAL_ROTATION_YAW",
        "SampleKey",
        "StreamingFeatureDataset",
        "VisageCollator",
        "check_feature_columns",
        "feature_schema",
        "load_feature_dataset",
        "rotated_codes_column",
        "rotation_yaws_in",
    ],
    "directions": [
        "NUM_AZIMUTH_INDICES",
        "NUM_ELEVATION_INDICES",
        "angular_distance",
        "augment_azimuth_index",
        "check_elevation",
        "direction_to_indices",
        "direction_to_model_vector",
        "direction_to_vector",
        "indices_to_direction",
        "model_direction_vector",
        "model_vector_to_direction",
        "vector_to_direction",
        "wrap_azimuth",
    ],
    "encoder_decoder": [
        "PackedLinear",
        "VisageAttention",
        "VisageDecoder",
        "VisageDecoderLayer",
        "VisageEncoder",
        "VisageEncoderLayer",
        "VisageModel",
    ],
    "equirect": [
        "direction_to_yaw_pitch",
        "equirect_directions",
        "equirect_to_fov",
        "fov_crop",
        "fov_sampling_grid",
        "yaw_pitch_to_direction",
    ],
    "evaluate": [
        "EvaluationResult",
        "METRIC_CHOICES",
        "PER_CLIP_COLUMNS",
        "add_evaluate_command",
        "add_evaluate_parser",
        "evaluate_directories",
        "main",
        "run_evaluate",
    ],
    "export": ["ExportedFiles", "OUTPUT_FILES", "export_generation", "viewer_aligned"],
    "features": [
        "DEFAULT_CLIP_REPO",
        "ENERGY_TEMPERATURE",
        "ENERGY_TOP_P",
        "VisageFeatureExtractor",
        "encode_frames",
        "energy_from_scores",
        "low_energy_mask",
        "patch_energy_map",
        "patch_grid_size",
        "patch_novelty_scores",
        "validate_frames",
    ],
    "foa": [
        "PATTERNS",
        "active_intensity",
        "ambix_to_fuma",
        "decode_mono",
        "decode_stereo",
        "direction_from_energy_map",
        "direction_from_intensity",
        "encode",
        "energy_map",
        "equal_area_resample",
        "fuma_to_ambix",
        "grid_sh_matrix",
        "interpolate_directions",
        "n3d_to_sn3d",
        "rotate",
        "rotate_direction",
        "rotation_matrix",
        "sh_matrix",
        "sn3d_to_n3d",
        "spherical_grid",
        "virtual_microphone",
    ],
    "generation": [
        "CodePatternLogitsProcessor",
        "CodeSamplingLogitsProcessor",
        "GuidancePlan",
        "KthValueTopKLogitsWarper",
        "PreallocatedKVLayer",
        "ProgressLogitsProcessor",
        "UNKNOWN_CODE",
        "VisageKVCache",
        "build_code_canvas",
        "check_prefix_codes",
        "frames_to_generate",
        "make_generation_cache",
        "prompt_steps",
        "reject_unsupported_generate_kwargs",
        "repeat_last_frame",
        "resolve_guidance",
        "resolve_sampling",
        "stream_schedule",
    ],
    "hub": ["hub_reachable", "is_network_error"],
    "metrics": [
        "AudioClassifier",
        "AudioEmbedder",
        "PasstClassifier",
        "SpatialScores",
        "VGGish",
        "VGGishConfig",
        "VGGishEmbedder",
        "VIEWS",
        "WINDOWS",
        "auc_judd",
        "camera_mono",
        "clip_kl",
        "clip_semantic_features",
        "correlation_coefficient",
        "dominant_direction_error",
        "fixation_mask",
        "format_extra_table",
        "format_table",
        "frechet_audio_distance",
        "frechet_distance",
        "gaussian_statistics",
        "kl_divergence",
        "metric_maps",
        "prepare_clip",
        "semantic_summary",
        "semantic_views",
        "spatial_scores",
        "spatial_scores_from_maps",
        "summarize_clips",
    ],
    "metrics.embedders": [
        "AudioClassifier",
        "AudioEmbedder",
        "PasstClassifier",
        "VGGISH_WEIGHTS_URL",
        "VGGish",
        "VGGishConfig",
        "VGGishEmbedder",
        "vggish_examples",
        "vggish_log_mel",
        "vggish_mel_matrix",
    ],
    "metrics.semantic": [
        "CHANNEL_VIEWS",
        "KL_EPSILON",
        "VIEWS",
        "camera_mono",
        "clip_kl",
        "clip_semantic_features",
        "frechet_audio_distance",
        "frechet_distance",
        "gaussian_statistics",
        "kl_divergence",
        "semantic_summary",
        "semantic_views",
    ],
    "metrics.spatial": [
        "CLIP_SECONDS",
        "FIXATION_RULE",
        "METRIC_SAMPLE_RATE",
        "SPATIAL_COLUMNS",
        "SpatialScores",
        "WINDOWS",
        "auc_judd",
        "correlation_coefficient",
        "dominant_direction_error",
        "fixation_mask",
        "metric_maps",
        "prepare_clip",
        "spatial_scores",
        "spatial_scores_from_maps",
    ],
    "metrics.table": [
        "EXTRA_COLUMNS",
        "TABLE3_COLUMNS",
        "format_extra_table",
        "format_table",
        "summarize_clips",
    ],
    "modeling_visage": [
        "VisageForFOA",
        "VisageOutput",
        "VisagePreTrainedModel",
        "register_visage_auto_classes",
        "shift_codes_right",
    ],
    "overlay": [
        "FIELD_OF_VIEW",
        "camera_basis",
        "camera_direction_picture",
        "fov_outline",
        "fov_pixel_directions",
        "render_overlay_frames",
        "sample_energy_map",
        "write_preview_video",
    ],
    "pipeline": ["DEFAULT_MODEL_REPO", "VisagePipeline", "VisagePipelineOutput"],
    "plotting": ["plot_energy_map"],
    "sa3d": [
        "BoxInfo",
        "build_sa3d_box",
        "build_spherical_boxes",
        "chunk_offsets",
        "inject_spatial_metadata",
        "parse_sa3d_payload",
        "read_sa3d",
        "read_spherical",
        "walk_boxes",
    ],
    "synthetic": [
        "SyntheticScene",
        "equirect_scene",
        "moving_object_frames",
        "moving_object_video",
        "render_equirect_frames",
    ],
    "synthetic_task": [
        "NUM_VISUAL_CLASSES",
        "spatial_codes",
        "synthetic_examples",
        "w_codes",
        "write_synthetic_dataset",
    ],
    "tiny": ["TINY_RANDOM", "TINY_RANDOM_WARNING", "build_tiny_random_pipeline", "tiny_random_components"],
    "training_args": [
        "ARGUMENT_CLASSES",
        "DataArguments",
        "INIT_CHOICES",
        "ModelArguments",
        "TrainingArguments",
        "check_arguments",
        "config_overrides",
        "load_recipe",
        "parse_arguments",
    ],
    "video": [
        "VideoInfo",
        "audio_track_info",
        "direction_to_yaw_pitch",
        "equirect_to_fov",
        "fov_crop",
        "fov_sampling_grid",
        "probe",
        "read_audio_track",
        "read_frames",
        "write_mp4",
        "write_video",
        "yaw_pitch_to_direction",
    ],
    "video_clip": ["EQUIRECT_SIZE", "VideoClip", "load_video_clip", "probe_clip"],
    "windowing": [
        "Window",
        "WindowPlan",
        "contribution_spans",
        "crossfade_weights",
        "plan_windows",
        "stitch_windows",
    ],
}

# Allowed direction of imports between top-level parts (a part may import itself and anything listed).
LAYERS = {
    "utils": set(),
    "models.modes": set(),  # a leaf every layer may import (see its docstring)
    "directions": set(),
    "models": {"utils", "directions", "video"},  # the feature extractor reads decoded frames
    "audio": {"utils", "directions"},
    "video": {"utils", "directions", "audio"},
    "data": {"utils", "directions", "audio", "video", "models"},
    "metrics": {"utils", "directions", "audio"},
    "pipelines": {"utils", "directions", "audio", "video", "models", "data"},
    "evaluation": {"utils", "directions", "audio", "video", "models", "data", "metrics", "pipelines"},
    "training": {"utils", "directions", "audio", "video", "models", "data", "metrics"},
    "commands": {
        "utils",
        "directions",
        "audio",
        "video",
        "models",
        "data",
        "metrics",
        "pipelines",
        "evaluation",
    },
    "app": {"utils", "directions", "audio", "video", "models", "data", "pipelines"},
}


@pytest.mark.parametrize("module", sorted(OLD_PUBLIC_NAMES))
def test_every_public_name_of_0_1_0_imports_from_its_old_path(module):
    old = importlib.import_module(f"visage_hf.{module}")
    missing = [name for name in OLD_PUBLIC_NAMES[module] if not hasattr(old, name)]
    assert not missing, f"visage_hf.{module} lost {missing}"


def test_top_level_names_import():
    import visage_hf

    for name in visage_hf.__all__:
        assert getattr(visage_hf, name) is not None


def test_old_module_path_is_the_new_module_object():
    import visage_hf.foa
    import visage_hf.modeling_visage

    from visage_hf.audio import foa
    from visage_hf.models import modeling_visage

    assert visage_hf.foa is foa
    assert visage_hf.modeling_visage is modeling_visage
    # diffusers resolves saved pipelines' "visage_hf.modeling_visage" by these namespace lookups
    from transformers import PreTrainedModel

    assert modeling_visage.PreTrainedModel is PreTrainedModel


@pytest.mark.parametrize("module", ["visage_hf.cli", "visage_hf.data.synthetic"])
def test_module_entry_points_run(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout


def test_train_file_entry_point_runs():
    result = subprocess.run(
        [sys.executable, str(PACKAGE / "train.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout


def _part(module: str) -> str:
    if module == "visage_hf.models.modes":
        return "models.modes"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> set[str]:
    """Absolute `visage_hf...` modules that ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.split(".")[:-1]  # also right for __init__ (module "pkg.__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("visage_hf"):
                if (
                    node.module is None or target.count(".") < 2
                ):  # `from . import x` / `from ..audio import io`
                    found.update(f"{target}.{alias.name}" for alias in node.names)
                else:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("visage_hf"))
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _imports(path)
    return {
        name: {t for t in targets if t in graph or t.rsplit(".", 1)[0] in graph}
        for name, targets in graph.items()
    }


ENTRY_POINTS = {"visage_hf", "visage_hf.cli", "visage_hf.train", "visage_hf.utils.moved"}


def test_imports_run_downward():
    wrong = []
    for module, targets in _graph().items():
        if module in ENTRY_POINTS:
            continue
        source = _part(module)
        for target in targets:
            destination = _part(target if target in _graph() else target.rsplit(".", 1)[0])
            if destination not in LAYERS[source] | {source, "", "models.modes"}:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def _cycles(modules: dict[str, set[str]], skip=lambda module: False) -> list[str]:
    """Every import circle found by a depth-first walk of ``modules`` (name -> imported names)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(modules.get(node, ())):
            if nxt == node or skip(nxt):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state and not skip(module):
            visit(module, [module])
    return cycles


def test_no_import_circles():
    graph = _graph()
    modules = {
        name: {t if t in graph else t.rsplit(".", 1)[0] for t in targets} for name, targets in graph.items()
    }
    cycles = _cycles(
        modules,
        skip=lambda name: name in ENTRY_POINTS or (name.count(".") == 1 and name.endswith("__init__")),
    )
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_no_module_over_600_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long


def test_auto_map_modules_import_only_siblings():
    """`register_for_auto_class` copies the config and model modules and their `from .x` siblings only, so the
    whole chain they import must stay inside models/ with one-dot imports."""
    graph = _graph()
    chain, todo = set(), ["visage_hf.models.configuration_visage", "visage_hf.models.modeling_visage"]
    while todo:
        module = todo.pop()
        if module not in chain:
            chain.add(module)
            todo.extend(t for t in graph[module] if t in graph)
    outside = sorted(m for m in chain if not m.startswith("visage_hf.models."))
    assert not outside, f"the auto_map chain reaches outside models/: {outside}"
    for module in chain:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name}: {ast.unparse(node)}"
                # transformers copies `from .x import ...` siblings only: `from . import x` would be left behind.
                assert node.module, f"{path.name}: {ast.unparse(node)} (write `from .x import name`)"


def test_inference_imports_no_training_code():
    """The inference side (pipelines/, and data/schema which it reads features through) never reaches the
    training collator or training/ through its imports."""
    graph = _graph()
    todo = [name for name in graph if name.startswith("visage_hf.pipelines.")] + ["visage_hf.data.schema"]
    reached: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(t if t in graph else t.rsplit(".", 1)[0] for t in graph.get(module, ()))
    training = sorted(
        m for m in reached if m.startswith("visage_hf.training") or m == "visage_hf.data.collator"
    )
    assert not training, f"inference reaches training code: {training}"


def test_dataset_scripts_have_no_import_circles():
    scripts = PACKAGE.parent / "dataset_scripts"
    names = {path.stem for path in scripts.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in scripts.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:
                    found.update([module.split(".")[0]] if module else [alias.name for alias in node.names])
                elif module == "dataset_scripts":
                    found.update(alias.name for alias in node.names)
                elif module.startswith("dataset_scripts."):
                    found.add(module.split(".")[1])
        graph[path.stem] = (found & names) - {path.stem}
    cycles = _cycles(graph)
    assert not cycles, "import circles in dataset_scripts:\n" + "\n".join(cycles)
