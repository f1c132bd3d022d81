"""Start-up cost of the CLI: wall time of whole processes, median of several runs each.

    udlc check examples/*.yaml   python -m udlc check examples/*.yaml (and the udlc console script)
    udlc --help                  python -m udlc --help (and the console script)

and the floor under them:

    python -c pass                                     the interpreter alone (site, the venv's .pth files)
    python -c "import yaml, click"                     the CLI's parsing libraries
    python -c "import pydantic; from pydantic import BaseModel"

Then, from one `python -X importtime -m udlc check examples/*.yaml`, the slowest imports (cumulative,
top-level packages only) and whether torch, numpy, scikit-learn or rich were imported at all
(`udlc check` should need none of them).

    .venv/bin/python bench/check_speed.py [--runs 10]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
UDLC = Path(PY).with_name("udlc")


def environments(cache_dir: str) -> dict[str, dict[str, str]]:
    """The ambient environment, and one with a warm bytecode cache kept outside the repository."""
    ambient = dict(os.environ)
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache_dir  # .pyc files go there, not into udlc/__pycache__
    return {"ambient": ambient, "pyc cache": cached}


def timed_rounds(cases: list[tuple[str, list[str]]], envs: dict[str, dict[str, str]], runs: int) -> dict:
    """Wall seconds per (case, env): one untimed run each, then `runs` rounds, each running every case
    once, so that drift in machine load spreads over all cases alike."""
    keys = [(label, cmd, env) for label, cmd in cases for env in envs]
    rcs = {}
    for label, cmd, env in keys:
        rcs[label, env] = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, env=envs[env]).returncode
    times: dict = {(label, env): [] for label, _, env in keys}
    for r in range(runs):
        for label, cmd, env in (keys if r % 2 == 0 else keys[::-1]):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, env=envs[env])
            times[label, env].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v), rcs[k]) for k, v in times.items()}


def import_profile(cmd: list[str], env: dict[str, str]) -> tuple[list[tuple[float, str]], list[tuple[float, str]], set]:
    """From -X importtime: modules imported by the program itself by cumulative ms, all modules by
    self ms, and the set of every module imported."""
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], check=False, cwd=ROOT, capture_output=True, text=True,
                         env=env).stderr
    top, self_ms, seen = [], [], set()
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        own, cumulative, indent, name = int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)
        seen.add(name)
        self_ms.append((own / 1e3, name))
        if indent == 1:
            top.append((cumulative / 1e3, name))
    return sorted(top, reverse=True), sorted(self_ms, reverse=True), seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()

    examples = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.yaml"))
    shipped = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").rglob("*.yaml"))
    cases = [
        ("python -c pass", [PY, "-c", "pass"]),
        ("python -c 'import yaml, click'", [PY, "-c", "import yaml, click"]),
        ("python -c 'import pydantic; from pydantic import BaseModel'",
         [PY, "-c", "import pydantic; from pydantic import BaseModel"]),
        (FLOOR, [PY, "-c", "import pydantic, yaml, click; from pydantic import BaseModel"]),
        (MODEL, [PY, "-c", "import pydantic, yaml, click; from pydantic import BaseModel\n"
                           "class M(BaseModel):\n    a: int = 0\nM(a=1)"]),
        (ONE, [PY, "-m", "udlc", "check", "examples/digits-cnn.yaml"]),
        (f"{ALL}  ({len(shipped)} files)", [PY, "-m", "udlc", "check", *shipped]),
        ("python -c 'import udlc'", [PY, "-c", "import udlc"]),
        ("python -m udlc --help", [PY, "-m", "udlc", "--help"]),
        ("udlc --help  (console script)", [str(UDLC), "--help"]),
        (f"python -m udlc check examples/*.yaml  ({len(examples)} files)", [PY, "-m", "udlc", "check", *examples]),
        ("udlc check examples/*.yaml  (console script)", [str(UDLC), "check", *examples]),
    ]
    cases = [(label, cmd) for label, cmd in cases if cmd[0] != str(UDLC) or UDLC.exists()]
    print(f"{PY} · {args.runs} rounds (after one untimed run each) · {os.cpu_count()} CPUs · "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')} · "
          f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="udlc-bench-pyc-") as cache:
        envs = environments(cache)
        results = timed_rounds(cases, envs, args.runs)
        check_cmd = [PY, "-m", "udlc", "check", *examples]
        profiles = {env: import_profile(check_cmd, envs[env]) for env in envs}
        split = {env: in_process(examples, envs[env], args.runs) for env in envs}

    env_names = list(envs)
    print()
    print("wall time of the whole process, ms: median (min) over the rounds; '- floor' = median minus the")
    print("median of `python -c pass` in the same environment. ambient = this environment as is; pyc cache =")
    print("PYTHONDONTWRITEBYTECODE unset and PYTHONPYCACHEPREFIX=<temp dir>, so compiled bytecode is reused.")
    head = f"{'process':60s}" + "".join(f" | {e:^24s}" for e in env_names) + " | exit"
    print(head)
    print(f"{'':60s}" + "".join(f" | {'median':>7s} {'min':>6s} {'- floor':>8s}" for _ in env_names) + " |")
    print("-" * len(head))
    for label, _ in cases:
        cells = []
        for env in env_names:
            med, low, _ = results[label, env]
            floor = results[cases[0][0], env][0]
            cells.append(f" | {med * 1e3:7.0f} {low * 1e3:6.0f} {(med - floor) * 1e3:8.0f}")
        print(f"{label:60s}" + "".join(cells) + f" | {results[label, env_names[0]][2]}")

    for env in env_names:
        top, self_ms, seen = profiles[env]
        print()
        print(f"[{env}] python -X importtime -m udlc check examples/*.yaml (one run):")
        print("  imported by the program itself, cumulative ms: " +
              ", ".join(f"{name} {ms:.0f}" for ms, name in top[:6]))
        print("  largest self times, ms: " + ", ".join(f"{name} {ms:.1f}" for ms, name in self_ms[:8]))
        udlc_self = sum(ms for ms, name in self_ms if name == "udlc" or name.startswith("udlc."))
        print(f"  udlc's own modules, self ms in all: {udlc_self:.0f}")
        heavy = [m for m in ("torch", "numpy", "sklearn", "rich", "onnx", "onnxruntime", "safetensors") if m in seen]
        print(f"  heavy packages imported by `udlc check`: {', '.join(heavy) if heavy else 'none'}")
    print()
    print("inside one process (median over the rounds, ms): importing udlc.cli + udlc.tasks, then")
    print("compile_spec on every example (first pass, then a second pass over the same files):")
    for env in env_names:
        print(f"  [{env}] " + ", ".join(f"{k} {v:.0f}" for k, v in split[env].items()))
    goals(results, [label for label, _ in cases])
    print(f"load average after: {os.getloadavg()}")


FLOOR = "python -c 'import pydantic, yaml, click' (the import floor)"
MODEL = "  ... and one pydantic model defined and validated"
ONE = "python -m udlc check examples/digits-cnn.yaml"
ALL = "python -m udlc check examples/**/*.yaml"


def goals(results: dict, labels: list[str]) -> None:
    """Issue 19's figures for `check`, with bytecode cached: one spec within 150 ms and 1.7x the import floor;
    every shipped spec in one call within 400 ms."""
    every = next(label for label in labels if label.startswith(ALL))
    floor, model, one, whole = (results[label, "pyc cache"][0] * 1e3 for label in (FLOOR, MODEL, ONE, every))
    print()
    print("goals (pyc cache, medians):")
    print(f"  one spec: {one:.0f} ms (goal 150: {'met' if one <= 150 else 'not met'}); {one / floor:.2f}x the "
          f"import floor of {floor:.0f} ms (goal 1.7x: {'met' if one <= 1.7 * floor else 'not met'})")
    print(f"  every shipped spec in one call: {whole:.0f} ms (goal 400: {'met' if whole <= 400 else 'not met'})")
    # pydantic imports most of its machinery (fields, schema generation, the plugin loader) with the first model a
    # process defines, so that cost sits under any check that validates with pydantic, before udlc's own work.
    print(f"  pydantic's first model costs {model - floor:.0f} ms over the floor ({model / floor:.2f}x); under the "
          f"1.7x goal that leaves {1.7 * floor - model:.0f} ms for udlc's own work, which takes {one - model:.0f} ms")


IN_PROCESS = """
import json, sys, time
t0 = time.perf_counter()
import udlc.cli, udlc.tasks as p
t1 = time.perf_counter()
for f in sys.argv[1:]:
    p.compile_spec(f)
t2 = time.perf_counter()
for f in sys.argv[1:]:
    p.compile_spec(f)
t3 = time.perf_counter()
print(json.dumps({"imports": (t1 - t0) * 1e3, "first compile": (t2 - t1) * 1e3, "second compile": (t3 - t2) * 1e3}))
"""


def in_process(examples: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    rows = []
    for _ in range(runs):
        out = subprocess.run([PY, "-c", IN_PROCESS, *examples], check=False, cwd=ROOT, capture_output=True, text=True, env=env)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


if __name__ == "__main__":
    main()
