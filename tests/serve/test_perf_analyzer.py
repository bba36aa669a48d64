"""Triton's own load generator, perf_analyzer, against `capsdeploy serve`: its default random
input data (random bits, so NaN and infinities), concurrency 1, 8 and 32, and its server-side
statistics report (it aborts when the server's compute counts disagree)."""

import re

import pytest

from tests.helpers.serving import run_perf_analyzer


def server_side_counts(out: str) -> list[tuple[int, int]]:
    """(inference count, execution count) from each of perf_analyzer's `Server:` blocks."""
    found = re.findall(r"Server:\s*\n\s*Inference count: (\d+)\s*\n\s*Execution count: (\d+)", out)
    return [(int(i), int(e)) for i, e in found]


def assert_ran_with_server_stats(code: int, out: str, runs: int) -> None:
    assert code == 0, out
    counts = server_side_counts(out)
    assert len(counts) >= runs, out  # one report per concurrency, each with the server's counts
    assert all(i > 0 and e > 0 for i, e in counts), out
    assert "Server side statistics compute counts must be the same" not in out


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_random_data_at_1_8_32(server, perf_analyzer, protocol):
    host_port = server.host_port if protocol == "http" else server.grpc_host_port
    for concurrency in (1, 8, 32):
        code, out = run_perf_analyzer(
            perf_analyzer,
            "-m",
            "capsnet",
            "-u",
            host_port,
            "-i",
            protocol,
            "--concurrency-range",
            concurrency,
        )
        assert_ran_with_server_stats(code, out, 1)


def test_perf_analyzer_grpc_streaming(server, perf_analyzer):
    code, out = run_perf_analyzer(
        perf_analyzer,
        "-m",
        "capsnet",
        "-u",
        server.grpc_host_port,
        "-i",
        "grpc",
        "--streaming",
        "--concurrency-range",
        "1:8:7",
    )
    assert_ran_with_server_stats(code, out, 2)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_system_shared_memory(server, perf_analyzer, protocol):
    """`--shared-memory system`: perf_analyzer registers its regions (seen in the server's status
    while it runs), sends every tensor through them, and unregisters them all at the end."""
    import json
    import threading
    import time

    from tests.helpers.serving import request

    host_port = server.host_port if protocol == "http" else server.grpc_host_port
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            _, _, body = request(server.host_port, "GET", "/v2/systemsharedmemory/status")
            seen.update(r["name"] for r in json.loads(body))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, out = run_perf_analyzer(
            perf_analyzer,
            "-m",
            "capsnet",
            "-u",
            host_port,
            "-i",
            protocol,
            "--shared-memory",
            "system",
            "--concurrency-range",
            "4",
        )
    finally:
        done.set()
        watcher.join()
    assert_ran_with_server_stats(code, out, 1)
    assert any("image" in name for name in seen), seen  # its input region was registered
    _, _, body = request(server.host_port, "GET", "/v2/systemsharedmemory/status")
    assert json.loads(body) == []  # and everything unregistered again
