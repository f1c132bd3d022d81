"""Training speed: udlc's loop against a hand-written PyTorch loop doing the same work.

For each spec under bench/specs/ (an MLP and a CNN on `digits`, deterministic, constant schedule,
grad_clip 1.0, no early stopping, no export), the hand-written loop uses the same data tensors
(the task's load_data), the same model and initialization (udlc.build), the same optimizer
(udlc.objectives.optimizers.make_optimizer), the same batch order (a torch.Generator seeded with the spec
seed, one randperm per epoch, as InMemoryBatches draws it), the same loss, grad clipping and
per-epoch validation pass (loss and the spec's metrics), and the same global RNG stream for dropout.

End to end: udlc.train(udlc.load_spec(path), out=tmp, quiet=True) against the hand-written
loop, whole runs, alternating. Per-epoch medians (epoch 1 excluded as warm-up) of
  training phase   udlc's logged `seconds` (metrics.jsonl), the same span in the hand-written loop;
  whole epoch      from one epoch's end to the next: training, validation and, for udlc, its
                   checkpoints (last, and best when val_loss improved) and metrics files;
and whether udlc's checkpoints/last.safetensors equals the hand-written state_dict bitwise.

On a machine shared with other jobs the figures swing; run it on a quiet machine.

    .venv/bin/python bench/train_speed.py [--repeats N] [--threads 1] [--epochs N] [--only mlp|cnn]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import udlc  # no torch yet

HERE = Path(__file__).resolve().parent
SPECS = {"mlp": HERE / "specs" / "digits-mlp.yaml", "cnn": HERE / "specs" / "digits-cnn.yaml"}
REPEATS = {"mlp": 3, "cnn": 2}  # whole runs of each, alternating who goes first


def load_dataset(compiled):
    """The data udlc trains on: the task's own loading (split, standardized)."""
    return compiled.task.load_data(compiled)


# ---- the hand-written loop -----------------------------------------------------------------------


class HandLoop:
    """Plain PyTorch, one epoch per call. The RNG state for dropout is its own (see `rng`)."""

    def __init__(self, compiled, data):
        import torch

        from udlc.objectives.optimizers import make_optimizer

        spec = compiled.spec
        assert spec.loss.type == "cross_entropy" and not spec.loss.weight, "this loop hand-writes cross_entropy only"
        self.spec, self.cfg = spec, spec.train
        self.model = udlc.build(compiled)  # seeded init in a forked RNG: the global generator is untouched
        self.optimizer, _ = make_optimizer(self.model, spec.optimizer)
        self.x, self.y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
        self.xv, self.yv = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.rng = torch.Generator().manual_seed(spec.seed).get_state()  # = torch.manual_seed(seed)

    def epoch(self) -> tuple[float, float, float, float]:
        """One epoch; returns (training-phase seconds, its CPU seconds in this thread, train loss, val loss)."""
        import torch
        import torch.nn.functional as F

        from udlc.objectives.metrics import compute_metrics
        from udlc.spec.losses import LOSSES

        model, opt, cfg, spec = self.model, self.optimizer, self.cfg, self.spec
        x, y, n, bs = self.x, self.y, len(self.x), cfg.batch_size
        smoothing = spec.loss.label_smoothing
        torch.set_rng_state(self.rng)
        model.train()
        t0, c0 = time.perf_counter(), time.thread_time()
        total = torch.zeros(())
        order = torch.randperm(n, generator=self.shuffle)
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb, label_smoothing=smoothing)
            loss.backward()
            total += loss.detach() * len(xb)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        seconds, cpu = time.perf_counter() - t0, time.thread_time() - c0
        self.rng = torch.get_rng_state()
        train_loss = (total / n).item()

        model.eval()
        eval_bs = cfg.eval_batch_size or max(bs, 256)
        with torch.no_grad():
            out = torch.cat([model(self.xv[s:s + eval_bs]) for s in range(0, len(self.xv), eval_bs)])
            val_loss = F.cross_entropy(out, self.yv, label_smoothing=smoothing).item()
            compute_metrics(spec.metrics, out, self.yv, LOSSES[spec.loss.type].answers)  # the metrics udlc logs
        model.train()
        return seconds, cpu, train_loss, val_loss


def run_hand(compiled) -> dict:
    import torch

    started = time.perf_counter()
    torch.use_deterministic_algorithms(compiled.spec.train.deterministic)
    loop = HandLoop(compiled, load_dataset(compiled))
    rows, stamps = [], []
    for _ in range(compiled.spec.train.epochs):
        rows.append(loop.epoch())
        stamps.append(time.perf_counter())
    return {"train_s": [r[0] for r in rows], "epoch_s": [b - a for a, b in itertools.pairwise(stamps)],
            "train_loss": [r[2] for r in rows], "val_loss": [r[3] for r in rows],
            "total_s": time.perf_counter() - started, "weights": loop.model.state_dict()}


# ---- udlc ----------------------------------------------------------------------------------------


def run_udlc(compiled, out: Path) -> dict:
    """udlc.train; training seconds from metrics.jsonl, whole-epoch times from when EpochLog.epoch is
    called (once per epoch, after validation and the checkpoints)."""
    from udlc.runs import checkpoint
    from udlc.trainer.logging import EpochLog

    stamps: list[float] = []
    original = EpochLog.epoch

    def stamped(self, row):  # instrumentation only
        stamps.append(time.perf_counter())
        return original(self, row)

    EpochLog.epoch = stamped
    try:
        started = time.perf_counter()
        run_dir = udlc.train(compiled, out=out, quiet=True)
        total = time.perf_counter() - started
    finally:
        EpochLog.epoch = original
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"train_s": [r["seconds"] for r in rows], "epoch_s": [b - a for a, b in itertools.pairwise(stamps)],
            "train_loss": [r["train_loss"] for r in rows], "val_loss": [r.get("val_loss") for r in rows],
            "total_s": total, "weights": checkpoint.load(run_dir / "checkpoints" / "last")["models"]["model"]}


