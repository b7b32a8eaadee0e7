"""Original ViSAGe checkpoints -> VisageForFOA: key/config mapping, checkpoint discovery, and parity with
outputs computed by the ORIGINAL implementation (tests/fixtures/original_tiny, see its README)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from unittest import mock

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub.errors import RemoteEntryNotFoundError
from safetensors.torch import load_file

from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.convert_original import (
    choose_checkpoint_folder,
    convert_config,
    convert_original,
    convert_state_dict,
    find_checkpoint_folders,
    is_original_checkpoint,
    load_original_checkpoint,
    maybe_load_original_checkpoint,
)
from visage_hf.models.generation import GuidancePlan
from visage_hf.models.modeling_visage import VisageForFOA

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "original_tiny"
FOA, MONO, FOA_T20 = FIXTURES / "foa", FIXTURES / "mono", FIXTURES / "foa_t20"
PAD = 16  # dac_pad_token_id of the fixture models

# `cfg/config.json` of the original repository (the overrides the released model was trained with).
RELEASED_CONFIG = {
    "classifier_free_guidance": True,
    "cfg_dropout_prob": 0.1,
    "cfg_guidance_scale": 2.5,
    "cfg_spatial_guidance_scale": 2.5,
    "d_clip": 512,
    "num_rvq": 9,
    "dac_vocab_size": 1024,
    "dac_pad_token_id": 1024,
    "max_source_length": 20,
    "max_target_length": 861,
    "dac_sample_rate": 44100,
    "clip_frame_rate": 4,
    "d_model": 1024,
    "encoder_layers": 6,
    "decoder_layers": 12,
    "_attn_implementation": "flash_attention_2",
}


def _expected(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "expected.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _original_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _original_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    # Stored as float16 (the values are float16-exact); a real checkpoint is float32.
    return {key: value.float() for key, value in load_file(folder / "model.safetensors").items()}


def _write_original_bin(folder: Path, source: Path, prefix: str = "") -> Path:
    """An original-layout folder as training writes it: config.json + pytorch_model.bin (+ optimizer state)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "config.json", folder / "config.json")
    state = {prefix + key: value for key, value in _original_state_dict(source).items()}
    torch.save(state, folder / "pytorch_model.bin")
    torch.save({"state": {}}, folder / "optimizer.bin")
    return folder


def _conditions(expected: dict, frames: int | None = None):
    clip = torch.from_numpy(expected["inputs_embeds"]).float()[:, :frames]
    if "energy_map" not in expected:
        return clip, None, None
    energy = torch.from_numpy(expected["energy_map"]).float()[:, :frames]
    return clip, energy, torch.from_numpy(expected["direction"]).float()


