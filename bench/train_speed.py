"""Training speed: udlc's loop against a hand-written PyTorch loop doing the same work.

For each spec under bench/specs/ (an MLP and a CNN on `digits`, deterministic, constant schedule,
grad_clip 1.0, no early stopping, no export), the hand-written loop uses the same data tensors
(udlc.trainer.run.load_dataset), the same model and initialization (udlc.build), the same optimizer
(udlc.trainer.objectives.make_optimizer), the same batch order (a torch.Generator seeded with the spec
seed, one randperm per epoch, as InMemoryBatches draws it), the same loss, grad clipping and
per-epoch validation pass (loss and the spec's metrics), and the same global RNG stream for dropout.

Part 1, end to end: udlc.train(udlc.load_spec(path), out=tmp, quiet=True) against the hand-written
loop, whole runs, alternating. Per-epoch medians (epoch 1 excluded as warm-up) of
  training phase   udlc's logged `seconds` (metrics.jsonl), the same span in the hand-written loop;
  whole epoch      from one epoch's end to the next: training, validation and, for udlc, its
                   checkpoints (last, and best when val_loss improved) and metrics files;
and whether udlc's checkpoints/last.safetensors equals the hand-written state_dict bitwise.

Part 2, interleaved: udlc's own loop function (udlc.trainer.loop.fit, set up as udlc.trainer.run does)
run one epoch at a time, alternating epoch by epoch with the hand-written loop, each with its own
copy of the RNG state. On a machine shared with other jobs this pairs every udlc epoch with a
hand-written epoch run moments apart, so it gives the steadier ratio.

    .venv/bin/python bench/train_speed.py [--repeats N] [--threads 1] [--epochs N] [--only mlp|cnn]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import udlc  # no torch yet

HERE = Path(__file__).resolve().parent
SPECS = {"mlp": HERE / "specs" / "digits-mlp.yaml", "cnn": HERE / "specs" / "digits-cnn.yaml"}
DEFAULTS = {  # repeats of part 1, epochs of part 2
    "mlp": (3, 40),
    "cnn": (2, 14),
}


# ---- the hand-written loop -----------------------------------------------------------------------


class HandLoop:
    """Plain PyTorch, one epoch per call. The RNG state for dropout is its own (see `rng`)."""

    def __init__(self, compiled, data):
        import torch

        from udlc.trainer.objectives import make_optimizer

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

        from udlc.trainer.objectives import compute_metrics

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
            compute_metrics(spec.metrics, out, self.yv, spec.loss.type)  # the metrics udlc logs
        model.train()
        return seconds, cpu, train_loss, val_loss


def run_hand(compiled) -> dict:
    import torch

    from udlc.trainer.run import load_dataset

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
    from udlc.trainer import checkpoint
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
            "total_s": total, "weights": checkpoint.load(run_dir / "checkpoints" / "last")["model"]}


class _CpuClock:
    """Thin stand-ins for Setup.train and Setup.log that read this thread's CPU clock where fit() starts
    an epoch's batches and after its last batch: the training phase in CPU seconds, which other jobs on
    the machine disturb less than wall time."""

    def __init__(self, batches, log):
        self.batches, self.log, self.start, self.end = batches, log, 0.0, 0.0

    def train_proxy(self):
        clock = self

        class Batches:
            def __len__(self):
                return len(clock.batches)

            def epoch_batches(self, generator=None):
                clock.start = time.thread_time()
                return clock.batches.epoch_batches(generator)

        return Batches()

    def log_proxy(self):
        clock = self

        class Log:
            def batch(self, done, total):
                if done == total:
                    clock.end = time.thread_time()

            def __getattr__(self, name):
                return getattr(clock.log, name)

        return Log()


class UdlcLoop:
    """udlc.trainer.loop.fit, one epoch per call: a Setup wired as udlc.trainer.run.train_spec wires it,
    from a spec compiled with train.epochs=1; `state["epoch"]` goes back to 0 after each call."""

    def __init__(self, compiled_one_epoch, data, run_dir: Path):
        from contextlib import nullcontext
        from functools import partial

        import torch

        from udlc.compiler.lower import lower
        from udlc.data import make_batches
        from udlc.trainer.logging import EpochLog
        from udlc.trainer.loop import Setup
        from udlc.trainer.objectives import make_loss, make_optimizer
        from udlc.trainer.schedules import lr_factor

        spec, graph = compiled_one_epoch.spec, compiled_one_epoch.graph
        cfg, device = spec.train, torch.device("cpu")
        assert not spec.data.augment and spec.schedule.type != "plateau" and cfg.epochs == 1
        model = lower(graph, seed=spec.seed)
        optimizer, _ = make_optimizer(model, spec.optimizer)
        batch = partial(make_batches, device=device)
        train = batch(data.x_train, data.y_train, batch_size=cfg.batch_size, shuffle=True)
        val = batch(data.x_val, data.y_val, batch_size=cfg.eval_batch_size or max(cfg.batch_size, 256),
                    shuffle=False) if len(data.x_val) else None
        steps = math.ceil(len(train) / cfg.grad_accum)
        factor = lr_factor(spec.schedule, spec.optimizer.lr, steps, steps * cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step) * 1.0)
        self.log = EpochLog(run_dir, cfg.epochs, quiet=True)
        self.clock = _CpuClock(train, self.log)
        self.s = Setup(spec=spec, graph=graph, model=model, optimizer=optimizer, scheduler=scheduler, plateau=None,
                       loss_fn=make_loss(spec.loss, device), train=self.clock.train_proxy(), val=val, augment=None,
                       generator=torch.Generator().manual_seed(spec.seed), device=device, autocast=nullcontext,
                       run_dir=run_dir, log=self.clock.log_proxy())
        self.rng = torch.Generator().manual_seed(spec.seed).get_state()

    def epoch(self) -> tuple[float, float, float, float]:
        import torch

        from udlc.trainer.loop import fit

        torch.set_rng_state(self.rng)
        self.s.state["epoch"] = 0
        fit(self.s)
        self.rng = torch.get_rng_state()
        row = self.log.rows[-1]
        return row["seconds"], self.clock.end - self.clock.start, row["train_loss"], row.get("val_loss")


# ---- comparison ----------------------------------------------------------------------------------


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
            print(f"  [1] {name} run {r + 1}/{repeats} {who:4s}: training phase median "
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


def interleaved(name: str, epochs: int, tmp: Path) -> dict:
    import torch

    from udlc.trainer.run import load_dataset

    compiled = udlc.load_spec(SPECS[name], ["train.epochs=1"])
    torch.use_deterministic_algorithms(compiled.spec.train.deterministic)
    data = load_dataset(compiled)
    run_dir = tmp / f"{name}-interleaved"
    run_dir.mkdir()
    loops = {"udlc": UdlcLoop(compiled, data, run_dir), "hand": HandLoop(compiled, data)}
    times: dict = {"udlc": [], "hand": []}
    cpu: dict = {"udlc": [], "hand": []}
    same = True
    for e in range(epochs):
        got = {}
        for who in (("udlc", "hand") if e % 2 == 0 else ("hand", "udlc")):
            got[who] = loops[who].epoch()
            times[who].append(got[who][0])
            cpu[who].append(got[who][1])
        same = same and got["udlc"][2:] == got["hand"][2:]
    u, h = times["udlc"][1:], times["hand"][1:]  # epoch 1 excluded: warm-up
    uc, hc = cpu["udlc"][1:], cpu["hand"][1:]
    paired = [a / b for a, b in zip(u, h)]
    equal, _ = compare_weights({k: v.detach() for k, v in loops["udlc"].s.model.state_dict().items()},
                               loops["hand"].model.state_dict())
    print(f"  [2] {name} interleaved, {epochs} epochs each: udlc median {med(u) * 1e3:.1f} ms, hand-written "
          f"{med(h) * 1e3:.1f} ms", flush=True)
    return {"n": len(u), "u": med(u), "h": med(h), "paired": med(paired), "u_min": min(u), "h_min": min(h),
            "uc": med(uc), "hc": med(hc), "cpu_paired": med([a / b for a, b in zip(uc, hc)]),
            "losses_same": same, "equal": equal}


def attribute(compiled) -> dict[str, float]:
    """What udlc's loop does beyond the hand-written one, each piece timed alone (best of 5, us)."""
    import torch
    import torch.nn.functional as F

    from udlc.trainer import checkpoint
    from udlc.trainer.objectives import make_optimizer

    model = udlc.build(compiled)
    optimizer, _ = make_optimizer(model, compiled.spec.optimizer)
    (shape,) = compiled.graph.inputs.values()
    F.cross_entropy(model(torch.randn(4, *shape)), torch.zeros(4, dtype=torch.long)).backward()
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss, total = torch.tensor(1.0), torch.zeros(())

    def best_us(f, n):
        for _ in range(min(n, 100)):
            f()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            best = min(best, (time.perf_counter() - t0) / n)
        return best * 1e6

    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}, "plateau": None,
             "rng": {"torch": torch.get_rng_state(), "data": torch.Generator().get_state()},
             "position": {"epoch": 1, "step": 1, "best": 1.0, "best_epoch": 1, "bad": 0}}
    with tempfile.TemporaryDirectory(prefix="udlc-bench-ckpt-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"isfinite": best_us(lambda: bool(not torch.isfinite(loss)), 5000),
                "item": best_us(lambda: math.isfinite(loss.item()), 5000),
                "accumulate": best_us(lambda: total.add_(loss.detach() * 64), 5000),
                "scheduler": best_us(scheduler.step, 5000),
                "save": best_us(lambda: checkpoint.save(Path(tmp) / "last", state), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="part 1: whole runs of each (default: mlp 3, cnn 2)")
    ap.add_argument("--epochs", type=int, default=None, help="part 1: override train.epochs of the bench specs")
    ap.add_argument("--interleaved-epochs", type=int, default=None, help="part 2: epochs (default: mlp 40, cnn 14)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both (default 1)")
    ap.add_argument("--only", choices=sorted(SPECS), action="append", help="run only this model (repeatable)")
    args = ap.parse_args()

    import torch

    from udlc.trainer.run import load_dataset

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} · torch.set_num_threads({args.threads}) for both · {os.cpu_count()} CPUs · "
          f"load average before: {_load()}", flush=True)
    names = args.only or ["mlp", "cnn"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="udlc-bench-") as tmp:
        for name in names:
            compiled = udlc.load_spec(SPECS[name], [f"train.epochs={args.epochs}"] if args.epochs else [])
            load_dataset(compiled)  # warm-up: the first load imports scikit-learn
            e2e = end_to_end(name, compiled, args.repeats or DEFAULTS[name][0], Path(tmp))
            inter = interleaved(name, args.interleaved_epochs or DEFAULTS[name][1], Path(tmp))
            steps = math.ceil(len(load_dataset(compiled).x_train) / compiled.spec.train.batch_size)
            rows[name] = (compiled, e2e, inter, steps, attribute(compiled))

    print()
    print("[1] end to end: udlc.train vs the hand-written loop, whole runs; per-epoch medians in ms, epochs 2..E of")
    print("    every run pooled; ratio = udlc / hand-written (goal <= 1.02)")
    head = (f"{'model':5s} {'n':>3s} | {'training phase':^24s} | {'whole epoch':^24s} | {'whole run, s':^13s} | "
            f"final weights")
    print(head)
    print(f"{'':9s}" + f" | {'udlc':>7s} {'hand':>7s} {'ratio':>7s}" * 2 + f" | {'udlc':>6s} {'hand':>6s} |")
    print("-" * (len(head) + 8))
    for name, (compiled, r, _, _, _) in rows.items():
        print(f"{name:5s} {r['n']:3d} | {r['u_train'] * 1e3:7.2f} {r['h_train'] * 1e3:7.2f} "
              f"{r['u_train'] / r['h_train']:7.3f} | {r['u_epoch'] * 1e3:7.2f} {r['h_epoch'] * 1e3:7.2f} "
              f"{r['u_epoch'] / r['h_epoch']:7.3f} | {r['u_total']:6.2f} {r['h_total']:6.2f} | "
              f"{'bitwise equal' if r['equal'] else 'DIFFERENT'}")
    print("    training phase = udlc's logged `seconds`; whole epoch = from one epoch's end to the next (validation,")
    print("    and for udlc the checkpoints and metrics files, included); whole run = the whole call (data loading,")
    print("    and for udlc the run folder and the test metrics, included).")
    for name, (compiled, r, _, _, _) in rows.items():
        losses = "identical" if r["losses_equal"] else f"differ (train loss first at epoch {r['first_diff']})"
        repeats = "the same weights" if r["same_across"] else "NOT the same weights"
        print(f"    {name}: udlc checkpoints/last.safetensors vs the hand-written state_dict: "
              f"{'bitwise equal' if r['equal'] else 'NOT bitwise equal'} (every tensor, torch.equal); per-epoch "
              f"train/val losses {losses}; all runs of both give {repeats}")
        for note in r["notes"][:10]:
            print(f"        {note}")

    print()
    print("[2] interleaved: udlc.trainer.loop.fit one epoch at a time, alternating with the hand-written loop; training")
    print("    phase in ms (epoch 1 excluded); ratio = udlc / hand-written (goal <= 1.02)")
    print(f"{'':9s} | {'wall: median':^31s} | {'wall: fastest epoch':^26s} | {'CPU time: median':^31s} |")
    print(f"{'model':5s} {'n':>3s} | {'udlc':>7s} {'hand':>7s} {'ratio':>7s} {'paired':>7s} | {'udlc':>8s} "
          f"{'hand':>8s} {'ratio':>7s} | {'udlc':>7s} {'hand':>7s} {'ratio':>7s} {'paired':>7s} | same losses, weights")
    for name, (compiled, _, r, _, _) in rows.items():
        print(f"{name:5s} {r['n']:3d} | {r['u'] * 1e3:7.2f} {r['h'] * 1e3:7.2f} {r['u'] / r['h']:7.3f} "
              f"{r['paired']:7.3f} | {r['u_min'] * 1e3:8.2f} {r['h_min'] * 1e3:8.2f} {r['u_min'] / r['h_min']:7.3f} | "
              f"{r['uc'] * 1e3:7.2f} {r['hc'] * 1e3:7.2f} {r['uc'] / r['hc']:7.3f} {r['cpu_paired']:7.3f} | "
              f"{'yes' if r['losses_same'] else 'NO'}, {'bitwise equal' if r['equal'] else 'DIFFERENT'}")
    print("    paired = median over epochs of (udlc epoch / the hand-written epoch run next to it); CPU time = this")
    print("    thread's CPU seconds over the training phase (time.thread_time; torch runs on this one thread)")

    print()
    print("where udlc's extra time goes (each piece timed alone, best of 5):")
    for name, (compiled, _, r, steps, a) in rows.items():
        per_epoch = steps * (a["isfinite"] + a["scheduler"]) / 1e3
        print(f"  {name}: per step, NaN guard `if not torch.isfinite(loss)` {a['isfinite']:.1f} us + "
              f"scheduler.step() {a['scheduler']:.1f} us; x {steps} steps = {per_epoch:.2f} ms/epoch "
              f"({per_epoch / (r['h'] * 1e3) * 100:.1f}% of the hand-written training phase). Per epoch, outside "
              f"the training phase: checkpoint.save {a['save'] / 1e3:.1f} ms each (last every epoch, best too when "
              f"val_loss improved)")
        print(f"       for comparison: `math.isfinite(loss.item())` {a['item']:.1f} us; the tensor accumulation "
              f"`total_loss += loss.detach() * len(xb)` (done by both loops) {a['accumulate']:.1f} us")
    print(f"load average after: {_load()}")


def _load():
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return None


if __name__ == "__main__":
    main()
