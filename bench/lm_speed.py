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
Runs alternate (udlc, hand, hand, udlc, ...); per-step medians pool every run's steps after the first few.

Generation. The last udlc run is exported with udlc.export (udlc.exporter.onnx.export_run), then greedy
continuations of a 64-token prompt (from the validation text) are timed at batch 1:
  onnxruntime  udlc.runtime.generate.LanguageModelFile(...).generate(prompt, N, temperature=0), as
               `udlc generate` runs it (onnxruntime's default threads), and the same with a one-thread session;
  torch eager  udlc's network (udlc.build + the run's final checkpoint) and the hand-written model with the
               same weights, eval() under torch.inference_mode(), recomputing the last `context` tokens
               for every new token as LanguageModelFile does (no KV cache on either side).
All four must write the same continuation; the script says whether they do.

    .venv/bin/python bench/lm_speed.py [--max-chars 200000] [--epochs 2] [--repeats 1] [--threads 1]
                                       [--qkv fused|separate] [--new-tokens 100] [--skip-generation]

A benchmark: it prints figures and asserts nothing about speed. On a machine shared with other jobs the
wall times swing (the script prints the load average); the CPU-time columns swing less.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import udlc  # no torch yet

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "char-lm.yaml"
SKIP_STEPS = 3  # the first steps of every run are warm-up: not in the per-step medians


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# ---- the hand-written model: nanoGPT (Karpathy), dropout-free as the spec is -----------------------------


def hand_model_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class CausalSelfAttention(nn.Module):
        def __init__(self, d: int, heads: int, fused: bool):
            super().__init__()
            self.heads, self.d, self.fused = heads, d, fused
            if fused:
                self.c_attn = nn.Linear(d, 3 * d)
            else:
                self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.c_proj = nn.Linear(d, d)

        def forward(self, x):
            B, T, C = x.shape
            if self.fused:
                q, k, v = self.c_attn(x).split(self.d, dim=2)
            else:
                q, k, v = self.q(x), self.k(x), self.v(x)
            q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(nn.Module):
        def __init__(self, d: int, d_ff: int):
            super().__init__()
            self.c_fc, self.gelu, self.c_proj = nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, d_ff: int, fused: bool):
            super().__init__()
            self.ln_1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, heads, fused)
            self.ln_2, self.mlp = nn.LayerNorm(d), MLP(d, d_ff)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, vocab: int, context: int, d: int, heads: int, d_ff: int, layers: int, fused: bool):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Parameter(torch.randn(context, d) * 0.02)
            self.h = nn.ModuleList(Block(d, heads, d_ff, fused) for _ in range(layers))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # weight tying

        def forward(self, idx):
            x = self.wte(idx) + self.wpe[:idx.shape[1]]
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return GPT


def hand_state_from_udlc(udlc_state: dict, layers: int, fused: bool) -> dict:
    """udlc's state_dict (names from the spec's layers) as the hand-written model's."""
    import torch

    out = {"wte.weight": udlc_state["tokens.weight"], "lm_head.weight": udlc_state["tokens.weight"],
           "wpe": udlc_state["learned_positions.weight"],
           "ln_f.weight": udlc_state["layernorm.weight"], "ln_f.bias": udlc_state["layernorm.bias"]}
    for i in range(layers):
        u, h = ("gpt_block_" if i == 0 else f"gpt_block_{i}_"), f"h.{i}."
        attn = u + "multihead_attention."
        for kind in ("weight", "bias"):
            out[h + "ln_1." + kind] = udlc_state[u + "layernorm." + kind]
            out[h + "ln_2." + kind] = udlc_state[u + "layernorm_1." + kind]
            out[h + "mlp.c_fc." + kind] = udlc_state[u + "feed_forward_linear." + kind]
            out[h + "mlp.c_proj." + kind] = udlc_state[u + "feed_forward_linear_1." + kind]
            out[h + "attn.c_proj." + kind] = udlc_state[attn + "out." + kind]
            if fused:
                out[h + "attn.c_attn." + kind] = torch.cat([udlc_state[attn + p + "." + kind] for p in "qkv"])
            else:
                for p in "qkv":
                    out[h + f"attn.{p}." + kind] = udlc_state[attn + p + "." + kind]
    return out


