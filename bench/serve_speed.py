"""`udlc serve` over loopback: requests/s and latency against bare onnxruntime in process, resident memory over
20,000 requests, and (where the server has the route) streamed generation against `udlc generate`.

Digits CNN. examples/digits-cnn.yaml trained for one epoch (`udlc train --set train.epochs=1` in a temporary
folder: accuracy does not matter here, the model's size does; 75k parameters, model.onnx ~320 KiB), then:

  bare ort      the same file opened as the server opens it (udlc.runtime.files.open_file: onnxruntime's default
                threads), in this process, on the same rows (scikit-learn's digits as float32 (N, 1, 8, 8)):
                one row per session.run, and 64 rows per run (the floor: what onnxruntime alone can do);
  udlc serve    `udlc serve model.onnx` as a subprocess on a free loopback port, once with --max-batch 1 (no
                batching) and once with the defaults (--max-batch 32 --max-wait-ms 2), each at concurrency 1, 8
                and 64 (400, 1,500 and 3,000 requests; --scale multiplies them): an asyncio client, one worker per
                concurrent request, each with its own httpx.AsyncClient and kept-alive connection (one client
                shared by 64 workers spends more CPU in its connection pool than the server does answering),
                sends POST /v1/predict/digits-cnn with one row, {"rows": [[64 values]]}, per request, the bodies
                encoded before the clock starts. The clock starts once every connection is open and has made a
                warm-up request. Latency is per request as the client sees it (send to the whole answer read);
                requests/s is requests over the wall time of the point; the client's and the server's CPU time
                over that span, per request, and the mean rows per onnxruntime call (the server's /metrics) are
                printed beside them. Any answer but 200 counts as failed.
  ceiling       the same client against the fastest route any Python server on this stack can have: uvicorn
                (httptools, uvloop, one process) and Starlette reading the JSON body and answering a constant, at
                concurrency 64: what bounds one-row requests on this machine before udlc does any work.
  memory        a fresh server (defaults) answers 20,000 requests at concurrency 8; its resident memory (VmRSS of
                /proc/<pid>/status) after the first 1,000 and at the end (goal: within 10 %; zero failed).

char-lm streaming, where `udlc serve --help` lists POST /v1/generate/N (server-sent events): examples/char-lm.yaml
trained for one epoch on 20,000 characters and exported, then 3 rounds of: `udlc generate --stats` on the file
(its own tokens/s: a fresh process's session), the same code warm in this process (LanguageModelFile.generate),
one stream, and 8 concurrent streams (tokens over the wall time, tokens counted by each stream's `done` event);
500 new tokens each, temperature 1, top_k 40; medians.

The client runs on the same machine as the server and takes CPU from it. Loopback only; every count is bounded.

    .venv/bin/python bench/serve_speed.py [--scale 1.0] [--memory-requests 20000] [--new-tokens 500]
                                          [--skip-memory] [--skip-generate] [--skip-digits]
                                          [--model DIGITS.onnx] [--lm-model CHAR_LM.onnx]

A benchmark: it prints figures and the issue's goals beside them, and asserts nothing about speed (~2-2.5 min).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_harness import CeilingServer, UDLC, Server, load, pct, rss_mib  # bench/serve_harness.py

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 64)
REQUESTS = {1: 400, 8: 1500, 64: 3000}  # per point, before --scale
BARE_CALLS = 3000  # one-row calls; 64-row calls: a tenth as many
REPEATS = 3  # generation: rounds of the four measurements, medians


# ---- digits ----------------------------------------------------------------------------------------------


def train_digits(tmp: Path) -> Path:
    t0 = time.perf_counter()
    subprocess.run([UDLC, "train", str(ROOT / "examples" / "digits-cnn.yaml"), "--set", "train.epochs=1",
                    "--out", str(tmp / "runs")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (model,) = (tmp / "runs").glob("digits-cnn/*/model.onnx")
    print(f"trained and exported examples/digits-cnn.yaml (1 epoch) in {time.perf_counter() - t0:.1f} s: "
          f"{model.stat().st_size / 1024:.0f} KiB", flush=True)
    return model


def digits_rows():
    import numpy as np
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)  # (1797, 64): the rows the requests carry


def bare(model: Path, rows, calls: int) -> dict:
    """onnxruntime in this process on the same rows, opened as the server opens the file."""
    from udlc.runtime.files import open_file

    session = open_file(model).session
    name = session.get_inputs()[0].name
    x = rows.reshape(-1, 1, 8, 8)
    out = {}
    for batch, n in ((1, calls), (64, max(calls // 10, 50))):
        for i in range(20):  # warm-up
            session.run(None, {name: x[:batch]})
        times = []
        starts = [(i * batch) % (len(x) - batch) for i in range(n)]
        wall0 = time.perf_counter()
        for s in starts:
            t0 = time.perf_counter()
            session.run(None, {name: x[s:s + batch]})
            times.append(time.perf_counter() - t0)
        wall = time.perf_counter() - wall0
        out[batch] = {"rows_per_s": n * batch / wall, "p50": pct(times, 50), "p99": pct(times, 99), "n": n}
    return out


def digits(model: Path, tmp: Path, scale: float) -> tuple[dict, dict]:
    rows = digits_rows()
    bodies = [json.dumps({"rows": [[float(v) for v in row]]}).encode() for row in rows]
    print(f"bare onnxruntime: {BARE_CALLS} one-row calls, {BARE_CALLS // 10} 64-row calls ...", flush=True)
    floor = bare(model, rows, BARE_CALLS)
    served: dict = {}
    for label, args in (("--max-batch 1", ["--max-batch", "1"]), ("batching (defaults)", [])):
        server = Server(model, args, tmp / f"serve-{len(served)}.log")
        url = f"{server.url}/v1/predict/digits-cnn"
        try:
            for c in CONCURRENCY:
                n = max(int(REQUESTS[c] * scale), 2 * c)
                b0 = batch_counts(server.url)
                res = load(url, bodies, c, n, server.pid)
                b1 = batch_counts(server.url)
                res["mean_batch"] = (b1[0] - b0[0]) / max(b1[1] - b0[1], 1)
                served[(label, c)] = res
                print(f"  {label:20s} concurrency {c:3d}: {n:5d} requests, {n / res['wall']:7.1f} req/s, p50 "
                      f"{pct(res['latencies'], 50) * 1e3:6.1f} ms, p99 {pct(res['latencies'], 99) * 1e3:6.1f} ms, "
                      f"mean batch {res['mean_batch']:.1f}, failed {res['failed']}", flush=True)
        finally:
            served[(label, "exit")] = server.stop()
    ceiling = CeilingServer(tmp / "serve-ceiling.log")
    try:
        n = max(int(REQUESTS[64] * scale), 128)
        served["ceiling"] = load(f"{ceiling.url}/v1/predict/ceiling", bodies, 64, n, ceiling.pid)
        print(f"  ceiling (uvicorn + Starlette, JSON read, constant answer) concurrency 64: "
              f"{n / served['ceiling']['wall']:7.1f} req/s", flush=True)
    finally:
        ceiling.stop()
    return floor, served


def batch_counts(url: str) -> tuple[float, float]:
    """The server's udlc_batch_size histogram: (samples, onnxruntime calls) so far."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = lambda key: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()  # noqa: E731
                            if line.startswith(f"udlc_batch_size_{key}"))
    return total("sum"), total("count")


