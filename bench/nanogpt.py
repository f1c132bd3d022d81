"""The hand-written reference of bench/lm_speed.py: examples/char-lm.yaml's model written out as nanoGPT
(Karpathy), dropout-free as the spec is, started from udlc's own initial weights, and its training loop
(the same optimizer, schedule, clipping and batches as udlc's). See lm_speed.py's docstring for what is timed.
"""

from __future__ import annotations

import math
import time

import udlc  # no torch yet


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

    def step(self, xb, yb) -> tuple[float, float, float]:
        """One optimizer step on one batch; returns (wall s, CPU s of this thread, loss)."""
        import torch
        import torch.nn.functional as F

        model, opt, clip = self.model, self.optimizer, self.cfg.grad_clip
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
        self.step_no += 1
        return time.perf_counter() - t0, time.thread_time() - c0, value

    def epoch(self, steps: list) -> tuple[float, float]:
        """One epoch; appends (wall s, CPU s, loss) per step to `steps`; returns (training-phase s, val loss)."""
        import torch
        import torch.nn.functional as F

        model = self.model
        model.train()
        t_epoch = time.perf_counter()
        for batch in self.train.epoch_batches(self.shuffle):
            steps.append(self.step(batch["x"], batch["target"]))
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