def model_config(compiled) -> dict:
    """The GPT's sizes, read from the compiled spec (so the hand-written model follows it)."""
    graph = next(iter(compiled.graphs.values()))
    nodes = list(graph.nodes.values())
    emb = next(n for n in nodes if n.op == "embedding").config
    pos = next(n for n in nodes if n.op == "learned_positions").config
    attn = [n for n in nodes if n.op == "multihead_attention"]
    ff = next(n for n in nodes if n.op == "linear" and "feed_forward" in n.name).config
    return {"vocab": emb.num_embeddings, "context": pos.max_len, "d": emb.embedding_dim,
            "heads": attn[0].config.num_heads, "d_ff": ff.out_features, "layers": len(attn)}


# ---- the hand-written loop -------------------------------------------------------------------------------


class HandLoop:
    def __init__(self, compiled, data, fused: bool):
        import torch

        from udlc.data.text import WindowBatches

        spec = compiled.spec
        self.spec, self.cfg, self.opt_spec = spec, spec.train, spec.optimizer
        shape = model_config(compiled)
        self.layers = shape["layers"]
        self.model = hand_model_class()(**shape, fused=fused)
        self.model.load_state_dict(hand_state_from_udlc(udlc.build(compiled).state_dict(), self.layers, fused))
        # nanoGPT's configure_optimizers: decay the matrices (embeddings, positions, linear weights), not the
        # biases and layernorm scales.
        params = [p for p in self.model.parameters() if p.requires_grad]
        o = self.opt_spec
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)
        context = compiled.task.options.context
        self.train = WindowBatches(data.ids["train"], context, "x", "train", self.cfg.batch_size, True)
        self.val = WindowBatches(data.ids["val"], context, "x", "val",
                                 self.cfg.eval_batch_size or max(self.cfg.batch_size, 256), False)
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.total_steps = len(self.train) * self.cfg.epochs
        self.step_no = 0

    def lr(self, step: int) -> float:
        """udlc's cosine schedule with linear warm-up, written out (as nanoGPT's get_lr)."""
        s, base = self.spec.schedule, self.opt_spec.lr
        assert s.type == "cosine", "this loop writes out the cosine schedule only"
        if step < s.warmup_steps:
            return base * (step + 1) / s.warmup_steps
        pct = min((step - s.warmup_steps) / max(self.total_steps - s.warmup_steps, 1), 1.0)
        low = min(s.min_lr / base, 1.0)
        return base * (low + (1.0 - low) * 0.5 * (1 + math.cos(math.pi * pct)))

    def epoch(self, steps: list) -> tuple[float, float]:
        """One epoch; appends (wall s, CPU s, loss) per step to `steps`; returns (training-phase s, val loss)."""
        import torch
        import torch.nn.functional as F

        model, opt, clip = self.model, self.optimizer, self.cfg.grad_clip
        model.train()
        t_epoch = time.perf_counter()
        for batch in self.train.epoch_batches(self.shuffle):
            xb, yb = batch["x"], batch["target"]
            t0, c0 = time.perf_counter(), time.thread_time()
            lr = self.lr(self.step_no)
            for group in opt.param_groups:
                group["lr"] = lr
            logits = model(xb)
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten())
            value = loss.item()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            steps.append((time.perf_counter() - t0, time.thread_time() - c0, value))
            self.step_no += 1
        seconds = time.perf_counter() - t_epoch

        model.eval()
        nats, tokens, correct = 0.0, 0, 0
        with torch.no_grad():
            for batch in self.val.epoch_batches(None):
                out, y = model(batch["x"]).flatten(0, 1), batch["target"].flatten()
                nats += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(-1) == y).sum().item()
                tokens += len(y)
        model.train()
        return seconds, nats / max(tokens, 1)


