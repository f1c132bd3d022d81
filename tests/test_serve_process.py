"""`udlc serve` as a user runs it: its help shows each route without loading a server, and a real server (in an
interpreter where torch cannot be imported) answers the request in flight when SIGTERM comes and exits 0, with
one process or several."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TrainedRun
from tests.processes import child_env, start_serve, wait_until_serving


def test_help_shows_each_route_and_loads_no_server(tmp_path: Path) -> None:
    script = ("import sys; from click.testing import CliRunner; from udlc.cli import main; "
              "out = CliRunner().invoke(main, ['serve', '--help']).output; "
              "assert not [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'torch')]; "
              "print(out)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    for route in ("/v2/health/live", "/v2/models/N/infer", "/v1/predict/N", "/v1/sample/N", "/metrics",
                  "curl -F picture=@"):
        assert route in done.stdout


def test_sigterm_answers_the_request_in_flight_and_exits_0(sine_run: TrainedRun) -> None:
    """A request waiting in the batcher when SIGTERM comes is still answered, and the server exits 0."""
    import httpx

    server, url = start_serve(sine_run.run / "model.onnx", "--max-wait-ms", "1000")
    try:
        wait_until_serving(server, url)
        answers: list = []
        asking = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/predict/tiny-sine", json={"rows": [[0.5]]}, timeout=10)))
        asking.start()
        deadline = time.monotonic() + 10
        while in_flight(url) < 2:  # the predict request, and this /metrics one: the first waits in the batcher
            assert time.monotonic() < deadline, "the request never reached the server"
            time.sleep(0.01)
        server.send_signal(signal.SIGTERM)
        asking.join(10)
        output, _ = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    assert answers and answers[0].status_code == 200, output
    assert server.returncode == 0, output
    assert "POST /v1/predict/tiny-sine 200" in output


def in_flight(url: str) -> float:
    """The server's udlc_requests_in_flight gauge (its /metrics request included)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=5).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("udlc_requests_in_flight ")))


@pytest.mark.long  # two server processes start (each imports onnxruntime): the longer tier
def test_several_workers_answer_alike_and_stop_on_sigterm(sine_run: TrainedRun) -> None:
    """`--workers 2`: uvicorn's worker processes each build the app from the settings `serve` hands them, answer as
    one process does, and the whole server exits 0 on SIGTERM."""
    import httpx

    server, url = start_serve(sine_run.run / "model.onnx", "--workers", "2")
    try:
        wait_until_serving(server, url, timeout=60)
        answers = [httpx.post(f"{url}/v1/predict/tiny-sine", json={"rows": [[0.5], [-1.0]]}, timeout=10).json()
                   for _ in range(6)]
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert all(a == answers[0] for a in answers) and len(answers[0]["answers"]) == 2, answers
    assert server.returncode == 0, output
