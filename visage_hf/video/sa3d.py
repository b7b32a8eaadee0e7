"""MP4 spatial-media metadata: the spatial-audio ``SA3D`` box (and spherical-video ``st3d``/``sv3d``), written and read.

YouTube and spatial-audio players recognise ambisonic audio in an MP4 by an ``SA3D`` box inside the audio
track's sample entry (``moov/trak/mdia/minf/stbl/stsd/mp4a`` or ``.../Opus``), defined by Google's Spatial
Audio RFC (google/spatial-media ``docs/spatial-audio-rfc.md``). Neither FFmpeg nor PyAV writes it, so this
module does, from the RFC's box syntax::

    SA3D: version u8 | ambisonic_type u8 | ambisonic_order u32 | channel_ordering u8 | normalization u8
          | num_channels u32 | channel_map u32 x num_channels              (big-endian)

visage-hf writes AmbiX: version 0, type 0 (periphonic), order 1, ordering 0 (ACN), normalization 0 (SN3D),
4 channels, channel map 0, 1, 2, 3 (the track already stores W, Y, Z, X).

For equirectangular video the Spherical Video V2 boxes (``st3d`` + ``sv3d/svhd,proj/prhd,equi``, RFC
``docs/spherical-video-v2-rfc.md``) can be added to the video sample entry the same way; YouTube needs
spherical metadata before it head-tracks the spatial audio.

Inserting a box grows every ancestor box. When ``moov`` precedes ``mdat`` ("faststart") the media data
moves by the same number of bytes, so every chunk offset (``stco``/``co64``) that points past ``moov`` is
shifted. Only ``moov`` is rewritten in memory; the media data is copied through in blocks. Fragmented MP4
(``moof``) is not supported.
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import atomic_output_path
from ..utils.limits import check_mp4_box_depth, check_mp4_moov_size

__all__ = [
    "BoxInfo",
    "build_sa3d_box",
    "build_spherical_boxes",
    "chunk_offsets",
    "inject_spatial_metadata",
    "parse_sa3d_payload",
    "read_sa3d",
    "read_spherical",
    "walk_boxes",
]

# Boxes whose payload is nothing but child boxes.
_PLAIN_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "edts", "dinf", "sv3d", "proj"}
# ISO 14496-12 VisualSampleEntry: 6 reserved + 2 data_reference_index + 16 pre_defined/reserved
# + width/height (4) + resolutions (8) + reserved (4) + frame_count (2) + compressorname (32)
# + depth (2) + pre_defined (2) = 78 bytes before the child boxes.
_VISUAL_ENTRY_FIELDS = 78
# AudioSampleEntry (and QuickTime sound description v0): 28 bytes before the child boxes; QuickTime
# sound descriptions version 1 and 2 carry 16 and 36 more.
_AUDIO_ENTRY_FIELDS = {0: 28, 1: 44, 2: 64}
_COPY_BLOCK = 1 << 22

_SPHERICAL_SOURCE = "visage-hf"


@dataclass(frozen=True)
class BoxInfo:
    """One box of an MP4 file: slash-joined ``path`` from the top level, absolute ``offset`` of its header,
    total ``size`` in bytes (header included) and ``header_size`` (8, or 16 with a 64-bit size)."""

    path: str
    offset: int
    size: int
    header_size: int

    @property
    def type(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size


# --------------------------------------------------------------------------------------------- parsing


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def _read_header(buf, offset: int, limit: int) -> tuple[str, int, int]:
    """Return ``(type, size, header_size)`` of the box at ``offset`` of ``buf`` that must end by ``limit``."""
    if limit - offset < 8:
        raise ValueError(
            f"truncated MP4 box header at byte {offset}: {limit - offset} byte(s) left, expected 8"
        )
    size, raw_type = struct.unpack_from(">I4s", buf, offset)
    header_size = 8
    if size == 1:
        if limit - offset < 16:
            raise ValueError(f"truncated 64-bit MP4 box header at byte {offset}")
        (size,) = struct.unpack_from(">Q", buf, offset + 8)
        header_size = 16
    elif size == 0:  # the box runs to the end of its container
        size = limit - offset
    if size < header_size or offset + size > limit:
        raise ValueError(
            f"corrupt MP4 box {_box_type(raw_type)!r} at byte {offset}: size {size} does not fit "
            f"in its container (ends at byte {limit})"
        )
    return _box_type(raw_type), size, header_size


def _trak_handler(buf, start: int, end: int) -> str | None:
    """The ``handler_type`` (``soun``, ``vide``, ...) in ``trak/mdia/hdlr`` of the trak payload ``buf[start:end]``."""
    for kind, offset, size, header_size in _headers(buf, start, end):
        if kind == "mdia":
            for inner, inner_offset, _, inner_header in _headers(buf, offset + header_size, offset + size):
                if inner == "hdlr":
                    # FullBox (4) + pre_defined (4), then handler_type.
                    at = inner_offset + inner_header + 8
                    return _box_type(bytes(buf[at : at + 4]))
    return None


def _headers(buf, start: int, end: int):
    """Yield ``(type, offset, size, header_size)`` of the boxes tiling ``buf[start:end]``."""
    offset = start
    while offset < end:
        if end - offset < 8 and not any(buf[offset:end]):
            return  # QuickTime pads some containers with a few zero bytes
        kind, size, header_size = _read_header(buf, offset, end)
        yield kind, offset, size, header_size
        offset += size


def _children_offset(buf, kind: str, payload: int, parent: str, handler: str | None) -> int | None:
    """Where the child boxes of a ``kind`` box whose payload starts at ``payload`` begin, or None when it
    has none we know how to read."""
    if kind in _PLAIN_CONTAINERS:
        return payload
    if kind == "stsd":  # FullBox header (4) + entry_count (4)
        return payload + 8
    if parent == "stsd" and handler == "soun":
        (version,) = struct.unpack_from(">H", buf, payload + 8)
        fields = _AUDIO_ENTRY_FIELDS.get(version)
        return None if fields is None else payload + fields
    if parent == "stsd" and handler == "vide":
        return payload + _VISUAL_ENTRY_FIELDS
    return None


def _walk(buf, start: int, end: int, prefix: str, base: int = 0, handler: str | None = None) -> list[BoxInfo]:
    """Every box of ``buf[start:end]`` and, recursively, the children of the containers we understand.

    Offsets in the result are ``base`` + offsets in ``buf`` (``base`` is where ``buf`` lies in the file).
    """
    parent = prefix.rstrip("/").rsplit("/", 1)[-1]
    found: list[BoxInfo] = []
    for kind, offset, size, header_size in _headers(buf, start, end):
        box = BoxInfo(f"{prefix}{kind}", base + offset, size, header_size)
        check_mp4_box_depth(box.path)
        found.append(box)
        inner_handler = _trak_handler(buf, offset + header_size, offset + size) if kind == "trak" else handler
        child_start = _children_offset(buf, kind, offset + header_size, parent, inner_handler)
        if child_start is not None:
            found.extend(_walk(buf, child_start, offset + size, box.path + "/", base, inner_handler))
    return found


def _top_level_boxes(path: Path) -> list[BoxInfo]:
    file_size = path.stat().st_size
    boxes = []
    with open(path, "rb") as f:
        offset = 0
        while offset < file_size:
            f.seek(offset)
            head = f.read(16)
            kind, size, header_size = _read_header(head + bytes(16 - len(head)), 0, file_size - offset)
            boxes.append(BoxInfo(kind, offset, size, header_size))
            offset += size
    return boxes


def _check_path(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MP4 file not found: {path}")
    if path.is_dir():
        raise ValueError(f"expected an MP4 file, got a directory: {path}")
    return path


def _read_moov(path: Path) -> tuple[BoxInfo, bytearray, list[BoxInfo]]:
    top = _top_level_boxes(path)
    kinds = [box.type for box in top]
    if "moof" in kinds:
        raise ValueError(f"fragmented MP4 (moof boxes) is not supported: {path}; remux it without fragments")
    moovs = [box for box in top if box.type == "moov"]
    if len(moovs) != 1:
        raise ValueError(
            f"expected exactly one 'moov' box in {path}, found {len(moovs)} (top level: {kinds})"
        )
    moov = moovs[0]
    check_mp4_moov_size(moov.size, path)
    with open(path, "rb") as f:
        f.seek(moov.offset)
        buf = bytearray(f.read(moov.size))
    return moov, buf, top


def walk_boxes(path: str | os.PathLike) -> list[BoxInfo]:
    """List the boxes of an MP4 file: every top-level box, and the ``moov`` tree down to the sample entries'
    children (e.g. ``moov/trak/mdia/minf/stbl/stsd/mp4a/SA3D``), in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a well-formed MP4 box structure.
    """
    path = _check_path(path)
    top = _top_level_boxes(path)
    result: list[BoxInfo] = []
    for box in top:
        result.append(box)
        if box.type == "moov":
            check_mp4_moov_size(box.size, path)
            with open(path, "rb") as f:
                f.seek(box.offset)
                buf = f.read(box.size)
            result.extend(_walk(buf, box.header_size, box.size, "moov/", box.offset))
    return result


# --------------------------------------------------------------------------------------------- SA3D


def build_sa3d_box(num_channels: int = 4, channel_map: tuple[int, ...] | None = None) -> bytes:
    """The complete ``SA3D`` box (header included) for periphonic ACN/SN3D ambisonics.

    ``num_channels`` must be ``(order + 1) ** 2``; ``channel_map[i]`` is the ACN index stored in track
    channel ``i`` (identity for AmbiX W, Y, Z, X). For 4 channels the box is 36 bytes.
    """
    order = round(num_channels**0.5) - 1
    if num_channels < 1 or (order + 1) ** 2 != num_channels:
        raise ValueError(f"SA3D needs (order + 1)^2 ambisonic channels (1, 4, 9, ...), got {num_channels}")
    channel_map = tuple(range(num_channels)) if channel_map is None else tuple(int(c) for c in channel_map)
    if sorted(channel_map) != list(range(num_channels)):
        raise ValueError(f"channel_map must be a permutation of 0..{num_channels - 1}, got {channel_map}")
    payload = struct.pack(">BBIBBI", 0, 0, order, 0, 0, num_channels) + struct.pack(
        f">{num_channels}I", *channel_map
    )
    return struct.pack(">I4s", 8 + len(payload), b"SA3D") + payload


def parse_sa3d_payload(payload: bytes) -> dict:
    """Decode an ``SA3D`` box payload (the bytes after its 8-byte header) into its named fields."""
    if len(payload) < 12:
        raise ValueError(f"SA3D payload too short: {len(payload)} bytes, expected at least 12")
    version, ambisonic_type, order, ordering, normalization, num_channels = struct.unpack_from(
        ">BBIBBI", payload
    )
    if len(payload) < 12 + 4 * num_channels:
        raise ValueError(
            f"SA3D payload holds {len(payload)} bytes, too short for {num_channels} channel_map entries"
        )
    channel_map = list(struct.unpack_from(f">{num_channels}I", payload, 12))
    return {
        "version": version,
        "ambisonic_type": ambisonic_type,
        "ambisonic_order": order,
        "ambisonic_channel_ordering": ordering,
        "ambisonic_normalization": normalization,
        "num_channels": num_channels,
        "channel_map": channel_map,
    }


def read_sa3d(path: str | os.PathLike) -> dict | None:
    """Read the ``SA3D`` box of the audio track of an MP4, or None when there is none.

    Returns:
        ``{"version", "ambisonic_type", "ambisonic_order", "ambisonic_channel_ordering",
        "ambisonic_normalization", "num_channels", "channel_map", "sample_entry"}``; ``sample_entry`` is the
        audio sample entry holding the box (``"mp4a"``, ``"Opus"``, ...).
    """
    path = _check_path(path)
    moov, buf, _ = _read_moov(path)
    for box in _walk(buf, moov.header_size, moov.size, "moov/"):
        if box.path.endswith("/SA3D") and "/stsd/" in box.path:
            fields = parse_sa3d_payload(bytes(buf[box.payload_offset : box.end]))
            fields["sample_entry"] = box.path.split("/")[-2]
            return fields
    return None


# --------------------------------------------------------------------------------------------- spherical


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    body = struct.pack(">I", (version << 24) | flags) + payload
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def build_spherical_boxes(stereo_mode: int = 0) -> bytes:
    """``st3d`` (monoscopic by default) followed by ``sv3d`` for an uncropped equirectangular video with
    the default pose: the bytes to place in the video sample entry."""
    st3d = _full_box(b"st3d", struct.pack(">B", stereo_mode))
    svhd = _full_box(b"svhd", _SPHERICAL_SOURCE.encode() + b"\0")
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = _full_box(b"equi", struct.pack(">IIII", 0, 0, 0, 0))
    sv3d = _box(b"sv3d", svhd + _box(b"proj", prhd + equi))
    return st3d + sv3d


def read_spherical(path: str | os.PathLike) -> dict | None:
    """Read the Spherical Video V2 metadata of the video track, or None when there is none.

    Returns:
        ``{"projection": "equirectangular" | <projection box type>, "stereo_mode": int, "metadata_source": str}``.
    """
    path = _check_path(path)
    moov, buf, _ = _read_moov(path)
    result = None
    stereo_mode = 0
    for box in _walk(buf, moov.header_size, moov.size, "moov/"):
        if "/stsd/" not in box.path:
            continue
        if box.type == "st3d":
            stereo_mode = buf[box.payload_offset + 4]
        elif box.type == "svhd":
            raw = bytes(buf[box.payload_offset + 4 : box.end])
            result = result or {}
            result["metadata_source"] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif box.path.endswith("proj/" + box.type) and box.type != "prhd":
            result = result or {}
            result["projection"] = "equirectangular" if box.type == "equi" else box.type
    if result is not None:
        result["stereo_mode"] = stereo_mode
    return result


# --------------------------------------------------------------------------------------------- editing


def _resize(buf: bytearray, box: BoxInfo, delta: int) -> None:
    new_size = box.size + delta
    if box.header_size == 16:
        struct.pack_into(">Q", buf, box.offset + 8, new_size)
    elif new_size >= 1 << 32:
        raise ValueError(f"box {box.path!r} would exceed 4 GiB after adding metadata")
    else:
        struct.pack_into(">I", buf, box.offset, new_size)


def _ancestors(boxes: list[BoxInfo], target: BoxInfo) -> list[BoxInfo]:
    parts = target.path.split("/")
    chain = []
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        chain.append(
            next(b for b in boxes if b.path == prefix and b.offset <= target.offset and target.end <= b.end)
        )
    return chain


def _sample_entry(buf: bytearray, handler: str, path: Path) -> list[BoxInfo]:
    """The boxes of the ``moov`` in ``buf`` (offsets within ``buf``), followed by the sample entry of its
    single track with ``handler`` (``soun``/``vide``)."""
    _, size, header_size = _read_header(buf, 0, len(buf))
    boxes = [BoxInfo("moov", 0, size, header_size), *_walk(buf, header_size, size, "moov/")]
    traks = [
        box
        for box in boxes
        if box.path == "moov/trak" and _trak_handler(buf, box.payload_offset, box.end) == handler
    ]
    what = {"soun": "audio", "vide": "video"}[handler]
    if len(traks) != 1:
        raise ValueError(f"expected exactly one {what} track in {path}, found {len(traks)}")
    trak = traks[0]
    entries = [
        box
        for box in boxes
        if box.path.startswith("moov/trak/mdia/minf/stbl/stsd/")
        and box.path.count("/") == 6
        and trak.offset <= box.offset < trak.end
    ]
    if len(entries) != 1:
        raise ValueError(f"expected one {what} sample entry in {path}, found {len(entries)}")
    return [*boxes, entries[0]]


def _set_children(
    buf: bytearray,
    boxes: list[BoxInfo],
    entry: BoxInfo,
    new: bytes,
    kinds: tuple[str, ...],
    after_first: bool,
) -> None:
    """Replace the children of ``entry`` whose type is in ``kinds`` by the boxes ``new`` and grow ``entry``
    and its ancestors accordingly.

    ``new`` goes where the first replaced box was; with nothing to replace, right after the first child
    (the codec configuration box) when ``after_first``, else at the end of ``entry``.
    """
    depth = entry.path.count("/") + 1
    children = [
        box
        for box in boxes
        if box.path.startswith(entry.path + "/")
        and box.path.count("/") == depth
        and entry.offset <= box.offset < entry.end
    ]
    old = [box for box in children if box.type in kinds]
    if old:
        at = old[0].offset
    elif after_first and children:
        at = children[0].end
    else:  # after the last child box, ahead of any zero padding
        at = children[-1].end if children else entry.end
    for box in sorted(old, key=lambda b: b.offset, reverse=True):
        del buf[box.offset : box.end]
    buf[at:at] = new
    delta = len(new) - sum(box.size for box in old)
    for box in [*_ancestors(boxes, entry), entry]:
        _resize(buf, box, delta)


def _chunk_offset_tables(buf, moov_header: int, moov_size: int):
    """Yield ``(start, count, dtype)`` of every ``stco`` (32-bit) / ``co64`` table in the moov ``buf``."""
    for box in _walk(buf, moov_header, moov_size, "moov/"):
        if box.type in ("stco", "co64"):
            (count,) = struct.unpack_from(">I", buf, box.payload_offset + 4)  # after FullBox version/flags
            yield box.payload_offset + 8, count, np.dtype(">u4" if box.type == "stco" else ">u8")


def _shift_chunk_offsets(buf: bytearray, moov_header: int, threshold: int, delta: int) -> None:
    """Add ``delta`` to every chunk offset >= ``threshold`` (data that lay after the old ``moov``)."""
    if delta == 0:
        return
    for start, count, dtype in _chunk_offset_tables(buf, moov_header, len(buf)):
        end = start + count * dtype.itemsize
        offsets = np.frombuffer(bytes(buf[start:end]), dtype=dtype).astype(np.uint64)
        offsets[offsets >= threshold] += np.uint64(delta)
        if dtype.itemsize == 4 and count and int(offsets.max()) >= 1 << 32:
            raise ValueError("a 32-bit chunk offset (stco) would overflow after adding metadata")
        buf[start:end] = offsets.astype(dtype).tobytes()


def inject_spatial_metadata(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    num_channels: int | None = 4,
    channel_map: tuple[int, ...] | None = None,
    spherical: bool = False,
) -> Path:
    """Write ``src`` to ``dst`` (``src`` itself when None) with an ``SA3D`` box in its audio sample entry
    (skipped when ``num_channels`` is None) and, if ``spherical``, ``st3d``/``sv3d`` equirectangular boxes in
    its video sample entry.

    Existing boxes of the same type are replaced, so injecting twice is harmless. The output is written
    to a temporary file beside ``dst`` and moved into place, so an error leaves nothing half-written.

    Raises:
        ValueError: not exactly one audio track (or, with ``spherical``, one video track), unsupported
            layout (fragmented MP4), or malformed boxes.
    """
    src = _check_path(src)
    dst = src if dst is None else Path(dst)
    moov, buf, _ = _read_moov(src)
    moov_end = moov.end

    if num_channels is not None:
        boxes = _sample_entry(buf, "soun", src)
        sa3d = build_sa3d_box(num_channels, channel_map)
        _set_children(buf, boxes[:-1], boxes[-1], sa3d, ("SA3D",), after_first=False)
    if spherical:
        # The V2 RFC places st3d/sv3d after the codec configuration box, before optional boxes (pasp, ...).
        boxes = _sample_entry(buf, "vide", src)
        _set_children(buf, boxes[:-1], boxes[-1], build_spherical_boxes(), ("st3d", "sv3d"), after_first=True)
    delta = len(buf) - moov.size
    _shift_chunk_offsets(buf, moov.header_size, moov_end, delta)

    with atomic_output_path(dst) as temporary, open(temporary, "wb") as out, open(src, "rb") as f:
        _copy_range(f, out, 0, moov.offset)
        out.write(buf)
        _copy_range(f, out, moov_end, src.stat().st_size - moov_end)
    return dst


def _copy_range(f, out, start: int, length: int) -> None:
    f.seek(start)
    shutil.copyfileobj(_LimitedReader(f, length), out, _COPY_BLOCK)


class _LimitedReader:
    def __init__(self, f, length: int) -> None:
        self._f, self._left = f, length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data


def chunk_offsets(path: str | os.PathLike) -> list[np.ndarray]:
    """The chunk offsets (``stco``/``co64``) of each track, in track order, as int64 arrays."""
    moov, buf, _ = _read_moov(_check_path(path))
    return [
        np.frombuffer(bytes(buf[start : start + count * dtype.itemsize]), dtype=dtype).astype(np.int64)
        for start, count, dtype in _chunk_offset_tables(buf, moov.header_size, moov.size)
    ]