def _teacher_forcing_inputs(expected: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's decoder input (labels[:-1], pads restored) behind a BOS placeholder row, and labels."""
    labels = torch.from_numpy(expected["labels"]).long()
    rows = labels[:, :-1].masked_fill(labels[:, :-1] < 0, PAD)
    decoder_input_ids = torch.cat([torch.full_like(rows[:, :1], PAD), rows], dim=1)
    return decoder_input_ids, labels


def _as_original_layout(codes: torch.Tensor) -> np.ndarray:
    """Our (batch, channels, codebooks, frames) -> the original's (batch, frames, 9·c + q)."""
    batch, channels, codebooks, frames = codes.shape
    return codes.reshape(batch, channels * codebooks, frames).transpose(1, 2).numpy()


@pytest.fixture(scope="module")
def foa_model() -> VisageForFOA:
    return load_original_checkpoint(FOA)


@pytest.fixture(scope="module")
def mono_model() -> VisageForFOA:
    return load_original_checkpoint(MONO)


@pytest.fixture(scope="module")
def converted() -> dict[str, VisageForFOA]:
    """Every fixture checkpoint converted with our converter (mode "original"), by folder name."""
    return {folder.name: load_original_checkpoint(folder) for folder in (FOA, MONO, FOA_T20)}


# ------------------------------------------------------------------------------------------ key mapping
def test_state_dict_keys_map_onto_our_model_and_keep_tensors():
    original = _original_state_dict(FOA)
    config = convert_config(_original_config(FOA))
    expected_keys = VisageForFOA(config).state_dict().keys()
    converted = convert_state_dict(original, expected_keys=expected_keys)
    assert converted.keys() == expected_keys
    assert len(original) == len(converted) + 1  # only the unused embed_spatial is dropped
    pairs = {
        "null_embedding": "null_clip_embedding",
        "energy_null_embedding": "null_energy_embedding",
        "dir_null_embedding": "null_direction_embedding",
        "model.encoder.energy_map_projection.2.weight": "model.encoder.energy_projection.2.weight",
        "model.encoder.direction_embedding.0.bias": "model.encoder.direction_projection.0.bias",
        "model.decoder.embed_dac.35.weight": "model.decoder.embed_codes.35.weight",
        "dac_heads.17.bias": "heads.17.bias",
        "model.decoder.embed_positions.weight": "model.decoder.embed_positions.weight",
        "model.decoder.layers.1.encoder_attn.k_proj.weight": "model.decoder.layers.1.encoder_attn.k_proj.weight",
    }
    for old, new in pairs.items():
        assert converted[new] is original[old]


def test_module_prefix_and_missing_base_prefix_are_accepted():
    original = _original_state_dict(FOA)
    reference = convert_state_dict(original)
    ddp = convert_state_dict({"module." + key: value for key, value in original.items()})
    bare = convert_state_dict({key.removeprefix("model."): value for key, value in original.items()})
    assert ddp.keys() == reference.keys() == bare.keys()
    assert all(ddp[key] is reference[key] and bare[key] is reference[key] for key in reference)


def test_unknown_duplicate_and_missing_keys_raise():
    original = _original_state_dict(FOA)
    with pytest.raises(ValueError, match=r"lm_head\.weight"):
        convert_state_dict({**original, "lm_head.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="present twice"):
        convert_state_dict({**original, "module.dac_heads.0.bias": original["dac_heads.0.bias"]})
    expected_keys = VisageForFOA(convert_config(_original_config(FOA))).state_dict().keys()
    without_bias = {key: value for key, value in original.items() if key != "dac_heads.3.bias"}
    with pytest.raises(ValueError, match=r"lacks: \['heads\.3\.bias'\]"):
        convert_state_dict(without_bias, expected_keys=expected_keys)


def test_checkpoint_with_missing_tensor_or_wrong_sizes_is_refused(tmp_path):
    folder = _write_original_bin(tmp_path / "ckpt", FOA)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["model.decoder.layers.1.fc2.bias"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"model\.decoder\.layers\.1\.fc2\.bias"):
        load_original_checkpoint(folder)

    folder = _write_original_bin(tmp_path / "ckpt2", FOA)
    config = _original_config(FOA)
    config["max_target_length"] = 861  # disagrees with the stored (175, 16) position table
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"embed_positions\.weight: checkpoint \(175, 16\)"):
        load_original_checkpoint(folder)


# ------------------------------------------------------------------------------------------------ config
def test_released_config_maps_to_the_published_model():
    config = convert_config(RELEASED_CONFIG)
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (1024, 6, 12)
    # BartConfig defaults fill what cfg/config.json leaves out.
    assert (config.encoder_attention_heads, config.encoder_ffn_dim, config.activation_function) == (
        16,
        4096,
        "gelu",
    )
    assert (config.dropout, config.attention_dropout, config.layer_norm_eps) == (0.1, 0.0, 1e-5)
    assert (config.num_streams, config.codebook_size, config.code_pad_id) == (36, 1024, 1024)
    assert config.code_embedding_rows == 1088  # ceil(1025 / 64) · 64
    assert (config.max_source_positions, config.max_target_positions) == (20, 861)
    assert (config.sample_rate, config.hop_length, config.video_fps, config.mode) == (
        44100,
        512,
        4,
        "original",
    )
    assert config.frames_for_video_frames(20) == 430
    assert config.output_frames_for_video_frames(20) == 431
    # Parameter counts measured on the original (docs/original-implementation.md §1.7), without its unused embed_spatial (4·1024).
    with torch.device("meta"):
        foa = VisageForFOA(config)
        mono = VisageForFOA(convert_config(RELEASED_CONFIG, num_channels=1))
    assert sum(p.numel() for p in foa.parameters()) == 358_626_868 - 4096
    assert sum(p.numel() for p in mono.parameters()) == 298_052_096 - 4096
    assert (len(foa.state_dict()), len(mono.state_dict())) == (539 - 1, 448 - 1)


def test_fixture_config_fields_and_generation_defaults(foa_model):
    config = foa_model.config
    assert isinstance(config, VisageConfig)
    assert (config.d_model, config.decoder_layers, config.codebook_size, config.code_pad_id) == (
        16,
        2,
        16,
        16,
    )
    assert config.code_embedding_rows == 64  # ceil(17 / 64) · 64, as the original sizes its tables
    assert (config.max_source_positions, config.max_target_positions) == (4, 173)
    assert (config.visual_dropout_prob, config.direction_dropout_prob) == (0.1, 0.1)
    generation = foa_model.generation_config
    assert (generation.do_sample, generation.top_k, generation.guidance_mode) == (True, 256, "joint")
    assert (generation.cfg_guidance_scale, generation.cfg_direction_guidance_scale) == (2.5, 2.5)


def test_non_original_configs_are_rejected():
    with pytest.raises(ValueError, match="model_type 'visage'"):
        convert_config({"model_type": "visage", "d_model": 16})
    with pytest.raises(ValueError, match="original ViSAGe config"):
        convert_config({"model_type": "bart", "d_model": 16})  # a plain BART config


# --------------------------------------------------------------------------------------- finding checkpoints
def test_checkpoint_folder_is_found_in_a_file_list():
    hub_files = ["README.md", "visage/config.json", "visage/pytorch_model.bin", "visage/optimizer.bin"]
    assert find_checkpoint_folders(hub_files) == ["visage"]
    assert choose_checkpoint_folder(hub_files) == "visage"
    root = ["config.json", "model.safetensors", "old/config.json", "old/pytorch_model.bin"]
    assert choose_checkpoint_folder(root) == ""
    run = [f"checkpoints/epoch_{e}/{name}" for e in (0, 79) for name in ("config.json", "pytorch_model.bin")]
    with pytest.raises(ValueError, match=r"checkpoints/epoch_0.*checkpoints/epoch_79.*subfolder="):
        choose_checkpoint_folder(run)
    assert choose_checkpoint_folder(run, subfolder="checkpoints/epoch_79/") == "checkpoints/epoch_79"
    sharded = ["config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"]
    assert choose_checkpoint_folder(sharded) == ""
    with pytest.raises(FileNotFoundError, match=r"no folder with config\.json"):
        choose_checkpoint_folder(["README.md", "args.yaml", "optimizer.bin"])


def test_layout_detection(tmp_path, foa_model):
    assert is_original_checkpoint(FOA) and is_original_checkpoint(MONO)
    assert is_original_checkpoint(_original_config(FOA))
    assert is_original_checkpoint({key: v for key, v in RELEASED_CONFIG.items()})  # no model_type at all
    nested = _write_original_bin(tmp_path / "run" / "checkpoints" / "epoch_3", FOA, prefix="module.")
    assert is_original_checkpoint(tmp_path / "run")
    weights_only = tmp_path / "weights_only"
    weights_only.mkdir()
    shutil.copy(nested / "pytorch_model.bin", weights_only / "pytorch_model.bin")
    assert is_original_checkpoint(weights_only)  # no config: the key names decide
    ours = tmp_path / "ours"
    foa_model.save_pretrained(ours)
    assert not is_original_checkpoint(ours)
    assert maybe_load_original_checkpoint(ours) is None
    assert not is_original_checkpoint(tmp_path / "absent")


def test_bin_with_module_prefix_in_a_subfolder_loads_the_same_weights(tmp_path, foa_model):
    _write_original_bin(tmp_path / "run" / "checkpoints" / "epoch_3", FOA, prefix="module.")
    loaded = load_original_checkpoint(tmp_path / "run")
    reference = foa_model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
    assert maybe_load_original_checkpoint(tmp_path / "run") is not None


class FakeHub:
    """Serves a local folder through the huggingface_hub functions the loader calls (no network in tests)."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache, self.downloaded, self.listed = root, cache, [], 0

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def list_repo_files(self, repo_id, revision=None):
        self.listed += 1
        return self.files()

    def hf_hub_download(self, repo_id, filename, revision=None):
        if filename not in self.files():
            raise RemoteEntryNotFoundError(f"404: {filename}", response=mock.Mock())
        return str(self._fetch(filename))

    def snapshot_download(self, repo_id, revision=None, allow_patterns=None):
        for name in self.files():
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                self._fetch(name)
        return str(self.cache)

    def _fetch(self, name: str) -> Path:
        target = self.cache / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / name, target)
        self.downloaded.append(name)
        return target

    def install(self, monkeypatch) -> None:
        for name in ("list_repo_files", "hf_hub_download", "snapshot_download"):
            monkeypatch.setattr(huggingface_hub, name, getattr(self, name))


def test_hub_repo_in_original_layout_downloads_only_the_checkpoint(tmp_path, monkeypatch, foa_model):
    hub = FakeHub(tmp_path / "repo", tmp_path / "cache")
    _write_original_bin(tmp_path / "repo" / "visage", FOA, prefix="module.")  # also writes optimizer.bin
    (tmp_path / "repo" / "README.md").write_text("model card")
    hub.install(monkeypatch)
    model = maybe_load_original_checkpoint("someone/visage", revision="main")
    assert sorted(set(hub.downloaded)) == ["visage/config.json", "visage/pytorch_model.bin"]
    reference = foa_model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in model.state_dict().items())


def test_hub_repo_in_our_format_is_left_to_from_pretrained(tmp_path, monkeypatch, foa_model):
    hub = FakeHub(tmp_path / "repo", tmp_path / "cache")
    foa_model.save_pretrained(tmp_path / "repo")
    hub.install(monkeypatch)
    assert maybe_load_original_checkpoint("someone/visage-hf") is None
    assert hub.downloaded == ["config.json"] and hub.listed == 0


# ---------------------------------------------------------------------- parity with the original (FOA)
def test_teacher_forced_logits_and_loss_match_the_original(foa_model):
    expected = _expected(FOA)
    decoder_input_ids, labels = _teacher_forcing_inputs(expected)
    with torch.no_grad():
        output = foa_model(*_conditions(expected), decoder_input_ids=decoder_input_ids, labels=labels)
    np.testing.assert_allclose(
        output.encoder_last_hidden_state.numpy(), expected["encoder_last_hidden_state"], atol=1e-5
    )
    rows = expected["logit_rows"].astype(int)
    np.testing.assert_allclose(output.logits[:, rows].numpy(), expected["logits"], atol=1e-5)
    # Every position: the original's last hidden state through the (converted) heads.
    hidden = torch.from_numpy(expected["decoder_last_hidden_state"])
    all_logits = foa_model.stream_logits(hidden)
    np.testing.assert_allclose(output.logits.numpy(), all_logits.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(output.stream_losses.numpy(), expected["codebook_loss"], rtol=1e-5, atol=1e-5)
    assert output.loss.item() == pytest.approx(float(expected["loss"]), rel=1e-6)


def test_seeded_sampling_matches_original_generate_cfg(foa_model):
    expected = _expected(FOA)
    torch.manual_seed(int(expected["sample_seed"]))
    codes = foa_model.generate(
        *_conditions(expected),
        guidance="joint",
        guidance_scale=float(expected["guidance_scale"]),
        do_sample=True,
        top_k=int(expected["sample_top_k"]),
        mode="original",
    )
    np.testing.assert_array_equal(_as_original_layout(codes), expected["sampled_codes_t4"])


# --------------------------------------------------------------------- parity with the original (mono)
def test_mono_checkpoint_converts_and_matches_the_original(mono_model):
    expected = _expected(MONO)
    assert (mono_model.config.num_channels, mono_model.config.num_streams, mono_model.config.d_model) == (
        1,
        9,
        8,
    )
    decoder_input_ids, labels = _teacher_forcing_inputs(expected)
    clip, _, _ = _conditions(expected)
    with torch.no_grad():
        output = mono_model(clip, decoder_input_ids=decoder_input_ids, labels=labels)
    rows = expected["logit_rows"].astype(int)
    np.testing.assert_allclose(output.logits[:, rows].numpy(), expected["logits"], atol=1e-5)
    np.testing.assert_allclose(output.stream_losses.numpy(), expected["codebook_loss"], rtol=1e-5, atol=1e-5)
    assert output.loss.item() == pytest.approx(float(expected["loss"]), rel=1e-6)
    # Greedy codes at 4 and 3 frames: test_greedy_generation_matches_the_original_under_every_guidance.


# ------------------------------------------------------------------------------------------- round trip
def test_convert_original_writes_a_checkpoint_that_reloads(tmp_path, foa_model):
    source = _write_original_bin(tmp_path / "original", FOA, prefix="module.")
    destination = convert_original(source, tmp_path / "converted")
    assert not is_original_checkpoint(destination)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted.")]  # staging folder moved
    reloaded = VisageForFOA.from_pretrained(destination).eval()
    assert reloaded.config.mode == "original"
    assert (reloaded.generation_config.top_k, reloaded.generation_config.cfg_guidance_scale) == (256, 2.5)
    reference = foa_model.state_dict()
    assert reloaded.state_dict().keys() == reference.keys()
    assert all(torch.equal(value, reference[key]) for key, value in reloaded.state_dict().items())
    expected = _expected(FOA)
    decoder_input_ids, labels = _teacher_forcing_inputs(expected)
    with torch.no_grad():
        output = reloaded(*_conditions(expected), decoder_input_ids=decoder_input_ids, labels=labels)
    assert output.loss.item() == pytest.approx(float(expected["loss"]), rel=1e-6)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_original(source, destination)
    convert_original(MONO, destination, overwrite=True)
    assert VisageForFOA.from_pretrained(destination).config.num_channels == 1


# ------------------------------------------------ parity at every decoder row, under every guidance branch
# The original's branches as its generate_cfg / generate_dual_cfg build them: (null visual, null direction).
BRANCHES = {
    "conditional": (False, False),
    "no_direction": (False, True),  # generate_dual_cfg's "semantic" branch
    "no_visual": (True, False),  # its "spatial" branch
    "unconditional": (True, True),
}
FOLDERS = {"foa": FOA, "mono": MONO, "foa_t20": FOA_T20}


def _branches(folder: Path) -> list[str]:
    return ["conditional", "unconditional"] if folder is MONO else list(BRANCHES)


def _original_logits_every_row(folder: Path, branch: str) -> torch.Tensor:
    """The original's logits ``(batch, rows, streams, vocab)`` at every row: its `dac_heads[j]` (nn.Linear,
    original key names) on its last decoder hidden state (the generator checks this equals its forward)."""
    expected = _expected(folder)
    key = "decoder_last_hidden_state" + ("" if branch == "conditional" else f"_{branch}")
    hidden = torch.from_numpy(expected[key])
    state = _original_state_dict(folder)
    streams = len([k for k in state if k.startswith("dac_heads.") and k.endswith(".bias")])
    heads = [(state[f"dac_heads.{j}.weight"], state[f"dac_heads.{j}.bias"]) for j in range(streams)]
    return torch.stack([torch.nn.functional.linear(hidden, w, b) for w, b in heads], dim=2)


def _our_logits_every_row(model: VisageForFOA, folder: Path, branch: str) -> torch.Tensor:
    expected = _expected(folder)
    decoder_input_ids, _ = _teacher_forcing_inputs(expected)
    batch = decoder_input_ids.shape[0]
    null_visual, null_direction = (torch.full((batch,), flag) for flag in BRANCHES[branch])
    if folder is MONO:
        null_direction = None
    with torch.no_grad():
        output = model(
            *_conditions(expected),
            null_visual=null_visual,
            null_direction=null_direction,
            decoder_input_ids=decoder_input_ids,
        )
    return output.logits


def _original_guided(logits: dict[str, torch.Tensor], visual: float, direction: float | None) -> torch.Tensor:
    """generate_cfg (direction None: joint) and generate_dual_cfg, written as the original writes them."""
    cond, uncond = logits["conditional"], logits["unconditional"]
    if direction is None:
        return cond + (cond - uncond) * visual
    return cond + (logits["no_direction"] - uncond) * visual + (logits["no_visual"] - uncond) * direction


def test_stored_rows_are_the_heads_on_the_stored_hidden_state():
    """The stored sample rows (the original's own logits) equal the every-row reconstruction."""
    for folder in FOLDERS.values():
        expected = _expected(folder)
        rows = expected["logit_rows"].astype(int)
        logits = _original_logits_every_row(folder, "conditional")
        np.testing.assert_allclose(logits[:, rows].numpy(), expected["logits"], atol=2e-6)


@pytest.mark.parametrize("name", list(FOLDERS))
def test_every_row_and_every_branch_matches_the_original(converted, name):
    folder, model = FOLDERS[name], converted[name]
    labels = torch.from_numpy(_expected(folder)["labels"])
    ours, theirs = {}, {}
    for branch in _branches(folder):
        ours[branch] = _our_logits_every_row(model, folder, branch)
        theirs[branch] = _original_logits_every_row(folder, branch)
        assert ours[branch].shape == theirs[branch].shape == (*labels.shape, model.config.codebook_size)
        np.testing.assert_allclose(ours[branch].numpy(), theirs[branch].numpy(), atol=1e-5, err_msg=branch)
    # Guided logits at every row: our GuidancePlan on our branches vs the original's formulas on its branches.
    cases = [("joint", 2.5, None)]
    if folder is not MONO:
        cases += [("dual", *scales) for scales in _expected(folder)["dual_guidance_scales"].tolist()]
    for mode, visual, direction in cases:
        plan = GuidancePlan(mode, visual, 0.0 if direction is None else direction, combine_logits=True)
        stacked = torch.stack([ours[b] for b in _plan_branch_names(plan)])
        np.testing.assert_allclose(
            plan.combine(stacked).numpy(),
            _original_guided(theirs, visual, direction).numpy(),
            atol=2e-5,  # the scales amplify branch differences (measured: branches 1.4e-6, guided 4.9e-6)
            err_msg=f"{mode} {visual} {direction}",
        )


def _plan_branch_names(plan: GuidancePlan) -> list[str]:
    by_flags = {flags: name for name, flags in BRANCHES.items()}
    return [by_flags[flags] for flags in plan.branches]


@pytest.mark.parametrize("name", ["foa_t20"])
def test_twenty_frame_teacher_forcing_matches_the_original(converted, name):
    folder, model = FOLDERS[name], converted[name]
    assert (model.config.max_source_positions, model.config.video_fps) == (20, 20)
    expected = _expected(folder)
    assert expected["inputs_embeds"].shape[1] == 20 and expected["encoder_last_hidden_state"].shape[1] == 22
    decoder_input_ids, labels = _teacher_forcing_inputs(expected)
    with torch.no_grad():
        output = model(*_conditions(expected), decoder_input_ids=decoder_input_ids, labels=labels)
    np.testing.assert_allclose(
        output.encoder_last_hidden_state.numpy(), expected["encoder_last_hidden_state"], atol=1e-5
    )
    np.testing.assert_allclose(output.stream_losses.numpy(), expected["codebook_loss"], rtol=1e-5, atol=1e-5)
    assert output.loss.item() == pytest.approx(float(expected["loss"]), rel=1e-6)


def _guided_generation_cases() -> list[tuple[str, str, int]]:
    cases = []
    for name, folder in FOLDERS.items():
        for key in _expected(folder):
            if "greedy_codes_t" in key:
                guidance = key.split("greedy_codes_t")[0].rstrip("_") or "joint"
                cases.append((name, guidance, int(key.rsplit("_t", 1)[1])))
    return cases


@pytest.mark.parametrize(("name", "guidance", "frames"), _guided_generation_cases())
def test_greedy_generation_matches_the_original_under_every_guidance(converted, name, guidance, frames):
    """joint: the original's generate_cfg(scale 2.5); dual / visual / direction: its generate_dual_cfg with
    (s_v, s_d) from `dual_guidance_scales` — "visual" and "direction" are s_d = 0 and s_v = 0, the only
    single-condition guidance the original has (our "dual" with one scale 0)."""
    folder, model = FOLDERS[name], converted[name]
    expected = _expected(folder)
    prefix = "" if guidance == "joint" else f"{guidance}_"
    # The original's smallest guided top-1/top-2 gap: several times the guided logits' float differences
    # (4.9e-6 at most, measured), so a code can only differ through a real disagreement.
    assert expected[f"{prefix}greedy_min_margin_t{frames}"] > 3e-5
    settings = {}  # joint: guidance 2.5 and mode "original" must come from the converted defaults
    if guidance != "joint":
        visual, direction = _dual_scales(expected)[guidance]
        settings = {"guidance": "dual", "guidance_scale": visual, "direction_guidance_scale": direction}
    codes = model.generate(*_conditions(expected, frames), do_sample=False, **settings)
    np.testing.assert_array_equal(_as_original_layout(codes), expected[f"{prefix}greedy_codes_t{frames}"])


def _dual_scales(expected: dict) -> dict[str, tuple[float, float]]:
    return dict(zip(("dual", "visual", "direction"), map(tuple, expected["dual_guidance_scales"].tolist())))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("foa", "dual_sampled_codes_t4"),
        ("mono", "sampled_codes_t4"),
        ("foa_t20", "sampled_codes_t20"),
        ("foa_t20", "dual_sampled_codes_t20"),
    ],
)
def test_seeded_sampling_matches_the_original_under_every_guidance(converted, name, key):
    folder, model = FOLDERS[name], converted[name]
    expected = _expected(folder)
    settings = {"guidance": "joint", "guidance_scale": 2.5}
    if key.startswith("dual"):
        visual, direction = _dual_scales(expected)["dual"]
        settings = {"guidance": "dual", "guidance_scale": visual, "direction_guidance_scale": direction}
    torch.manual_seed(int(expected["sample_seed"]))
    codes = model.generate(
        *_conditions(expected),
        do_sample=True,
        top_k=int(expected["sample_top_k"]),
        mode="original",
        **settings,
    )
    np.testing.assert_array_equal(_as_original_layout(codes), expected[key])
