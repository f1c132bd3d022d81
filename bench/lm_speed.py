"""Language-model speed: udlc's training step on examples/char-lm.yaml against a hand-written nanoGPT-style
PyTorch loop of the same model, and generation at batch 1 in onnxruntime against torch eager.

Training. The spec is examples/char-lm.yaml (a small GPT: byte embedding 256x128, learned positions 128,
4 x gpt_block d_model 128 / 4 heads / d_ff 512, final layernorm, output tied to the embedding; AdamW
lr 0.003 wd 0.1, cosine schedule with 100 warm-up steps, grad clip 1.0, batch 32, context 128), with a
shorter text (--max-chars) and fewer epochs (--epochs) so that the whole script takes a couple of minutes.

  udlc  udlc.train(compiled, out=tmp, quiet=True): the whole run, udlc's own loop. Each optimizer step is
        timed around the task's train_step (LanguageModel.train_step: forward, loss, Setup.update =
        loss.item(), backward, clip_grad_norm_, AdamW step, zero_grad, the LambdaLR step), wall and CPU
        time of this thread; the training phase is udlc's logged `seconds` (metrics.jsonl), the whole
        epoch the span from one epoch's end to the next (validation and checkpoints included).
  hand  nanoGPT written out: nn.Embedding, an nn.Parameter of positions, blocks of
        x + attn(ln_1(x)), x + mlp(ln_2(x)) with a fused qkv linear (--qkv separate: three) and
        F.scaled_dot_product_attention(is_causal=True), GELU MLP, ln_f, lm_head tied to the embedding;
        torch.optim.AdamW with weight decay on the tensors of rank >= 2 only (as nanoGPT and udlc), the same
        betas and eps, the lr set by hand each step (linear warm-up, then cosine: udlc's schedule written out),
        clip_grad_norm_, the same batches (udlc.data.text.WindowBatches drawn from a torch.Generator seeded
        with the spec seed, as udlc draws them) and a validation pass per epoch. The step is timed over the
        same span as udlc's.

The hand-written model starts from udlc's initial weights (udlc.build, as udlc.train builds it), copied
tensor by tensor (q, k, v concatenated into the fused qkv), so both do the same arithmetic: the script
prints both parameter counts and the difference of their losses at the first step and over all steps.

Two measurements, each with the first few steps of a run left out:
  lockstep    one udlc.train run whose train_step also runs the hand-written loop's step on the same batch
              (before udlc's on odd steps, after it on even ones): pairs of steps under the same machine
              load, so the ratio holds on a busy machine; medians and the median of per-pair ratios;
  whole runs  udlc.train and the hand-written loop each on its own, alternating (udlc, hand, hand, udlc, ...):
              per-step medians, the last epoch's training phase, whole epochs and whole runs.

Generation. The last udlc run is exported with udlc.export (udlc.exporter.onnx.export_run), then greedy
continuations of a 64-token prompt (from the validation text) are timed at batch 1:
  onnxruntime  udlc.runtime.generate.LanguageModelFile(...).generate(prompt, N, temperature=0), as
               `udlc generate` runs it (onnxruntime's default threads), and the same with a one-thread
               session; where the file carries a key/value cache (udlc.exporter.decoding), both with it (one
               step per token, the default) and without it (use_cache=False: the whole window per token);
  torch eager  udlc's network (udlc.build + the run's final checkpoint) and the hand-written model with the
               same weights, eval() under torch.inference_mode(), recomputing the last `context` tokens
               for every new token (no cache).
The whole-window continuations must be identical (the script says whether they are, how far the cached one
agrees, and how far the prompt's logits differ between onnxruntime and torch).

    .venv/bin/python bench/lm_speed.py [--max-chars 150000] [--epochs 2] [--repeats 1] [--threads 1]
                                       [--qkv fused|separate] [--new-tokens 100] [--skip-generation]

A benchmark: it prints figures and asserts nothing about speed. On a machine shared with other jobs the
wall times swing (the script prints the load average); the CPU-time columns swing less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import udlc  # no torch yet
from nanogpt import HandLoop, hand_model_class, hand_state_from_udlc, model_config, run_hand  # bench/nanogpt.py

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "char-lm.yaml"
SKIP_STEPS = 3  # the first steps of every run are warm-up: not in the per-step medians


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# ---- udlc ------------------------------------------------------------------------------------------------


def run_udlc(compiled, out: Path) -> dict:
    """udlc.train, its task's train_step timed (instrumentation only: the wrapper calls the original)."""
    from udlc.trainer.logging import EpochLog

    task = compiled.task
    steps: list = []
    stamps: list[float] = []
    original_step, original_epoch = task.train_step, EpochLog.epoch

    def timed_step(s, batch):
        t0, c0 = time.perf_counter(), time.thread_time()
        values, size = original_step(s, batch)
        steps.append((time.perf_counter() - t0, time.thread_time() - c0, values["loss"]))
        return values, size

    def stamped(self, row):
        stamps.append(time.perf_counter())
        return original_epoch(self, row)

    task.train_step, EpochLog.epoch = timed_step, stamped
    try:
        started = time.perf_counter()
        run_dir = udlc.train(compiled, out=out, quiet=True)
        total = time.perf_counter() - started
    finally:
        del task.train_step  # the instance attribute: the class's method again
        EpochLog.epoch = original_epoch
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"steps": steps, "train_s": [r["seconds"] for r in rows],
            "epoch_s": [b - a for a, b in zip(stamps, stamps[1:])], "val_loss": [r.get("val_loss") for r in rows],
            "total_s": total, "run_dir": run_dir,
            "params": sum(g.total_params for g in compiled.graphs.values())}