def run_hand(compiled, data, fused: bool) -> dict:
    import torch

    started = time.perf_counter()
    torch.use_deterministic_algorithms(compiled.spec.train.deterministic)
    torch.manual_seed(compiled.spec.seed)
    loop = HandLoop(compiled, data, fused)
    steps, train_s, stamps, val = [], [], [], []
    for _ in range(compiled.spec.train.epochs):
        seconds, val_loss = loop.epoch(steps)
        train_s.append(seconds)
        val.append(val_loss)
        stamps.append(time.perf_counter())
    return {"steps": steps, "train_s": train_s, "epoch_s": [b - a for a, b in zip(stamps, stamps[1:])],
            "val_loss": val, "total_s": time.perf_counter() - started, "model": loop.model,
            "params": sum(p.numel() for p in loop.model.parameters())}


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
    import onnxruntime as ort

    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.generate import LanguageModelFile

    t0 = time.perf_counter()
    onnx_path = udlc.export(run_dir)
    export_s = time.perf_counter() - t0
    lm = LanguageModelFile(onnx_path)
    lm1 = LanguageModelFile(onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    lm1.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    shape = model_config(compiled)
    net = udlc.build(compiled)
    checkpoint.load_models({compiled.task.network(compiled): net}, RunFolder.open(run_dir).final_checkpoint(compiled.spec))
    hand = hand_model_class()(**shape, fused=fused)
    hand.load_state_dict(hand_state_from_udlc(net.state_dict(), shape["layers"], fused))

    prompt_ids = [int(i) for i in data.ids["val"][:64]]
    prompt = lm.tokenizer.decode(prompt_ids)
    assert lm.tokenizer.encode(prompt).tolist() == prompt_ids, "the prompt does not round-trip"
    context = lm.context
    names = ["onnxruntime (LanguageModelFile)", "onnxruntime, 1 thread", "torch eager, udlc network",
             "torch eager, hand-written"]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    texts: dict[str, str] = {}
    for _ in range(repeats):
        for name, model in zip(names, (lm, lm1, net, hand)):
            if isinstance(model, LanguageModelFile):
                g = model.generate(prompt, new, temperature=0)
                text, s = g.text, g.seconds
            else:
                made, s = torch_generate(model, prompt_ids, new, context)
                text = lm.tokenizer.decode(made)
            seconds[name].append(s)
            texts[name] = text
    return {"export_s": export_s, "prompt": prompt, "texts": texts, "ort_threads": _ort_threads(lm.session),
            "tps": {n: new / med(s) for n, s in seconds.items()},
            "best_tps": {n: new / min(s) for n, s in seconds.items()}}


def _ort_threads(session) -> str:
    value = session.get_session_options().intra_op_num_threads
    return str(value) if value else f"default (0: one per physical core; {os.cpu_count()} CPUs)"


# ---- main ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-chars", type=int, default=200_000, help="data.max_chars (default 200000)")
    ap.add_argument("--epochs", type=int, default=2, help="train.epochs (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="whole runs of each, alternating (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both (default 1)")
    ap.add_argument("--qkv", choices=("fused", "separate"), default="fused",
                    help="the hand-written attention's projections: one qkv linear (nanoGPT) or three")
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
    steps_per_epoch = math.ceil(len(compiled.task.batches(data, "train", batch_size=compiled.spec.train.batch_size,
                                                          shuffle=True, device="cpu")))
    print(f"{SPEC.relative_to(ROOT)} · max_chars {args.max_chars} · {args.epochs} epochs of {steps_per_epoch} steps "
          f"(batch {compiled.spec.train.batch_size} x context {compiled.task.options.context}) · hand-written qkv "
          f"{args.qkv}", flush=True)

    runs: dict = {"udlc": [], "hand": []}
    with tempfile.TemporaryDirectory(prefix="udlc-bench-lm-") as tmp:
        for r in range(args.repeats):
            for who in (("udlc", "hand") if r % 2 == 0 else ("hand", "udlc")):
                res = run_udlc(compiled, Path(tmp) / f"r{r}") if who == "udlc" else run_hand(compiled, data, fused)
                runs[who].append(res)
                walls = [s[0] for s in res["steps"][SKIP_STEPS:]]
                print(f"  run {r + 1}/{args.repeats} {who:4s}: step median {med(walls) * 1e3:7.1f} ms, training "
                      f"phase of the last epoch {res['train_s'][-1]:6.2f} s, whole run {res['total_s']:6.2f} s",
                      flush=True)
        gen = None if args.skip_generation else generation(compiled, runs["udlc"][-1]["run_dir"], data, fused,
                                                           args.new_tokens, repeats=5)

    u, h = runs["udlc"], runs["hand"]
    pool = lambda rs, i: [s[i] for r in rs for s in r["steps"][SKIP_STEPS:]]  # noqa: E731
    uw, hw, uc, hc = pool(u, 0), pool(h, 0), pool(u, 1), pool(h, 1)
    u_loss, h_loss = [s[2] for s in u[0]["steps"]], [s[2] for s in h[0]["steps"]]
    n_steps = min(len(u_loss), len(h_loss))
    max_diff = max(abs(a - b) for a, b in zip(u_loss, h_loss))

    print()
    print(f"training: time per optimizer step, median of {len(uw)} udlc / {len(hw)} hand steps (the first "
          f"{SKIP_STEPS} of every run left out); ratio = udlc / hand (goal <= 1.05)")
    head = f"{'':26s} | {'udlc':>9s} {'hand':>9s} {'ratio':>7s} | {'udlc min':>9s} {'hand min':>9s}"
    print(head)
    print("-" * len(head))
    print(f"{'step, wall ms':26s} | {med(uw) * 1e3:9.1f} {med(hw) * 1e3:9.1f} {med(uw) / med(hw):7.3f} | "
          f"{min(uw) * 1e3:9.1f} {min(hw) * 1e3:9.1f}")
    print(f"{'step, CPU ms (this thread)':26s} | {med(uc) * 1e3:9.1f} {med(hc) * 1e3:9.1f} {med(uc) / med(hc):7.3f} | "
          f"{min(uc) * 1e3:9.1f} {min(hc) * 1e3:9.1f}")
    if args.epochs > 1:
        ut, ht = med([r["train_s"][-1] for r in u]), med([r["train_s"][-1] for r in h])
        ue, he = med([t for r in u for t in r["epoch_s"]]), med([t for r in h for t in r["epoch_s"]])
        print(f"{'training phase, last ep. s':26s} | {ut:9.2f} {ht:9.2f} {ut / ht:7.3f} |")
        # what the last epoch spent outside the timed steps: drawing batches, udlc's progress line
        uo = med([r["train_s"][-1] - sum(s[0] for s in r["steps"][-steps_per_epoch:]) for r in u])
        ho = med([r["train_s"][-1] - sum(s[0] for s in r["steps"][-steps_per_epoch:]) for r in h])
        print(f"{'  of it outside steps, ms':26s} | {uo * 1e3:9.1f} {ho * 1e3:9.1f} {'':7s} |")
        print(f"{'whole epoch 2..E, s':26s} | {ue:9.2f} {he:9.2f} {ue / he:7.3f} |")
    ur, hr = med([r["total_s"] for r in u]), med([r["total_s"] for r in h])
    print(f"{'whole run, s':26s} | {ur:9.2f} {hr:9.2f} {ur / hr:7.3f} |")
    print("    step = the task's train_step in udlc's loop (forward, loss, loss.item(), backward, clip, AdamW, zero_grad,")
    print("    LambdaLR), the same span in the hand-written loop; training phase = udlc's logged `seconds`; whole epoch =")
    print("    from one epoch's end to the next (validation, and udlc's checkpoints, included); whole run = the call")
    print("    (udlc: the run folder and the test metrics too; both: building the model and the optimizer).")
    print(f"    parameters: udlc {u[0]['params']:,} (graph), hand-written {h[0]['params']:,} (unique tensors)"
          f"{'' if u[0]['params'] == h[0]['params'] else '  — DIFFERENT'}")
    print(f"    same initial weights (udlc's, copied): loss at step 1 udlc {u_loss[0]:.7f}, hand {h_loss[0]:.7f}, "
          f"|diff| {abs(u_loss[0] - h_loss[0]):.2e}; max |diff| over all {n_steps} steps {max_diff:.2e}; "
          f"last step {u_loss[n_steps - 1]:.4f} vs {h_loss[n_steps - 1]:.4f}")
    print(f"    val loss per epoch: udlc {[round(v, 4) for v in u[0]['val_loss']]}, "
          f"hand {[round(v, 4) for v in h[0]['val_loss']]}")

    if gen is not None:
        names = list(gen["tps"])
        ort_tps, torch_tps = gen["tps"][names[0]], gen["tps"][names[2]]
        print()
        print(f"generation: greedy, batch 1, {args.new_tokens} new tokens after a 64-token prompt, median of 5 calls "
              f"(export took {gen['export_s']:.1f} s); onnxruntime threads: {gen['ort_threads']}; torch threads "
              f"{torch.get_num_threads()}")
        head = f"{'':34s} | {'tokens/s':>9s} {'best':>9s} {'ms/token':>9s}"
        print(head)
        print("-" * len(head))
        for n in names:
            print(f"{n:34s} | {gen['tps'][n]:9.1f} {gen['best_tps'][n]:9.1f} {1e3 / gen['tps'][n]:9.2f}")
        print(f"    onnxruntime (LanguageModelFile) / torch eager udlc network, tokens/s: {ort_tps / torch_tps:.2f}x")
        same = len(set(gen["texts"].values())) == 1
        print(f"    the four continuations are {'identical' if same else 'NOT identical'}; prompt "
              f"{gen['prompt'][-30:]!r} -> {gen['texts'][names[0]][:40]!r}")
        if not same:
            for n, t in gen["texts"].items():
                print(f"        {n}: {t[:60]!r}")

    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