def compare_weights(a: dict, b: dict) -> tuple[bool, list[str]]:
    import torch

    notes = []
    if set(a) != set(b):
        notes.append(f"different keys: only udlc {sorted(set(a) - set(b))}, only hand {sorted(set(b) - set(a))}")
    equal = not notes
    for k in sorted(set(a) & set(b)):
        ta, tb = a[k], b[k].detach().cpu()
        if ta.dtype != tb.dtype or ta.shape != tb.shape or not torch.equal(ta, tb):
            equal = False
            diff = (ta.double() - tb.double()).abs().max().item() if ta.shape == tb.shape else float("nan")
            notes.append(f"{k}: max |diff| {diff:.3g}")
    return equal, notes


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def end_to_end(name: str, compiled, repeats: int, tmp: Path) -> dict:
    runs: dict = {"udlc": [], "hand": []}
    for r in range(repeats):
        for who in (("udlc", "hand") if r % 2 == 0 else ("hand", "udlc")):  # alternate who goes first
            res = run_udlc(compiled, tmp / f"{name}-r{r}") if who == "udlc" else run_hand(compiled)
            runs[who].append(res)
            print(f"  {name} run {r + 1}/{repeats} {who:4s}: training phase median "
                  f"{med(res['train_s'][1:]) * 1e3:7.1f} ms, whole epoch median {med(res['epoch_s']) * 1e3:7.1f} ms, "
                  f"whole run {res['total_s']:.2f} s", flush=True)
    u, h = runs["udlc"], runs["hand"]
    out = {"n": sum(len(r["train_s"]) - 1 for r in u)}
    for who, rs in (("u", u), ("h", h)):
        train = [t for r in rs for t in r["train_s"][1:]]  # epoch 1 excluded: warm-up
        epoch = [t for r in rs for t in r["epoch_s"]]  # intervals between epoch ends: epochs 2..E
        out.update({f"{who}_train": med(train), f"{who}_epoch": med(epoch), f"{who}_total": med([r["total_s"] for r in rs])})
    out["equal"], out["notes"] = compare_weights(u[0]["weights"], h[0]["weights"])
    out["same_across"] = all(compare_weights(u[0]["weights"], r["weights"])[0] for r in u[1:] + h[1:])
    out["losses_equal"] = all(r["train_loss"] == h[0]["train_loss"] and r["val_loss"] == h[0]["val_loss"] for r in u)
    out["first_diff"] = next((i + 1 for i, (a, b) in enumerate(zip(u[0]["train_loss"], h[0]["train_loss"]))
                              if a != b), None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="whole runs of each (default: mlp 3, cnn 2)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs of the bench specs")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both (default 1)")
    ap.add_argument("--only", choices=sorted(SPECS), action="append", help="run only this model (repeatable)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} · torch.set_num_threads({args.threads}) for both · {os.cpu_count()} CPUs · "
          f"load average before: {os.getloadavg()}", flush=True)
    names = args.only or ["mlp", "cnn"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="udlc-bench-") as tmp:
        for name in names:
            compiled = udlc.load_spec(SPECS[name], [f"train.epochs={args.epochs}"] if args.epochs else [])
            load_dataset(compiled)  # warm-up: the first load imports scikit-learn
            e2e = end_to_end(name, compiled, args.repeats or REPEATS[name], Path(tmp))
            rows[name] = e2e

    print()
    print("end to end: udlc.train vs the hand-written loop, whole runs; per-epoch medians in ms, epochs 2..E of")
    print("    every run pooled; ratio = udlc / hand-written (goal <= 1.02)")
    head = (f"{'model':5s} {'n':>3s} | {'training phase':^24s} | {'whole epoch':^24s} | {'whole run, s':^13s} | "
            f"final weights")
    print(head)
    print(f"{'':9s}" + f" | {'udlc':>7s} {'hand':>7s} {'ratio':>7s}" * 2 + f" | {'udlc':>6s} {'hand':>6s} |")
    print("-" * (len(head) + 8))
    for name, r in rows.items():
        print(f"{name:5s} {r['n']:3d} | {r['u_train'] * 1e3:7.2f} {r['h_train'] * 1e3:7.2f} "
              f"{r['u_train'] / r['h_train']:7.3f} | {r['u_epoch'] * 1e3:7.2f} {r['h_epoch'] * 1e3:7.2f} "
              f"{r['u_epoch'] / r['h_epoch']:7.3f} | {r['u_total']:6.2f} {r['h_total']:6.2f} | "
              f"{'bitwise equal' if r['equal'] else 'DIFFERENT'}")
    print("    training phase = udlc's logged `seconds`; whole epoch = from one epoch's end to the next (validation,")
    print("    and for udlc the checkpoints and metrics files, included); whole run = the whole call (data loading,")
    print("    and for udlc the run folder and the test metrics, included).")
    for name, r in rows.items():
        losses = "identical" if r["losses_equal"] else f"differ (train loss first at epoch {r['first_diff']})"
        repeats = "the same weights" if r["same_across"] else "NOT the same weights"
        print(f"    {name}: udlc checkpoints/last.safetensors vs the hand-written state_dict: "
              f"{'bitwise equal' if r['equal'] else 'NOT bitwise equal'} (every tensor, torch.equal); per-epoch "
              f"train/val losses {losses}; all runs of both give {repeats}")
        for note in r["notes"][:10]:
            print(f"        {note}")

    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