def run_lockstep(compiled, data, fused: bool, out: Path) -> list[tuple]:
    """udlc.train with the hand-written loop's step run beside each of udlc's steps, on the same batch (before
    udlc's on odd steps, after it on even ones): pairs timed under the same machine load. Returns per step
    (udlc wall, udlc CPU, udlc loss, hand wall, hand CPU, hand loss)."""
    import torch

    task = compiled.task
    torch.manual_seed(compiled.spec.seed)
    hand = HandLoop(compiled, data, fused)
    hand.model.train()
    pairs: list[tuple] = []
    original = task.train_step

    def paired(s, batch):
        xb, yb = batch[s.run_state.input], batch["target"]
        first = len(pairs) % 2
        if first:
            h = hand.step(xb, yb)
        t0, c0 = time.perf_counter(), time.thread_time()
        values, size = original(s, batch)
        u = (time.perf_counter() - t0, time.thread_time() - c0, values["loss"])
        if not first:
            h = hand.step(xb, yb)
        pairs.append(u + h)
        return values, size

    task.train_step = paired
    try:
        udlc.train(compiled, out=out, quiet=True)
    finally:
        del task.train_step
    return pairs


# ---- generation ------------------------------------------------------------------------------------------


def torch_generate(model, ids: list[int], new: int, context: int) -> tuple[list[int], float]:
    import torch

    model.eval()
    made: list[int] = []
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(new):
            window = torch.tensor([(ids + made)[-context:]], dtype=torch.long)
            made.append(int(model(window)[0, -1].argmax()))
        seconds = time.perf_counter() - start
    return made, seconds


