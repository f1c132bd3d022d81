"""What bench/serve_speed.py measures with: a real `udlc serve` subprocess (Server), an asyncio HTTP load client
(load), and a process's CPU time and resident memory from /proc. Figures only; nothing here asserts."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

UDLC = str(Path(sys.executable).parent / "udlc")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`udlc serve FILE --port P ARGS` as a subprocess, ready once /v2/health/ready answers."""

    def __init__(self, model: Path, args: list[str], log: Path):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        command = getattr(self, "command", None)
        command = [*command, str(self.port)] if command else [UDLC, "serve", str(model), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"udlc serve exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"udlc serve did not answer within 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.pid = self.proc.pid  # `udlc serve` runs uvicorn in its own process (workers = 1)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


# The fastest any Python server on udlc serve's stack can answer here: uvicorn (httptools, uvloop, one process) and
# Starlette, a route that reads the JSON body and answers a constant — no model, no batching, no udlc.
CEILING_APP = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def answer(request):
    json.loads(await request.body())
    return Response(b'{"answers": [{"prediction": "0"}]}', media_type="application/json")

async def ready(request):
    return Response(b"{}", media_type="application/json")

app = Starlette(routes=[Route("/v1/predict/ceiling", answer, methods=["POST"]), Route("/v2/health/ready", ready)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


class CeilingServer(Server):
    """CEILING_APP as a subprocess: what bounds one-row requests on this machine before udlc does anything."""

    def __init__(self, log: Path):
        self.command = [sys.executable, "-c", CEILING_APP]
        super().__init__(Path("-"), [], log)


# ---- the client ------------------------------------------------------------------------------------------


async def _load(url: str, bodies: list[bytes], concurrency: int, n: int, warmup: int, server_pid: int | None,
                on_done=None) -> dict:
    """n POSTs of bodies (round robin) by `concurrency` workers, each with its own httpx.AsyncClient holding one
    kept-alive connection (one client shared by 64 workers spends more CPU in its connection pool than the
    server spends answering)."""
    import httpx

    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    failed = 0
    counter = iter(range(n))
    ready = asyncio.Event()
    opened = 0

    async def one(client: httpx.AsyncClient, i: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        try:
            r = await client.post(url, content=bodies[i % len(bodies)], headers=headers)
            status = r.status_code
        except httpx.HTTPError:
            status = -1
        return time.perf_counter() - t0, status

    async def worker(k: int) -> None:
        nonlocal failed, opened
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            for i in range(max(1, warmup // concurrency)):  # the connection opened, the server warmed up
                await one(client, k + i)
            opened += 1
            if opened == concurrency:
                ready.set()
            await ready.wait()
            for i in counter:
                seconds, status = await one(client, i)
                latencies.append(seconds)
                failed += status != 200
                if on_done is not None:
                    on_done(len(latencies))

    async def clock() -> None:
        await ready.wait()
        start[:] = time.perf_counter(), time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0

    start = [0.0, 0.0, 0.0]
    await asyncio.gather(clock(), *(worker(k) for k in range(concurrency)))
    wall, client_cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    server_cpu = cpu_seconds(server_pid) - start[2] if server_pid else float("nan")
    return {"n": n, "wall": wall, "latencies": latencies, "failed": failed, "client_cpu": client_cpu,
            "server_cpu": server_cpu}


def load(url: str, bodies: list[bytes], concurrency: int, n: int, server_pid: int | None = None,
         warmup: int = 20, on_done=None) -> dict:
    """The timed span starts once every worker has its connection open and warmed up; CPU seconds (this
    process's, the server's) over that span only."""
    return asyncio.run(_load(url, bodies, concurrency, n, warmup, server_pid, on_done))