# ---- memory ----------------------------------------------------------------------------------------------


def memory(model: Path, tmp: Path, n: int, concurrency: int = 8) -> dict:
    rows = digits_rows()
    bodies = [json.dumps({"rows": [[float(v) for v in row]]}).encode() for row in rows]
    server = Server(model, [], tmp / "serve-memory.log")
    marks: dict[str, float] = {"start": rss_mib(server.pid)}

    def on_done(count: int) -> None:
        if count == 1000:
            marks["1000"] = rss_mib(server.pid)

    try:
        res = load(f"{server.url}/v1/predict/digits-cnn", bodies, concurrency, n, server.pid, warmup=0,
                   on_done=on_done)
        marks["end"] = rss_mib(server.pid)
        hwm = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{server.pid}/status").read_text()
                   .splitlines() if line.startswith("VmHWM:"))
    finally:
        code = server.stop()
    return {**res, "rss": marks, "hwm": hwm, "exit": code}


# ---- char-lm streaming -----------------------------------------------------------------------------------


def has_generate_route() -> bool:
    text = subprocess.run([UDLC, "serve", "--help"], capture_output=True, text=True).stdout
    return "/v1/generate" in text


def train_char_lm(tmp: Path) -> Path:
    t0 = time.perf_counter()
    subprocess.run([UDLC, "train", str(ROOT / "examples" / "char-lm.yaml"), "--set", "train.epochs=1",
                    "--set", "data.max_chars=20000", "--out", str(tmp / "runs")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run,) = (tmp / "runs").glob("char-lm*/*/run.json")
    if not (run.parent / "model.onnx").exists():  # the spec does not export at the end of training
        subprocess.run([UDLC, "export", str(run.parent)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    model = run.parent / "model.onnx"
    print(f"trained and exported examples/char-lm.yaml (1 epoch, 20,000 characters) in "
          f"{time.perf_counter() - t0:.1f} s: {model.stat().st_size / 1024:.0f} KiB", flush=True)
    return model


async def _streams(url: str, body: dict, concurrency: int) -> dict:
    """`concurrency` server-sent-event streams at once. Each token is a `data:` line of the default event (and a
    last half character, held back, one more); the closing `event: done` says how many tokens were made."""
    import httpx

    async with httpx.AsyncClient(timeout=120) as client:
        async def one(seed: int) -> tuple[int, float, float, int]:
            t0 = time.perf_counter()
            first, events, event, tokens = None, 0, "message", -1
            async with client.stream("POST", url, json={**body, "seed": seed}) as r:
                if r.status_code != 200:
                    raise SystemExit(f"POST {url}: {r.status_code} {(await r.aread())[:300]!r}")
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        if event == "message":
                            events += 1
                            if first is None:
                                first = time.perf_counter() - t0
                        elif event == "done":
                            tokens = int(json.loads(line[5:])["tokens"])
                        elif event == "error":
                            raise SystemExit(f"POST {url}: the stream ended with {line[5:300]}")
                    elif not line:
                        event = "message"
            if tokens < 0:
                raise SystemExit(f"POST {url}: the stream ended without its `done` event")
            return tokens, first if first is not None else float("nan"), time.perf_counter() - t0, events

        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(concurrency)))
        wall = time.perf_counter() - start
    return {"tokens": sum(r[0] for r in results), "wall": wall, "first": [r[1] for r in results],
            "per_stream": [r[0] / r[2] for r in results], "events": sum(r[3] for r in results)}


def generation(tmp: Path, new_tokens: int, model: Path | None) -> dict:
    """Rounds of: `udlc generate` (the CLI), the same code warm in this process, one stream, 8 streams: what they
    compare runs under the same load, round by round."""
    import httpx

    from udlc.runtime.generate import LanguageModelFile

    model = model or train_char_lm(tmp)
    prompt = "def main():\n    "
    lm = LanguageModelFile(model)  # the code `udlc generate` runs, in this process: warm after its first call
    lm.generate(prompt, new_tokens, 1.0, 40, 0)
    server = Server(model, [], tmp / "serve-lm.log")
    cli_tps, cli_wall, warm, ones, eights = [], [], [], [], []
    try:
        (name,) = [m["name"] for m in httpx.get(f"{server.url}/v1/models").json()["models"]]
        url = f"{server.url}/v1/generate/{name}"
        body = {"prompt": prompt, "max_new_tokens": new_tokens, "temperature": 1.0, "top_k": 40}
        asyncio.run(_streams(url, body, 1))  # warm-up
        for seed in range(REPEATS):
            # udlc generate: the CLI on the same file, sampling as the requests do; --stats: its own tokens/s
            t0 = time.perf_counter()
            done = subprocess.run([UDLC, "generate", str(model), "--prompt", prompt, "--max-new-tokens",
                                   str(new_tokens), "--temperature", "1", "--top-k", "40", "--seed", str(seed),
                                   "--stats"], capture_output=True, text=True)
            cli_wall.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"udlc generate failed: {done.stderr[-1000:]}")
            found = re.search(r"([\d.]+) tokens/s", done.stderr)
            cli_tps.append(float(found.group(1)) if found else float("nan"))
            warm.append(lm.generate(prompt, new_tokens, 1.0, 40, seed).tokens_per_second)
            ones.append(asyncio.run(_streams(url, body, 1)))
            eights.append(asyncio.run(_streams(url, body, 8)))
    finally:
        server.stop()
    middle = lambda runs: sorted(runs, key=lambda r: r["tokens"] / r["wall"])[len(runs) // 2]  # noqa: E731
    return {"cli_tps": statistics.median(cli_tps), "warm_tps": statistics.median(warm),
            "cli_wall": statistics.median(cli_wall), "new": new_tokens, "one": middle(ones), "eight": middle(eights)}


# ---- main ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the requests per point (default 1)")
    ap.add_argument("--memory-requests", type=int, default=20_000, help="requests of the memory run (20000)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--new-tokens", type=int, default=500, help="tokens per stream (default 500)")
    ap.add_argument("--model", type=Path, help="a digits-cnn model.onnx to serve instead of training one")
    ap.add_argument("--lm-model", type=Path, help="a char-lm model.onnx to serve instead of training one")
    ap.add_argument("--skip-digits", action="store_true", help="streaming only (with --skip-memory: a check)")
    args = ap.parse_args()

    import onnxruntime

    print(f"Python {sys.version.split()[0]} · onnxruntime {onnxruntime.__version__} · {os.cpu_count()} CPUs · "
          f"load average before: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="udlc-bench-serve-") as name:
        tmp = Path(name)
        model = None if args.skip_digits else args.model or train_digits(tmp)
        floor, served = digits(model, tmp, args.scale) if model else (None, None)
        mem = None if args.skip_memory or not model else memory(model, tmp, args.memory_requests)
        gen = None
        generate_note = ""
        if args.skip_generate:
            generate_note = "left out (--skip-generate)"
        elif not has_generate_route():
            generate_note = "left out: `udlc serve --help` lists no POST /v1/generate/N route"
        else:
            gen = generation(tmp, args.new_tokens, args.lm_model)

    if floor is not None:
        report_digits(floor, served, mem)
    print()
    if gen is None:
        print(f"char-lm streaming: {generate_note}")
    else:
        report_generation(gen)
    print(f"whole bench {time.perf_counter() - started:.0f} s · load average after: {os.getloadavg()}")


def report_digits(floor: dict, served: dict, mem: dict | None) -> None:
    print()
    print("digits CNN, POST /v1/predict/digits-cnn, one row per request (bare: rows per session.run)")
    head = f"{'':34s} | {'conc.':>5s} {'requests':>8s} | {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} | " \
           f"{'CPU ms/req: client':>18s} {'server':>6s} {'batch':>5s} | failed"
    print(head)
    print("-" * len(head))
    for batch in (1, 64):
        f = floor[batch]
        print(f"{f'bare onnxruntime, {batch} row(s)/call':34s} | {'':5s} {f['n']:8d} | {f['rows_per_s']:8.0f} "
              f"{f['p50'] * 1e3:7.2f} {f['p99'] * 1e3:7.2f} | {'':18s} {'':6s} {batch:5d} |")
    for label in ("--max-batch 1", "batching (defaults)"):
        for c in CONCURRENCY:
            r = served[(label, c)]
            print(f"{f'udlc serve, {label}':34s} | {c:5d} {r['n']:8d} | {r['n'] / r['wall']:8.1f} "
                  f"{pct(r['latencies'], 50) * 1e3:7.2f} {pct(r['latencies'], 99) * 1e3:7.2f} | "
                  f"{r['client_cpu'] / r['n'] * 1e3:18.2f} {r['server_cpu'] / r['n'] * 1e3:6.2f} "
                  f"{r['mean_batch']:5.1f} | {r['failed']}")
    print("    bare req/s = rows/s over the wall time of the calls; p50/p99 = one session.run. Served: latency as "
          "the client sees it; CPU ms/req = CPU time of the client (this process) and of the server process over the "
          "timed span, per request; batch = mean rows per onnxruntime call (the server's /metrics). The client "
          "runs on the same cores as the server.")
    print(f"    server exit codes on SIGTERM: {served[('--max-batch 1', 'exit')]}, "
          f"{served[('batching (defaults)', 'exit')]}")

    print()
    print("goals (issue 21, section 4):")
    b64 = served[("batching (defaults)", 64)]
    ratio = (b64["n"] / b64["wall"]) / floor[64]["rows_per_s"]
    print(f"  concurrency 64 with batching >= 0.5x bare batched throughput: {b64['n'] / b64['wall']:.0f} / "
          f"{floor[64]['rows_per_s']:.0f} = {ratio:.3f}x — {'met' if ratio >= 0.5 else 'NOT met'}")
    top = served["ceiling"]["n"] / served["ceiling"]["wall"]
    print(f"    the ceiling here, a route that only reads the JSON and answers a constant (uvicorn with httptools and "
          f"uvloop, Starlette, one process, the same client): {top:.0f} req/s at concurrency 64 = "
          f"{top / floor[64]['rows_per_s']:.3f}x bare batched; udlc serve reaches {b64['n'] / b64['wall'] / top:.2f} "
          "of that ceiling")
    for label in ("batching (defaults)", "--max-batch 1"):
        p99 = pct(served[(label, 8)]["latencies"], 99) * 1e3
        print(f"  p99 at concurrency 8 <= 20 ms ({label}): {p99:.1f} ms — {'met' if p99 <= 20 else 'NOT met'}")
    if mem is not None:
        rss = mem["rss"]
        growth = (rss["end"] - rss["1000"]) / rss["1000"]
        print(f"  {mem['n']:,} requests (concurrency 8, batching): resident memory {rss['start']:.1f} MiB at start, "
              f"{rss['1000']:.1f} MiB after 1,000, {rss['end']:.1f} MiB at the end ({growth:+.1%}; peak "
              f"{mem['hwm']:.1f} MiB) — {'met' if abs(growth) <= 0.10 else 'NOT met'}; {mem['failed']} failed "
              f"— {'met' if mem['failed'] == 0 else 'NOT met'}; {mem['n'] / mem['wall']:.0f} req/s, exit "
              f"{mem['exit']}")
    else:
        print("  memory: left out (--skip-memory)")


def report_generation(gen: dict) -> None:
    one, eight = gen["one"], gen["eight"]
    print(f"char-lm streaming (POST /v1/generate, server-sent events), {gen['new']} new tokens per stream, "
          f"temperature 1, top_k 40, the file's key/value cache; medians of {REPEATS} rounds (each runs all four):")
    print(f"  udlc generate (CLI, same file): {gen['cli_tps']:7.1f} tokens/s as its --stats reports "
          f"({gen['cli_wall']:.1f} s wall for the command, start-up included; a fresh session's first tokens)")
    print(f"  the same, in process, warmed:   {gen['warm_tps']:7.1f} tokens/s (udlc.runtime.generate."
          f"LanguageModelFile.generate after one warm-up call)")
    print(f"  udlc serve, 1 stream:           {one['tokens'] / one['wall']:7.1f} tokens/s, first token after "
          f"{one['first'][0] * 1e3:.0f} ms")
    print(f"  udlc serve, 8 streams at once:  {eight['tokens'] / eight['wall']:7.1f} tokens/s in all, "
          f"{statistics.median(eight['per_stream']):.1f} per stream (median), first token after "
          f"{statistics.median(eight['first']) * 1e3:.0f} ms (median)")
    print(f"    tokens = the count in each stream's `done` event ({one['tokens'] + eight['tokens']} in those two "
          f"runs, in {one['events'] + eight['events']} token events: a last half character is one more)")


if __name__ == "__main__":
    main()