def generation(compiled, run_dir: Path, data, fused: bool, new: int, repeats: int) -> dict:
    import inspect

    import onnxruntime as ort

    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.generate import LanguageModelFile

    t0 = time.perf_counter()
    onnx_path = udlc.export(run_dir)
    export_s = time.perf_counter() - t0
    lm = LanguageModelFile(onnx_path)  # as `udlc generate` opens it: onnxruntime's default threads
    lm1 = LanguageModelFile(onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    lm1.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    # A file exported with its key/value cache generates one token per step (use_cache=False: whole windows).
    cached = bool(getattr(lm, "cached", False)) and "use_cache" in inspect.signature(lm.generate).parameters

    shape = model_config(compiled)
    net = udlc.build(compiled)
    final = RunFolder.open(run_dir).final_checkpoint(compiled.spec)  # the weights the export took
    checkpoint.load_models({compiled.task.network(compiled): net}, final)
    hand = hand_model_class()(**shape, fused=fused)
    hand.load_state_dict(hand_state_from_udlc(net.state_dict(), shape["layers"], fused))

    prompt_ids = [int(i) for i in data.ids["val"][:64]]
    prompt = lm.tokenizer.decode(prompt_ids)
    assert lm.tokenizer.encode(prompt).tolist() == prompt_ids, "the prompt does not round-trip"
    context = lm.context

    def ort_call(f, **kw):
        return lambda: (lambda g: (g.text, g.seconds))(f.generate(prompt, new, temperature=0, **kw))

    def torch_call(model):
        return lambda: (lambda r: (lm.tokenizer.decode(r[0]), r[1]))(torch_generate(model, prompt_ids, new, context))

    # The same numbers on both sides: the last position's logits of the prompt, onnxruntime (whole window) vs torch.
    import numpy as np
    import torch

    ort_last = lm.run(prompt_ids)[0] if hasattr(lm, "run") else lm.next_logits(prompt_ids)
    with torch.inference_mode():
        torch_last = net.eval()(torch.tensor([prompt_ids]))[0, -1].double().numpy()
    logit_diff = float(np.abs(np.asarray(ort_last) - torch_last).max())

    calls = {}
    if cached:
        calls["onnxruntime, KV cache (udlc generate)"] = ort_call(lm)
        calls["onnxruntime, KV cache, 1 thread"] = ort_call(lm1)
    nocache = {"use_cache": False} if cached else {}
    calls[f"onnxruntime, {'no cache' if cached else 'windows (udlc generate)'}"] = ort_call(lm, **nocache)
    calls[f"onnxruntime, {'no cache' if cached else 'windows'}, 1 thread"] = ort_call(lm1, **nocache)
    calls["torch eager, udlc network"] = torch_call(net)
    calls["torch eager, hand-written"] = torch_call(hand)
    seconds: dict[str, list[float]] = {n: [] for n in calls}
    texts: dict[str, str] = {}
    for _ in range(repeats):  # interleaved: each call once per round
        for name, call in calls.items():
            texts[name], t = call()
            seconds[name].append(t)
    return {"export_s": export_s, "prompt": prompt, "texts": texts, "ort_threads": _ort_threads(lm.session),
            "cached": cached, "logit_diff": logit_diff, "tps": {n: new / med(s) for n, s in seconds.items()},
            "best_tps": {n: new / min(s) for n, s in seconds.items()}, "context": context}


def _ort_threads(session) -> str:
    value = session.get_session_options().intra_op_num_threads
    return str(value) if value else f"default (0: one per physical core; {os.cpu_count()} CPUs)"


# ---- main ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-chars", type=int, default=150_000, help="data.max_chars (default 150000)")
    ap.add_argument("--epochs", type=int, default=2, help="train.epochs (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="whole runs of each, alternating (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both (default 1)")
    ap.add_argument("--qkv", choices=("fused", "separate"), default="fused",
                    help="the hand-written attention's projections: one qkv linear (nanoGPT, default) or three")
    ap.add_argument("--new-tokens", type=int, default=100, help="tokens generated per call (default 100)")
    ap.add_argument("--skip-generation", action="store_true", help="time training only")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    fused = args.qkv == "fused"
    print(f"torch {torch.__version__} · torch.set_num_threads({args.threads}) for both · {os.cpu_count()} CPUs · "
          f"load average before: {os.getloadavg()}", flush=True)
    compiled = udlc.load_spec(SPEC, [f"data.max_chars={args.max_chars}", f"train.epochs={args.epochs}"])
    data = compiled.task.load_data(compiled)
    state = compiled.task.start(compiled, data, torch.device("cpu"))
    steps_per_epoch = len(compiled.task.batches(state, "train", batch_size=compiled.spec.train.batch_size,
                                                shuffle=True, device="cpu"))
    print(f"{SPEC.relative_to(ROOT)} · max_chars {args.max_chars} · {args.epochs} epochs of {steps_per_epoch} steps "
          f"(batch {compiled.spec.train.batch_size} x context {compiled.task.options.context}) · hand-written qkv "
          f"{args.qkv}", flush=True)

    runs: dict = {"udlc": [], "hand": []}
    with tempfile.TemporaryDirectory(prefix="udlc-bench-lm-") as tmp:
        started = time.perf_counter()
        pairs = run_lockstep(compiled, data, fused, Path(tmp) / "lockstep")
        print(f"  lockstep run: {len(pairs)} pairs of steps in {time.perf_counter() - started:.1f} s", flush=True)
        for r in range(args.repeats):
            for who in (("udlc", "hand") if r % 2 == 0 else ("hand", "udlc")):
                res = run_udlc(compiled, Path(tmp) / f"r{r}") if who == "udlc" else run_hand(compiled, data, fused)
                runs[who].append(res)
                walls = [s[0] for s in res["steps"][SKIP_STEPS:]]
                print(f"  whole run {r + 1}/{args.repeats} {who:4s}: step median {med(walls) * 1e3:6.1f} ms, training "
                      f"phase of the last epoch {res['train_s'][-1]:6.2f} s, whole run {res['total_s']:6.2f} s",
                      flush=True)
        gen = None if args.skip_generation else generation(compiled, runs["udlc"][-1]["run_dir"], data, fused,
                                                           args.new_tokens, repeats=5)

    # lockstep: per-step pairs under the same load
    timed = pairs[SKIP_STEPS:]
    col = lambda i: [p[i] for p in timed]  # noqa: E731
    uw, uc, hw, hc = col(0), col(1), col(3), col(4)
    # whole runs: each on its own
    u, h = runs["udlc"], runs["hand"]
    pool = lambda rs, i: [s[i] for r in rs for s in r["steps"][SKIP_STEPS:]]  # noqa: E731
    ruw, rhw, ruc, rhc = pool(u, 0), pool(h, 0), pool(u, 1), pool(h, 1)

    print()
    print(f"training: time per optimizer step; ratio = udlc / hand-written (goal <= 1.05); the first {SKIP_STEPS} "
          f"steps of every run left out")
    head = (f"{'':34s} | {'udlc':>8s} {'hand':>8s} {'ratio':>6s} | {'median of':>9s} | {'udlc min':>8s} "
            f"{'hand min':>8s}")
    print(head)
    print(f"{'':34s} | {'median':>8s} {'median':>8s} {'':6s} | {'ratios':>9s} |")
    print("-" * len(head))
    ratios = lambda a, b: med([x / y for x, y in zip(a, b)])  # noqa: E731
    print(f"{f'lockstep, {len(timed)} pairs: wall ms':34s} | {med(uw) * 1e3:8.1f} {med(hw) * 1e3:8.1f} "
          f"{med(uw) / med(hw):6.3f} | {ratios(uw, hw):9.3f} | {min(uw) * 1e3:8.1f} {min(hw) * 1e3:8.1f}")
    print(f"{'                   CPU ms':34s} | {med(uc) * 1e3:8.1f} {med(hc) * 1e3:8.1f} "
          f"{med(uc) / med(hc):6.3f} | {ratios(uc, hc):9.3f} | {min(uc) * 1e3:8.1f} {min(hc) * 1e3:8.1f}")
    print(f"{f'whole runs, {len(ruw)}+{len(rhw)} steps: wall ms':34s} | {med(ruw) * 1e3:8.1f} {med(rhw) * 1e3:8.1f} "
          f"{med(ruw) / med(rhw):6.3f} | {'':9s} | {min(ruw) * 1e3:8.1f} {min(rhw) * 1e3:8.1f}")
    print(f"{'                   CPU ms':34s} | {med(ruc) * 1e3:8.1f} {med(rhc) * 1e3:8.1f} "
          f"{med(ruc) / med(rhc):6.3f} | {'':9s} | {min(ruc) * 1e3:8.1f} {min(rhc) * 1e3:8.1f}")
    if args.epochs > 1:
        ut, ht = med([r["train_s"][-1] for r in u]), med([r["train_s"][-1] for r in h])
        # what the last epoch spent outside the timed steps: drawing batches, udlc's progress line
        uo = med([r["train_s"][-1] - sum(s[0] for s in r["steps"][-steps_per_epoch:]) for r in u])
        ho = med([r["train_s"][-1] - sum(s[0] for s in r["steps"][-steps_per_epoch:]) for r in h])
        ue, he = med([t for r in u for t in r["epoch_s"]]), med([t for r in h for t in r["epoch_s"]])
        print(f"{'whole runs: training phase, last, s':34s} | {ut:8.2f} {ht:8.2f} {ut / ht:6.3f} |")
        print(f"{'    of it outside the steps, ms':34s} | {uo * 1e3:8.1f} {ho * 1e3:8.1f} {'':6s} |")
        print(f"{'whole runs: whole epoch 2..E, s':34s} | {ue:8.2f} {he:8.2f} {ue / he:6.3f} |")
    ur, hr = med([r["total_s"] for r in u]), med([r["total_s"] for r in h])
    print(f"{'whole runs: whole run, s':34s} | {ur:8.2f} {hr:8.2f} {ur / hr:6.3f} |")
    print("    step = the task's train_step in udlc's loop (forward, loss, loss.item(), backward, clip, AdamW,")
    print("    zero_grad, LambdaLR), the same span of the hand-written loop. Lockstep = one udlc.train run with the")
    print("    hand-written step run beside each udlc step on the same batch (alternately before and after it): both")
    print("    under the same load. Whole runs = udlc.train and the hand-written loop each on its own; training phase")
    print("    = udlc's logged `seconds`; whole epoch = from one epoch's end to the next (validation, and udlc's")
    print("    checkpoints, included); whole run = the call (udlc: the run folder and the test metrics too).")
    print(f"    parameters: udlc {u[0]['params']:,} (graph), hand-written {h[0]['params']:,} (unique tensors)"
          f"{'' if u[0]['params'] == h[0]['params'] else '  -- DIFFERENT'}")
    for what, ul, hl in (("lockstep", [p[2] for p in pairs], [p[5] for p in pairs]),
                         ("whole runs", [s[2] for s in u[0]["steps"]], [s[2] for s in h[0]["steps"]])):
        n = min(len(ul), len(hl))
        print(f"    {what}, same initial weights (udlc's, copied) and batches: loss at step 1 udlc {ul[0]:.7f}, "
              f"hand {hl[0]:.7f}, |diff| {abs(ul[0] - hl[0]):.2e}; max |diff| over {n} steps "
              f"{max(abs(a - b) for a, b in zip(ul, hl)):.2e}")
    print(f"    val loss per epoch (whole runs): udlc {[round(v, 4) for v in u[0]['val_loss']]}, "
          f"hand {[round(v, 4) for v in h[0]['val_loss']]}")

    if gen is not None:
        names, tps = list(gen["tps"]), gen["tps"]
        eager = tps["torch eager, udlc network"]
        print()
        print(f"generation: greedy, batch 1, {args.new_tokens} new tokens after a 64-token prompt (context "
              f"{gen['context']}), median of 5 calls each, interleaved; export took {gen['export_s']:.1f} s; "
              f"onnxruntime threads: {gen['ort_threads']} unless '1 thread'; torch threads {torch.get_num_threads()}")
        head = f"{'':40s} | {'tokens/s':>9s} {'best':>9s} {'ms/token':>9s} {'/ torch':>8s}"
        print(head)
        print("-" * len(head))
        for n in names:
            print(f"{n:40s} | {tps[n]:9.1f} {gen['best_tps'][n]:9.1f} {1e3 / tps[n]:9.2f} {tps[n] / eager:8.2f}")
        print("    / torch = tokens/s over torch eager's (udlc network); torch recomputes the last `context` tokens "
              "for every token, as onnxruntime does without the cache.")
        print(f"    the prompt's next-token logits, onnxruntime vs torch eager (udlc network): max |diff| "
              f"{gen['logit_diff']:.2e}")
        windowed = [n for n in names if "KV cache" not in n]
        same = len({gen["texts"][n] for n in windowed}) == 1
        print(f"    the {len(windowed)} whole-window continuations are {'identical' if same else 'NOT identical'}: "
              f"{gen['prompt'][-24:]!r} -> {gen['texts'][windowed[0]][:40]!r}")
        if gen["cached"]:
            a, b = gen["texts"][names[0]], gen["texts"][windowed[0]]
            agree = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            print(f"    the cached continuation agrees with them for its first {agree} of {len(b)} characters (the "
                  f"cache restarts its window when the context fills, after {gen['context'] - 64} new tokens here)")
        if not same:
            for n in windowed:
                print(f"        {n}: {gen['texts'][n][:60]!r}")

    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
