"""Serving a fed-back forecaster (task: {forecasting: {feedback: true}}): the loop unrolled in the ONNX graph
(what udlc exports: `horizon` copies of the network, udlc.tasks.feedback.Feedback traced) against one copy of
the network inside an ONNX Loop whose carried sequence grows by one value each turn.

The network is examples/sine-feedback.yaml's (two lstm_cell of 51 units and a linear; seeded init: latency
does not depend on trained values). The unrolled file is torch.onnx.export of Feedback(network, horizon);
the Loop file is the network exported alone (dynamic batch and length), its nodes made the body of a Loop
that runs it `horizon` times on the sequence so far, appends the last step's prediction and scans it out.
Both are checked against torch's feed_back before timing. Calls are timed one by one in alternating blocks
after a warm-up, onnxruntime on one thread and on its default threads; it prints the median and minimum per
call in microseconds and loop / unrolled. It also prints each file's size and export time.

    .venv/bin/python bench/feedback_speed.py [--calls 300] [--horizons 8 32] [--batches 1 64] [--context 32]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "sine-feedback.yaml"
BLOCKS = 10


def export(module: torch.nn.Module, path: Path) -> float:
    """torch.onnx.export at opset 18 with a dynamic batch and length; the seconds it took."""
    start = time.perf_counter()
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("T", min=2)}
    torch.onnx.export(module, (torch.randn(2, 16, 1),), str(path), dynamo=True, opset_version=18, verbose=False,
                      input_names=["x"], output_names=["y"], dynamic_shapes=(dims,))
    return time.perf_counter() - start


def loop_model(network_file: Path, horizon: int, path: Path) -> None:
    """The network's graph as the body of an ONNX Loop over `horizon` turns: carried `seq` (B, T + i, 1), each
    turn's last-step prediction appended to it and scanned out; the scan (H, B, 1, 1) transposed to (B, H)."""
    net = onnx.load(str(network_file), load_external_data=True)
    g = net.graph
    (x,), (y,) = [i.name for i in g.input], [o.name for o in g.output]
    seq_in, seq_out, step = "fb_seq_in", "fb_seq_out", "fb_step"
    nodes = []
    for n in g.node:  # the network reads the carried sequence instead of its input
        n.input[:] = [seq_in if i == x else i for i in n.input]
        nodes.append(n)
    consts = [helper.make_tensor("fb_start", TensorProto.INT64, [1], [-1]),
              helper.make_tensor("fb_end", TensorProto.INT64, [1], [2**62]),
              helper.make_tensor("fb_axis", TensorProto.INT64, [1], [1])]
    nodes += [helper.make_node("Slice", [y, "fb_start", "fb_end", "fb_axis"], [step]),
              helper.make_node("Concat", [seq_in, step], [seq_out], axis=1),
              helper.make_node("Identity", ["fb_cond_in"], ["fb_cond_out"]),
              helper.make_node("Identity", [step], ["fb_scan"])]
    body = helper.make_graph(
        nodes, "feedback_body",
        [helper.make_tensor_value_info("fb_iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("fb_cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info(seq_in, TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("fb_cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(seq_out, TensorProto.FLOAT, None),
         helper.make_tensor_value_info("fb_scan", TensorProto.FLOAT, None)])
    outer = [helper.make_node("Loop", ["fb_trips", "fb_true", "x"], ["fb_final", "fb_steps"], body=body),
             helper.make_node("Transpose", ["fb_steps"], ["fb_bh"], perm=[1, 0, 2, 3]),
             helper.make_node("Flatten", ["fb_bh"], ["y"], axis=1)]
    graph = helper.make_graph(
        outer, "feedback_loop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "T", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", horizon])],
        initializer=[*g.initializer, *consts, helper.make_tensor("fb_trips", TensorProto.INT64, [], [horizon]),
                     helper.make_tensor("fb_true", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=net.opset_import, ir_version=net.ir_version)
    model.functions.extend(net.functions)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def time_calls(fns: dict, calls: int, warmup: int = 20) -> dict[str, list[float]]:
    for f in fns.values():
        for _ in range(warmup):
            f()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(BLOCKS):
        for k, f in fns.items():
            for _ in range(max(1, calls // BLOCKS)):
                t = time.perf_counter_ns()
                f()
                out[k].append((time.perf_counter_ns() - t) / 1000)
    return out


def main() -> None:
    from udlc import build
    from udlc.tasks.feedback import Feedback, feed_back

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--horizons", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--context", type=int, default=32)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; onnxruntime {ort.__version__}, torch {torch.__version__}")
    torch.manual_seed(0)
    network = build(SPEC).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net_seconds = export(network, tmp / "network.onnx")
        for horizon in args.horizons:
            unrolled, looped = tmp / f"unrolled{horizon}.onnx", tmp / f"loop{horizon}.onnx"
            seconds = export(Feedback(network, horizon).eval(), unrolled)
            loop_model(tmp / "network.onnx", horizon, looped)
            print(f"\nhorizon {horizon}: unrolled {unrolled.stat().st_size / 1e3:.0f} kB, exported in {seconds:.1f}s; "
                  f"loop {looped.stat().st_size / 1e3:.0f} kB (the network exported in {net_seconds:.1f}s)")
            for threads in (1, 0):
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                            for k, p in (("unrolled", unrolled), ("loop", looped))}
                for batch in args.batches:
                    x = np.random.default_rng(batch).normal(size=(batch, args.context, 1)).astype(np.float32)
                    with torch.no_grad():
                        want = feed_back(network, torch.from_numpy(x), horizon).numpy()
                    for k, s in sessions.items():
                        np.testing.assert_allclose(s.run(None, {"x": x})[0], want, rtol=1e-3, atol=1e-4, err_msg=k)
                    times = time_calls({k: (lambda s=s: s.run(None, {"x": x})) for k, s in sessions.items()},
                                       args.calls)
                    med = {k: statistics.median(v) for k, v in times.items()}
                    row = "  ".join(f"{k} {med[k]:8.0f} us (min {min(times[k]):6.0f})" for k in times)
                    print(f"  threads {threads or 'default'}  batch {batch:3d}  context {args.context}: {row}  "
                          f"loop/unrolled {med['loop'] / med['unrolled']:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
