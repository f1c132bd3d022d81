"""Inference latency at batch 1: the exported ONNX file in onnxruntime (CPU) against torch eager.

For the two bench models (bench/specs/digits-mlp.yaml and digits-cnn.yaml), builds the network with
udlc.build (seeded init; latency does not depend on trained values), exports it with
udlc.exporter.onnx.export_module to a temporary folder (checker + parity gate included), then times
single calls on one sample:

  ort    onnxruntime.InferenceSession(path) with default options: session.run(None, {name: array})
  torch  model.eval() under torch.inference_mode(): model(tensor)

Calls are timed one by one (perf_counter_ns) after a warm-up, in alternating blocks so that drift in
machine load hits both alike; it prints the median and the minimum per call, and ratio = ort / torch
(goal <= 0.7). Two settings: the defaults of each (torch's and onnxruntime's own thread counts), and
both on one thread (torch.set_num_threads(1), intra_op_num_threads=1).

    .venv/bin/python bench/onnx_latency.py [--calls 4000] [--only mlp|cnn]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECS = {"mlp": HERE / "specs" / "digits-mlp.yaml", "cnn": HERE / "specs" / "digits-cnn.yaml"}
BLOCKS = 20


def time_calls(fns: dict, calls: int, warmup: int) -> dict[str, list[float]]:
    """Per-call microseconds for each function, in alternating blocks after a warm-up."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    per_block = max(calls // BLOCKS, 1)
    clock = time.perf_counter_ns
    for b in range(BLOCKS):
        for k in (list(fns) if b % 2 == 0 else list(fns)[::-1]):
            f, out = fns[k], times[k]
            for _ in range(per_block):
                t0 = clock()
                f()
                out.append((clock() - t0) / 1e3)
    return times


def bench_model(name: str, tmp: Path, calls: int, warmup: int) -> list[dict]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    import udlc
    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    compiled = udlc.load_spec(SPECS[name])
    model = udlc.build(compiled).eval()
    inputs = list(compiled.graph.inputs.items())
    path = export_module(model, inputs, tmp / f"{name}.onnx", compiled.spec.export.onnx or OnnxExport())
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters; exported {path.name} "
          f"({path.stat().st_size / 1024:.0f} KiB), ops: {dict(ops)}", flush=True)

    ((_, shape),) = inputs
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy().copy()

    rows = []
    default_threads = torch.get_num_threads()
    for setting, threads in (("defaults", None), ("1 thread", 1)):
        torch.set_num_threads(threads or default_threads)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed_name = session.get_inputs()[0].name
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {feed_name: x_np})[0]
        worst = float(np.abs(got - expected).max())

        def run_torch():
            with torch.inference_mode():
                model(x)

        run_ort = partial(session.run, None, {feed_name: x_np})
        times = time_calls({"torch": run_torch, "ort": run_ort}, calls, warmup)
        rows.append({"model": name, "setting": setting,
                     "threads": f"torch {torch.get_num_threads()}, ort {threads or 'default'}",
                     "torch_med": statistics.median(times["torch"]), "ort_med": statistics.median(times["ort"]),
                     "torch_min": min(times["torch"]), "ort_min": min(times["ort"]), "diff": worst,
                     "n": len(times["ort"])})
    torch.set_num_threads(default_threads)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=4000, help="timed calls per engine and setting")
    ap.add_argument("--warmup", type=int, default=200, help="untimed calls first")
    ap.add_argument("--only", choices=sorted(SPECS), action="append")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    print(f"torch {torch.__version__} (default threads {torch.get_num_threads()}) · onnxruntime {ort.__version__} · "
          f"{os.cpu_count()} CPUs · load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="udlc-bench-onnx-") as tmp:
        for name in args.only or ["mlp", "cnn"]:
            rows += bench_model(name, Path(tmp), args.calls, args.warmup)

    print()
    print("batch 1, microseconds per call; ratio = ort / torch (goal <= 0.7)")
    head = (f"{'model':5s} {'setting':9s} {'threads':22s} | {'torch med':>9s} {'ort med':>8s} {'ratio':>6s} | "
            f"{'torch min':>9s} {'ort min':>8s} {'ratio':>6s} | {'max |diff|':>10s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:5s} {r['setting']:9s} {r['threads']:22s} | {r['torch_med']:9.1f} {r['ort_med']:8.1f} "
              f"{r['ort_med'] / r['torch_med']:6.3f} | {r['torch_min']:9.1f} {r['ort_min']:8.1f} "
              f"{r['ort_min'] / r['torch_min']:6.3f} | {r['diff']:10.2e}")
    print(f"({rows[0]['n']} timed calls each after {args.warmup} warm-up calls; load average after: {os.getloadavg()})")


if __name__ == "__main__":
    main()
