"""The Space over many requests: does its memory level off, and do its temporary files go away?

Serves ``app.py`` with the tiny random pipeline (offline) exactly as ``tests/hostile/test_load.py`` does, with
``GRADIO_TEMP_DIR`` and ``TMPDIR`` inside a folder this script owns, then sends ``--requests`` generations from
``--clients`` clients at once (each waits for its answer before sending the next) and prints, every
``--every`` requests, the server's RSS and the size of its temporary folders::

    python benchmarks/space_load.py --requests 100            # ≈ 15 min on a shared 2-core EPYC

Ends with ``served / rejected / errors``, the peak RSS and the growth over the last half of the requests (the
figure ``docs/reliability.md`` records), and exits 1 when that growth is over ``--max-growth-mb`` (60 MB) or a
request failed. ``--env NAME=VALUE`` passes a variable to the server (e.g.
``MALLOC_ARENA_MAX=2``) to compare allocator settings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402
from tests.conftest import _served_app  # noqa: E402

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


def server_rss_mb() -> float:
    """RSS of the one ``app.py`` process this process started."""
    import psutil

    servers = [p for p in psutil.Process().children(recursive=True) if "app.py" in " ".join(p.cmdline())]
    if len(servers) != 1:
        raise RuntimeError(f"expected one app.py server, found {servers}")
    return servers[0].memory_info().rss / 2**20


def folder_mb(folder: Path) -> float:
    """Bytes of the files under ``folder`` (MB); files that vanish while counting are skipped."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total / 2**20


def temp_mb(app_folder: Path) -> float:
    """The served app's temporary files (MB): its ``GRADIO_TEMP_DIR`` (uploads, Gradio's cache) and ``TMPDIR``
    (our result folders) are both inside ``app_folder``; its log is not counted."""
    log = app_folder / "app.log"
    return folder_mb(app_folder) - (log.stat().st_size / 2**20 if log.is_file() else 0.0)


def request_outcome(client, video: Path) -> str:
    """``"served"``, ``"full"`` (the queue is full) or ``"error: ..."`` for one ``/generate`` call."""
    from gradio_client import handle_file

    try:
        client.predict(video=handle_file(str(video)), api_name="/generate", **SETTINGS)
        return "served"
    except Exception as error:  # the client's QueueError or the app's one-line error
        return "full" if "queue is full" in str(error).lower() else f"error: {' '.join(str(error).split())}"


def run_requests(url: str, video: Path, downloads: Path, count: int, clients: int, report) -> list[str]:
    """``count`` requests from ``clients`` threads (one client each, one request at a time); calls
    ``report(done)`` after every completed request (under a lock, in completion order)."""
    from gradio_client import Client

    outcomes: list[str] = []
    lock = threading.Lock()
    tickets = iter(range(count))
    connections = [Client(url, verbose=False, download_files=str(downloads)) for _ in range(clients)]

    def worker(client) -> None:
        while True:
            with lock:
                if next(tickets, None) is None:
                    return
            outcome = request_outcome(client, video)
            with lock:
                outcomes.append(outcome)
                report(len(outcomes))

    threads = [threading.Thread(target=worker, args=(client,)) for client in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def measure(folder: Path, count: int, clients: int, every: int, env: dict[str, str]) -> dict:
    """Serve the app in ``folder``, send the requests, and return RSS samples and temp sizes (MB)."""
    from visage_hf.data.synthetic import moving_object_video

    video = moving_object_video(folder / "clip.mp4", seconds=1.0, fps=8, width=64, height=48)
    app_folder, downloads = folder / "app", folder / "downloads"
    app_folder.mkdir()
    downloads.mkdir()
    samples: list[tuple[int, float, float]] = []
    limits = {"VISAGE_CONCURRENCY": str(clients), "VISAGE_QUEUE_SIZE": "32", **env}
    with _served_app(app_folder, limits, timeout=600.0) as url:
        before = temp_mb(app_folder)

        def report(done: int) -> None:
            if done % every == 0 or done == count:
                samples.append((done, server_rss_mb(), temp_mb(app_folder)))
                print(
                    f"{done:4d} requests: server RSS {samples[-1][1]:7.1f} MB, temp {samples[-1][2]:6.1f} MB"
                )

        print(f"   0 requests: server RSS {server_rss_mb():7.1f} MB, temp {before:6.1f} MB")
        outcomes = run_requests(url, video, downloads, count, clients, report)
    return {
        "outcomes": outcomes,
        "samples": samples,
        "temp_before": before,
        "temp_after": temp_mb(app_folder),
    }


def growth_over_last_half(samples: list[tuple[int, float, float]], count: int) -> float:
    """RSS growth (MB) from the sample at ``count // 2`` requests to the last one."""
    middle = min(samples, key=lambda sample: abs(sample[0] - count // 2))
    return samples[-1][1] - middle[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--clients", type=int, default=2, help="at once; also the app's concurrency")
    parser.add_argument("--every", type=int, default=10, help="print RSS every this many requests")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument(
        "--max-growth-mb", type=float, default=60.0,
        help="fail (exit 1) when RSS grows more than this over the last half of the requests",
    )  # fmt: skip
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="visage-load-") as folder:
        result = measure(Path(folder), args.requests, args.clients, args.every, env)
    outcomes, samples = result["outcomes"], result["samples"]
    errors = [outcome for outcome in outcomes if outcome.startswith("error")]
    print(
        f"served {outcomes.count('served')}, queue full {outcomes.count('full')}, errors {len(errors)} "
        f"{errors[:3] if errors else ''}"
    )
    print(
        f"peak RSS {max(sample[1] for sample in samples):.0f} MB; growth over the last "
        f"{args.requests - args.requests // 2} requests {growth_over_last_half(samples, args.requests):+.0f} MB"
    )
    print(f"temp folders: {result['temp_before']:.1f} MB before, {result['temp_after']:.1f} MB after")
    growth = growth_over_last_half(samples, args.requests)
    if errors or growth > args.max_growth_mb:
        sys.exit(
            f"FAILED: {len(errors)} error(s); RSS grew {growth:.0f} MB (bound {args.max_growth_mb:g} MB)"
        )
    print(f"OK: RSS grew less than {args.max_growth_mb:g} MB over the last half")


if __name__ == "__main__":
    main()
