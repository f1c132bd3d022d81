"""`udlc` in a subprocess, as a user runs it: the command line, its environment, waiting for a run's
checkpoints; and the CLI jobs that start as soon as collection shows a test needs them (the pytest hooks
below are conftest.py's, which imports them).

Nothing here imports torch: other test files check that `udlc check` never needs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

# Every subprocess runs torch on one thread: on a small shared machine two threads fighting over two
# busy cores make a tiny MLP step ten times slower, and one thread changes no result a test compares.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1",
             "COLUMNS": "200"}
CLI_TIMEOUT = 300
# The tests in this process too: two xdist workers and the training subprocesses share two cores.
for _name, _value in CHILD_ENV.items():
    if _name.endswith("_THREADS"):
        os.environ.setdefault(_name, _value)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **CHILD_ENV, **(extra or {})}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def udlc_argv(*args: Any) -> list[str]:
    return [sys.executable, "-m", "udlc", *map(str, args)]


def cli(*args: Any, cwd: Path, timeout: float = CLI_TIMEOUT, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run `udlc ARGS` in a fresh interpreter, as a user would, and capture its output."""
    return subprocess.run(udlc_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=child_env(env))


def start_cli(*args: Any, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`udlc ARGS` in the background (for runs that go on while a test does something else)."""
    return subprocess.Popen(udlc_argv(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(env))


def finish(proc: subprocess.Popen, args: Iterable[Any] = (), timeout: float = CLI_TIMEOUT
           ) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(list(map(str, args)), proc.returncode, out, err)


def describe(result: subprocess.CompletedProcess) -> str:
    """What a failed assertion shows about a CLI call."""
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"



def last_epoch(run_root: Path) -> int:
    """The epoch of the newest checkpoints/last under `run_root` (runs/<name>/<id>/); 0 before the first."""
    for path in run_root.glob("*/*/checkpoints/last.json"):
        try:
            return int(json.loads(path.read_text())["position"]["epoch"])
        except (ValueError, KeyError):  # not there yet
            return 0
    return 0


def wait_for_checkpoint(proc: subprocess.Popen, run_root: Path, epoch: int, seconds: float = 240) -> None:
    """Until `proc`'s run under `run_root` has written the checkpoint of `epoch` (for a test to kill it then)."""
    deadline = time.monotonic() + seconds
    while last_epoch(run_root) < epoch:
        assert proc.poll() is None, f"training ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no checkpoint for epoch {epoch} in time"
        time.sleep(0.05)


def run_folder(result: subprocess.CompletedProcess, cwd: Path) -> Path:
    """The run folder `udlc train` prints as its last line of stdout."""
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, describe(result)
    run = Path(lines[-1])
    return run if run.is_absolute() else cwd / run


# ---- CLI jobs started early ------------------------------------------------------------------------
# Most of a `udlc` subprocess's time is importing torch and training on one core, while the in-process
# tests (the layer exports) use the other. A job registered here under a fixture's name starts as soon
# as collection shows a selected test needs that fixture; the fixture then just waits for it.
#
# Under pytest-xdist every worker collects every test, so a job is claimed once for the whole run (a file
# made with O_EXCL in a folder the workers share): the worker that claims it starts it, a thread of that
# worker writes its results when it ends, and any worker whose tests need it reads them from there.

# A job writes its files into a folder and returns {key: udlc arguments (a tuple)}, or {key: a whole command line
# (a list), for a command that runs udlc itself, as torchrun does}.
Job = Callable[[Path], dict[str, tuple | list]]
_JOBS: dict[str, Job] = {}
_running: list[subprocess.Popen] = []  # the processes this worker started
_waiters: list[threading.Thread] = []
_finished: dict[str, tuple[Path, dict[str, subprocess.CompletedProcess]]] = {}


def early_job(name: str) -> Callable[[Job], Job]:
    """Register a job for the fixture `name` (call it at import time, in a test module or here)."""

    def register(job: Job) -> Job:
        _JOBS[name] = job
        return job

    return register


def pytest_configure(config: pytest.Config) -> None:
    """The run's id, chosen here so that the xdist controller knows the workers' shared folder too."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        run = getattr(config.option, "testrunuid", None) or uuid.uuid4().hex
        if hasattr(config.option, "testrunuid"):
            config.option.testrunuid = run  # xdist hands it to every worker as PYTEST_XDIST_TESTRUNUID
        os.environ["PYTEST_XDIST_TESTRUNUID"] = run


def _shared_root() -> Path:
    """The folder of this test run's jobs, the same for every xdist worker of the run."""
    run = os.environ["PYTEST_XDIST_TESTRUNUID"]
    root = Path(tempfile.gettempdir()) / f"udlc-test-jobs-{run}"
    root.mkdir(exist_ok=True)
    return root


def _claim(name: str) -> None:
    """Start job `name` unless a worker of this run has: its folder is the shared root's `name`."""
    root = _shared_root()
    try:
        os.close(os.open(root / f"{name}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    folder = root / name
    folder.mkdir()
    commands = _JOBS[name](folder)
    procs = {k: (args, start_cli(*args, cwd=folder) if isinstance(args, tuple) else
                 subprocess.Popen(args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=child_env()))
             for k, args in commands.items()}
    _running.extend(proc for _, proc in procs.values())

    def wait() -> None:  # every command's outcome, written whole (renamed into place) once all have ended
        done = {k: finish(proc, args) for k, (args, proc) in procs.items()}
        results = {k: {"args": r.args, "returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
                   for k, r in done.items()}
        (root / f"{name}.json.part").write_text(json.dumps(results))
        (root / f"{name}.json.part").rename(root / f"{name}.json")

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    _waiters.append(waiter)


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            if name in _JOBS:
                _claim(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        for proc in _running:
            if proc.poll() is None:
                proc.kill()
    for waiter in _waiters:  # another worker may still need a job this one started
        waiter.join(CLI_TIMEOUT)
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or a run without xdist) ends last
        shutil.rmtree(_shared_root(), ignore_errors=True)


def job_results(name: str) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """The folder of job `name` and its finished commands (started now if no worker has started it)."""
    if name not in _finished:
        _claim(name)
        root = _shared_root()
        deadline = time.monotonic() + CLI_TIMEOUT
        while not (root / f"{name}.json").is_file():
            assert time.monotonic() < deadline, f"job {name} did not finish in {CLI_TIMEOUT} s"
            time.sleep(0.05)
        results = json.loads((root / f"{name}.json").read_text())
        _finished[name] = (root / name, {k: subprocess.CompletedProcess(r["args"], r["returncode"], r["stdout"],
                                                                        r["stderr"]) for k, r in results.items()})
    return _finished[name]


# `udlc` in an interpreter where torch cannot be imported: what the server must never need
NO_TORCH = "import sys; sys.modules['torch'] = None; from udlc.cli import main; main()"


def start_serve(model: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """A real `udlc serve MODEL` (torch blocked) on a free port, and its URL; it may still be starting: see
    wait_until_serving. Its output (one line a request) is read when it ends."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", NO_TORCH, "serve", str(model), "--port", str(port), *options],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env())
    return server, f"http://127.0.0.1:{port}"


def wait_until_serving(server: subprocess.Popen, url: str, timeout: float = 30) -> None:
    """Until the `udlc serve` process `server` answers ready at `url` (it fails the test if the process ends
    or `timeout` seconds pass first, with what it printed)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, server.stdout.read() if server.stdout else ""
        time.sleep(0.05)
