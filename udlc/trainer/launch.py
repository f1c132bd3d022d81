"""`udlc train --devices N`: torchrun's own launcher (torch.distributed.launcher, what `torchrun --standalone
--nproc-per-node N` runs) started for the user, on this machine. When a process fails, the launcher stops the
others and this prints the one message that says why: each process of the run writes its error to a folder
(UDLC_RANK_ERRORS) instead of the terminal, and the first to fail is the cause (the others fail after it, when
their partner is gone)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from udlc.errors import UdlcError

ERRORS_ENV = "UDLC_RANK_ERRORS"


class ProcessFailed(UdlcError):
    """A process of a run on several failed: which, then its own message (rendered already) and exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def render(self) -> str:
        return str(self)


def launch(devices: int, arguments: list[str]) -> None:
    """Run `udlc <arguments>` in `devices` processes under torchrun's launcher; raise the first failure."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=devices, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its report is replaced below
    # As torchrun: the processes share the cores rather than each taking all of them (on CPU, the work itself).
    threads = str(max(1, (os.cpu_count() or 1) // devices))
    with tempfile.TemporaryDirectory(prefix="udlc-ranks-") as errors:
        saved = {key: os.environ.get(key) for key in (ERRORS_ENV, "OMP_NUM_THREADS")}
        os.environ[ERRORS_ENV] = errors  # the processes inherit both
        os.environ.setdefault("OMP_NUM_THREADS", threads)
        try:
            elastic_launch(config, sys.executable)("-m", "udlc", *arguments)
        except ChildFailedError as failed:
            raise first_failure(Path(errors), failed, devices) from None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def first_failure(errors: Path, failed: object, devices: int) -> UdlcError:
    """The cause among the processes' failures: the earliest error a process wrote about itself; else a process
    that died without a word (a signal other than the launcher's SIGTERM, a crash); else what a process said
    when it found another gone."""
    written = {e["rank"]: e for e in map(_read_error, errors.glob("*.json")) if e is not None}
    own = [e for e in written.values() if not e["partner_gone"]]
    if own:
        first = min(own, key=lambda e: e["time"])
        return ProcessFailed(f"process {first['rank']} of {devices} failed, and the others were stopped:\n"
                             f"{first['message']}", first["exit_code"])
    silent = {rank: f.exitcode for rank, f in getattr(failed, "failures", {}).items() if rank not in written}
    for rank, code in sorted(silent.items(), key=lambda item: item[1] == -signal.SIGTERM):
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"ended with exit code {code}"
        return UdlcError(f"process {rank} of {devices} {how} without a message (out of memory? killed by hand?), "
                         "and the others were stopped")
    first = min(written.values(), key=lambda e: e["time"])
    return ProcessFailed(first["message"], first["exit_code"])


def _read_error(path: Path) -> dict | None:
    """A process's written error; None for one cut short (the process was stopped as it wrote: it said nothing)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def report(message: str, exit_code: int, partner_gone: bool = False) -> bool:
    """In a process started by `launch`: write its error for the launcher to show, and say so (the process then
    prints nothing). False elsewhere. `partner_gone`: the error is another process's absence, not a cause."""
    folder = os.environ.get(ERRORS_ENV)
    if not folder:
        return False
    rank = os.environ.get("RANK", "0")
    text = json.dumps({"rank": int(rank), "time": time.time(), "message": message, "exit_code": exit_code,
                       "partner_gone": partner_gone})
    part = Path(folder, f"{rank}.json.part")  # renamed whole into place: the launcher never reads half of it
    part.write_text(text)
    part.rename(part.with_suffix(""))
    return True
