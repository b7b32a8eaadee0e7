"""The Space under load: 16 `gradio_client` clients at once against 2 generations at a time and a queue of 4.

Every request must be served or told that the queue is full; the server's memory must stay bounded over
repeated rounds. Slow (a served app, tens of generations with the tiny random pipeline): run with
``pytest tests/hostile/test_load.py -m slow``."""

from __future__ import annotations

import threading

import pytest

from visage_hf.data.synthetic import moving_object_video

pytestmark = pytest.mark.slow

CLIENTS, ROUNDS = 16, 3
SETTINGS = {
    "start": 0.0,
    "duration": 0.5,
    "azimuth": 30.0,
    "elevation": 0.0,
    "guidance": "joint",
    "guidance_scale": 2.5,
    "direction_guidance_scale": 2.5,
    "top_k": 256,
    "temperature": 1.0,
    "seed": 7,
    "random_seed": False,
}


def _server_rss_mb() -> float:
    import psutil

    servers = [p for p in psutil.Process().children(recursive=True) if "app.py" in " ".join(p.cmdline())]
    assert len(servers) == 1, servers
    return servers[0].memory_info().rss / 2**20


def _one_round(url: str, video, downloads) -> list[str]:
    from gradio_client import Client, handle_file

    outcomes: list[str] = [""] * CLIENTS
    clients = [Client(url, verbose=False, download_files=str(downloads)) for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def request(index: int) -> None:
        start.wait()
        try:
            clients[index].predict(video=handle_file(str(video)), api_name="/generate", **SETTINGS)
            outcomes[index] = "served"
        except Exception as error:  # the client's QueueError or the app's one-line error
            outcomes[index] = "full" if "queue is full" in str(error).lower() else f"error: {error}"

    threads = [threading.Thread(target=request, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return outcomes


def test_sixteen_clients_are_served_or_told_the_queue_is_full(serve_app, tmp_path):
    video = moving_object_video(tmp_path / "clip.mp4", seconds=1.0, fps=8, width=64, height=48)
    folder, downloads = tmp_path / "app", tmp_path / "downloads"
    folder.mkdir()
    downloads.mkdir()
    limits = {"VISAGE_CONCURRENCY": "2", "VISAGE_QUEUE_SIZE": "4"}
    with serve_app(folder, limits) as url:
        memory = []
        for _ in range(ROUNDS):
            outcomes = _one_round(url, video, downloads)
            memory.append(_server_rss_mb())
            served, full = outcomes.count("served"), outcomes.count("full")
            assert served + full == CLIENTS, outcomes
            assert served >= 2 and full >= 1, outcomes  # both workers busy, the queue really overflowed
            print(f"round: served {served}, queue full {full}, server RSS {memory[-1]:.0f} MB")
    # Rounds after the first (model loaded, caches warm) may not keep growing.
    assert memory[-1] - memory[1] < 150, memory
