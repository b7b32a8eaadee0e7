"""The Space under load and hostile uploads, against `python app.py` served with the tiny random pipeline.

16 `gradio_client` clients at once against 2 generations at a time and a queue of 4: every request is served or
told that the queue is full; the server's memory stays bounded over the rounds; every temporary file the
requests made (uploads, Gradio's cache, our result folders) is gone once the server stops. Uploads named
``../…`` or with an absolute path stay inside Gradio's upload folder; an upload over the size limit is refused by
the server before it is stored, and a path the client names on the server is never read.

Slow (tens of generations): ``pytest tests/hostile/test_load.py -m slow -s``. The same measurement over 100
requests, with RSS every 10: ``python benchmarks/space_load.py`` (numbers in docs/reliability.md)."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx
import pytest

from benchmarks.space_load import SETTINGS, request_outcome, server_rss_mb, temp_mb
from visage_hf.data.synthetic import moving_object_video

pytestmark = pytest.mark.slow

CLIENTS, ROUNDS = 16, 3
MAX_UPLOAD_MB = 1
LIMITS = {"VISAGE_CONCURRENCY": "2", "VISAGE_QUEUE_SIZE": "4", "VISAGE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB)}


def _one_round(url: str, video, downloads) -> list[str]:
    from gradio_client import Client

    outcomes: list[str] = [""] * CLIENTS
    clients = [Client(url, verbose=False, download_files=str(downloads)) for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def request(index: int) -> None:
        start.wait()
        outcomes[index] = request_outcome(clients[index], video)

    threads = [threading.Thread(target=request, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return outcomes


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def _upload(url: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files={"files": (name, data, "video/mp4")}, timeout=120)


def _hostile_uploads(url: str, folder: Path, video: Path) -> None:
    """Names that try to leave the upload folder, and an upload over the size limit."""
    uploads = (folder / "gradio").resolve()
    token = secrets.token_hex(4)
    names = [
        f"../../escape-{token}.mp4",
        f"../../../../../../tmp/escape-{token}.mp4",
        f"/tmp/escape-{token}.mp4",
        f"..\\..\\escape-{token}.mp4",
        f"a/../../escape-{token}.mp4",
    ]
    for name in names:
        reply = _upload(url, name, video.read_bytes())
        assert reply.status_code == 200, reply.text
        (stored,) = reply.json()
        assert Path(stored).resolve().is_relative_to(uploads), (name, stored)
        assert Path(stored).read_bytes() == video.read_bytes()
    outside = [path for path in (folder.parent, folder, Path("/tmp")) if list(path.glob(f"escape-{token}*"))]
    assert not outside, outside

    before = _files(uploads)
    large = _upload(url, "large.mp4", b"\0" * (MAX_UPLOAD_MB * 2**20 + 1))
    assert large.status_code == 413 and "max" in large.text.lower(), (large.status_code, large.text)
    assert _files(uploads) == before  # refused before it was stored (so before anything decoded it)


def _generate_from_server_path(url: str, path: str) -> str:
    """Ask `/generate` for a file the client names on the server (not uploaded): the event stream's text."""
    data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, *SETTINGS.values()]
    event = httpx.post(f"{url}gradio_api/call/generate", json={"data": data}, timeout=60).json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/generate/{event}", timeout=300).text


def test_sixteen_clients_are_served_or_told_the_queue_is_full(serve_app, tmp_path):
    video = moving_object_video(tmp_path / "clip.mp4", seconds=1.0, fps=8, width=64, height=48)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(video.read_bytes())
    folder, downloads = tmp_path / "app", tmp_path / "downloads"
    folder.mkdir()
    downloads.mkdir()
    with serve_app(folder, LIMITS, 300.0) as url:
        temp_before, memory = temp_mb(folder), []
        for _ in range(ROUNDS):
            outcomes = _one_round(url, video, downloads)
            memory.append(server_rss_mb())
            served, full = outcomes.count("served"), outcomes.count("full")
            assert served + full == CLIENTS, outcomes
            assert served >= 2 and full >= 1, outcomes  # both workers busy, the queue really overflowed
            print(f"round: served {served}, queue full {full}, server RSS {memory[-1]:.0f} MB")
        temp_served = temp_mb(folder)
        _hostile_uploads(url, folder, video)
        reply = _generate_from_server_path(url, str(secret))
        assert "event: error" in reply, reply
    temp_after = temp_mb(folder)
    # Gradio refused the path while preparing the input (logged when the server stopped), before our handler ran.
    assert (
        f"Cannot move {secret} to the gradio cache dir because it was not uploaded"
        in (folder / "app.log").read_text()
    )
    print(
        f"temp folders: {temp_before:.1f} MB before, {temp_served:.1f} MB served, {temp_after:.1f} MB after"
    )
    # Everything the requests stored went with the server: uploads, Gradio's cache and our result folders.
    assert temp_served > temp_before + 1.0 and temp_after <= temp_before + 0.1, (temp_before, temp_after)
    # Rounds after the first (model loaded, caches warm) may not keep growing.
    assert memory[-1] - memory[1] < 150, memory
