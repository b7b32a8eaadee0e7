"""Tests for visage_hf.video.sa3d: the SA3D box against the RFC's byte layout, injection into real MP4s (AAC and Opus,
with and without faststart), chunk offsets, and that FFmpeg still decodes every sample afterwards.

MP4s are written here directly with PyAV (no visage_hf.video.io), so injection is tested on FFmpeg's own output.
"""

from __future__ import annotations

import shutil
import struct

import av
import numpy as np
import pytest

from visage_hf.video import sa3d
from visage_hf.video.io import write_mp4

FREQUENCIES = (220.0, 330.0, 440.0, 550.0)

# Google Spatial Audio RFC, example box for first-order AmbiX (channel map 0, 1, 2, 3), written out by hand:
# size 36 | 'SA3D' | version 0 | type 0 | order 1 | ordering 0 (ACN) | normalization 0 (SN3D) | 4 channels | map.
RFC_AMBIX_BOX = bytes.fromhex("000000245341334400000000000100000000000400000000000000010000000200000003")


def _pyav_mp4(path, codec: str, faststart: bool, with_video: bool = True, seconds: float = 1.0):
    """An MP4 straight from PyAV: 4 sines (one per channel) at 48 kHz, optionally a small H.264 video."""
    sample_rate = 48000
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    audio = np.stack([0.2 * np.sin(2 * np.pi * f * t) for f in FREQUENCIES]).astype(np.float32)
    encoder, layout, options = {
        "aac": ("aac", "4.0", {}),
        "opus": ("libopus", "ambisonic 1", {"mapping_family": "2"}),
    }[codec]
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as container:
        if with_video:
            video = container.add_stream("libx264", rate=10)
            video.width, video.height, video.pix_fmt = 64, 32, "yuv420p"
        stream = container.add_stream(encoder, rate=sample_rate, layout=layout, options=options)
        stream.bit_rate = 512_000
        if with_video:
            for index in range(round(seconds * 10)):
                image = np.full((32, 64, 3), 20 * index, dtype=np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
        for offset in range(0, audio.shape[1], 4800):
            frame = av.AudioFrame.from_ndarray(audio[:, offset : offset + 4800], format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sample_rate, offset
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decode_all(path):
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    with av.open(str(path)) as container:
        frames = (
            [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            if container.streams.video
            else []
        )
    return audio, frames


def _top_level_sizes_add_up(path):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        assert size >= 8
        offset += size
    return offset == len(data)


def test_box_bytes_follow_the_rfc():
    assert sa3d.build_sa3d_box() == RFC_AMBIX_BOX
    assert sa3d.parse_sa3d_payload(RFC_AMBIX_BOX[8:]) == {
        "version": 0,
        "ambisonic_type": 0,
        "ambisonic_order": 1,
        "ambisonic_channel_ordering": 0,
        "ambisonic_normalization": 0,
        "num_channels": 4,
        "channel_map": [0, 1, 2, 3],
    }
    # The RFC's W, X, Y, Z example maps to ACN as 0, 2, 3, 1.
    assert sa3d.build_sa3d_box(4, (0, 2, 3, 1))[-16:] == struct.pack(">4I", 0, 2, 3, 1)
    assert len(sa3d.build_sa3d_box(9)) == 8 + 12 + 4 * 9
    with pytest.raises(ValueError, match=r"\(order \+ 1\)\^2"):
        sa3d.build_sa3d_box(3)
    with pytest.raises(ValueError, match="permutation"):
        sa3d.build_sa3d_box(4, (0, 0, 1, 2))


@pytest.mark.parametrize("faststart", [True, False])
@pytest.mark.parametrize(("codec", "entry"), [("aac", "mp4a"), ("opus", "Opus")])
def test_injection_keeps_the_file_intact(tmp_path, codec, entry, faststart):
    original = _pyav_mp4(tmp_path / "plain.mp4", codec, faststart)
    injected = sa3d.inject_spatial_metadata(original, tmp_path / "spatial.mp4")
    assert sa3d.read_sa3d(original) is None

    # The box is where the RFC puts it, with the exact field values.
    paths = [box.path for box in sa3d.walk_boxes(injected)]
    assert f"moov/trak/mdia/minf/stbl/stsd/{entry}/SA3D" in paths
    fields = sa3d.read_sa3d(injected)
    assert fields == {
        "version": 0,
        "ambisonic_type": 0,
        "ambisonic_order": 1,
        "ambisonic_channel_ordering": 0,
        "ambisonic_normalization": 0,
        "num_channels": 4,
        "channel_map": [0, 1, 2, 3],
        "sample_entry": entry,
    }
    data = injected.read_bytes()
    assert data.count(RFC_AMBIX_BOX) == 1
    assert injected.stat().st_size == original.stat().st_size + len(RFC_AMBIX_BOX)
    assert _top_level_sizes_add_up(injected)

    # Every chunk offset still points at the same bytes: shifted by the box size only when moov precedes mdat.
    boxes = {box.type: box.offset for box in sa3d.walk_boxes(original) if "/" not in box.path}
    assert (boxes["moov"] < boxes["mdat"]) == faststart
    before, after = sa3d.chunk_offsets(original), sa3d.chunk_offsets(injected)
    old_data = original.read_bytes()
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new - old, len(RFC_AMBIX_BOX) if faststart else 0)
        for a, b in zip(old, new):
            assert old_data[a : a + 32] == data[b : b + 32]

    # FFmpeg decodes every audio sample and video frame exactly as before, channel order included.
    audio_before, frames_before = _decode_all(original)
    audio_after, frames_after = _decode_all(injected)
    np.testing.assert_array_equal(audio_after, audio_before)
    assert len(frames_after) == len(frames_before) == 10
    for a, b in zip(frames_before, frames_after):
        np.testing.assert_array_equal(a, b)
    spectrum = np.abs(np.fft.rfft(audio_after[:, :48000], axis=-1))
    np.testing.assert_allclose(np.argmax(spectrum, axis=-1), FREQUENCIES, atol=1)
    with av.open(str(injected)) as container:
        assert container.streams.audio[0].channels == 4


def test_injection_is_idempotent_and_in_place(tmp_path):
    path = _pyav_mp4(tmp_path / "a.mp4", "aac", faststart=True, with_video=False)
    size = path.stat().st_size
    sa3d.inject_spatial_metadata(path)
    sa3d.inject_spatial_metadata(path, channel_map=(0, 2, 3, 1))
    assert path.stat().st_size == size + len(RFC_AMBIX_BOX)
    assert sa3d.read_sa3d(path)["channel_map"] == [0, 2, 3, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
    audio, _ = _decode_all(path)
    assert audio.shape[0] == 4 and audio.shape[1] >= 48000


def test_spherical_boxes_follow_the_v2_rfc(tmp_path):
    original = _pyav_mp4(tmp_path / "plain.mp4", "opus", faststart=True)
    path = sa3d.inject_spatial_metadata(original, tmp_path / "vr.mp4", spherical=True)
    children = [
        b.path.rsplit("/", 1)[1]
        for b in sa3d.walk_boxes(path)
        if b.path.startswith("moov/trak/mdia/minf/stbl/stsd/avc1/")
    ]
    # st3d and sv3d right after the codec configuration box; sv3d holds svhd and proj(prhd, equi).
    assert children[:3] == ["avcC", "st3d", "sv3d"]
    assert {"svhd", "proj", "prhd", "equi"} <= set(children)
    assert sa3d.read_spherical(path) == {
        "metadata_source": "visage-hf",
        "projection": "equirectangular",
        "stereo_mode": 0,
    }
    data = path.read_bytes()
    # equi: FullBox version/flags 0 and four zero 0.32 bounds (uncropped); prhd: zero pose.
    assert struct.pack(">I4s", 28, b"equi") + bytes(20) in data
    assert struct.pack(">I4s", 24, b"prhd") + bytes(16) in data
    _, frames = _decode_all(path)
    assert len(frames) == 10
    for old, new in zip(sa3d.chunk_offsets(original), sa3d.chunk_offsets(path)):
        assert np.all(new - old == path.stat().st_size - original.stat().st_size)


def test_bad_inputs(tmp_path):
    video_only = tmp_path / "video.mp4"
    with av.open(str(video_only), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 32, 32
        for packet in stream.encode(
            av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        ):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match="exactly one audio track"):
        sa3d.inject_spatial_metadata(video_only, tmp_path / "out.mp4")
    assert sa3d.read_sa3d(video_only) is None
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x10moov" + b"\x00\x00\x01\x00trak" + bytes(8))
    with pytest.raises(ValueError, match="corrupt MP4 box"):
        sa3d.read_sa3d(junk)
    with pytest.raises(FileNotFoundError):
        sa3d.read_sa3d(tmp_path / "missing.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_quicktime_sound_description_version_1(tmp_path):
    """FFmpeg's MOV muxer writes 4-channel AAC as a version-1 sound description (16 more bytes of fields, then
    'wave' and 'chan' boxes); the SA3D box must still land among the entry's child boxes."""
    sample_rate = 48000
    audio = (0.1 * np.random.default_rng(0).standard_normal((4, sample_rate))).astype(np.float32)
    path = tmp_path / "clip.mov"
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="4.0")
        frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout="4.0")
        frame.sample_rate, frame.pts = sample_rate, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    entry = next(box for box in sa3d.walk_boxes(path) if box.path.endswith("stsd/mp4a"))
    with open(path, "rb") as f:
        f.seek(entry.payload_offset + 8)
        assert struct.unpack(">H", f.read(2))[0] == 1
    injected = sa3d.inject_spatial_metadata(path, tmp_path / "spatial.mov")
    children = [b.type for b in sa3d.walk_boxes(injected) if b.path.startswith(entry.path + "/")]
    assert children == ["wave", "chan", "SA3D"]
    assert sa3d.read_sa3d(injected)["num_channels"] == 4
    np.testing.assert_array_equal(_decode_all(injected)[0], _decode_all(path)[0])


# --------------------------------------------------------------------------------------------------------
# An independent reader: a box walk written here from ISO/IEC 14496-12 and Google's spatial-audio RFC
# (github.com/google/spatial-media, docs/spatial-audio-rfc.md), sharing no code with visage_hf.video.sa3d.

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
# Bytes between a sample entry's header and its child boxes: 28 for audio sample entries (version 0).
_AUDIO_ENTRY_FIELDS = 28


def _walk(data: bytes, start: int, end: int, path: str, found: dict) -> None:
    """Visit the boxes that exactly tile ``data[start:end]``; any size that overruns its parent fails."""
    offset = start
    while offset < end:
        assert offset + 8 <= end, f"{path}: a box header overruns its parent at {offset}"
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        assert size >= header and offset + size <= end, f"{path}/{kind!r}: size {size} overruns its parent"
        body = offset + header
        name = f"{path}/{kind.decode('latin-1')}"
        found.setdefault(kind, []).append((name, data[body : offset + size]))
        if kind in _CONTAINERS:
            _walk(data, body, offset + size, name, found)
        elif kind == b"stsd":
            _walk(data, body + 8, offset + size, name, found)  # version/flags + entry count
        elif kind in (b"mp4a", b"Opus"):
            version = struct.unpack(">H", data[body + 8 : body + 10])[0]
            extra = 16 if version == 1 else 0  # QuickTime sound description v1
            _walk(data, body + _AUDIO_ENTRY_FIELDS + extra, offset + size, name, found)
        offset += size
    assert offset == end, f"{path}: children end at {offset}, the parent at {end}"


@pytest.mark.parametrize("codec", ["aac", "opus"])
def test_sa3d_box_read_by_an_independent_walker(tmp_path, codec):
    foa = np.random.default_rng(0).uniform(-0.3, 0.3, (4, 4800)).astype(np.float32)
    path = write_mp4(tmp_path / "out.mp4", foa, 48000, np.zeros((2, 32, 64, 3), np.uint8), fps=4, codec=codec)
    data = path.read_bytes()
    found: dict = {}
    _walk(data, 0, len(data), "", found)  # every nested size checked against its parent, up to the file end
    ((name, body),) = found[b"SA3D"]
    assert name.endswith(("/stsd/mp4a/SA3D", "/stsd/Opus/SA3D")), name
    version, ambisonic_type, order, ordering, normalization, channels = struct.unpack(">BBIBBI", body[:12])
    channel_map = struct.unpack(">4I", body[12:28])
    assert len(body) == 12 + 4 * channels
    assert (version, ambisonic_type, order, ordering, normalization, channels) == (
        0,
        0,
        1,
        0,
        0,
        4,
    )  # ACN, SN3D
    assert channel_map == (0, 1, 2, 3)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (.ci/system-deps)")
def test_ffprobe_sees_the_spherical_video_and_four_channel_audio(tmp_path):
    """FFmpeg 5.1's ffprobe parses Spherical Video V2 (it does not report SA3D; the walker above checks that)."""
    import json
    import subprocess

    foa = np.random.default_rng(0).uniform(-0.3, 0.3, (4, 4800)).astype(np.float32)
    path = write_mp4(
        tmp_path / "out.mp4", foa, 48000, np.zeros((2, 32, 64, 3), np.uint8), fps=4, spherical=True
    )
    command = ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)]
    streams = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)[
        "streams"
    ]
    video, audio = (next(s for s in streams if s["codec_type"] == kind) for kind in ("video", "audio"))
    mapping = next(d for d in video["side_data_list"] if d["side_data_type"] == "Spherical Mapping")
    assert mapping["projection"] == "equirectangular"
    assert audio["channels"] == 4
