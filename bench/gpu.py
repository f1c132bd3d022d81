"""The GPU default path against hand-tuned PyTorch, in one process run: the same model trained by udlc from a spec
and by a hand-written loop with every speed setting a PyTorch user would reach for, images/s or tokens/s of each
and their ratio (the goal: udlc >= 1.0x).

  gpt2      a GPT-2-small-sized decoder (50,257-token BPE vocabulary, context 1024, 12 blocks of d_model 768, 12
            heads, d_ff 3072, tied head; dropout 0), batch 16 x 1024 tokens, AdamW, on the standard library's text
  resnet18  the zoo's ResNet-18 (examples/zoo/resnet18.yaml) at 32x32 pixels, batch 512, its SGD, on random
            pictures with 1,000 classes

Both sides start from the same weights (udlc's build) and see data resident on the GPU. udlc runs its defaults
(train.precision auto = bf16 autocast, fused optimizer, TF32, memory_format auto = channels-last convolutions);
the hand loop sets the same by hand: torch.autocast(bfloat16), fused=True, allow_tf32, channels_last, and
F.scaled_dot_product_attention(is_causal=True) in nanoGPT's model (bench/nanogpt.py). --compile adds
torch.compile to both (train.compile: true). Figures are the second epoch's training phase (the first warms up,
compiles and tunes cuDNN), udlc's from its metrics.jsonl, the hand loop's timed the same way with synchronize.

    .venv/bin/python bench/gpu.py [--models gpt2,resnet18] [--steps 30] [--compile]
    .venv/bin/python bench/gpu.py --smoke        # tiny sizes on any device: checks the script itself

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

GPT2 = {"vocab": 50257, "context": 1024, "d": 768, "heads": 12, "d_ff": 3072, "layers": 12, "batch": 16}
GPT2_SMOKE = {"vocab": 512, "context": 64, "d": 64, "heads": 4, "d_ff": 256, "layers": 2, "batch": 8}


def gpt_spec(folder: Path, shape: dict, steps: int, compile_: bool) -> Path:
    tokens = shape["batch"] * shape["context"] * steps  # an epoch of `steps` batches
    spec = folder / f"gpt-{compile_}.yaml"
    spec.write_text(json.dumps({
        "udlc": 1, "name": "gpt", "seed": 0, "task": {"language_model": {"context": shape["context"]}},
        "data": {"source": "stdlib", "tokenizer": "bpe", "vocab_size": shape["vocab"], "max_chars": tokens * 5,
                 "split": [0.9, 0.05, 0.05]},
        "model": {"input": {"shape": ["T"], "dtype": "int64"}, "init": "normal", "layers": [
            {"embedding": {"num_embeddings": shape["vocab"], "embedding_dim": shape["d"], "id": "tokens"}},
            {"learned_positions": {"max_len": shape["context"]}},
            {"gpt_block": {"d_model": shape["d"], "num_heads": shape["heads"], "d_ff": shape["d_ff"],
                           "repeat": shape["layers"]}},
            "layernorm", {"linear": {"tie": "tokens", "bias": False}}]},
        "loss": "cross_entropy", "optimizer": {"adamw": {"lr": 3e-4, "weight_decay": 0.1}},
        "schedule": {"type": "constant"},
        "train": {"epochs": 2, "batch_size": shape["batch"], "checkpoint_seconds": 3600, "compile": compile_}}))
    return spec


def resnet_spec(folder: Path, batch: int, steps: int, compile_: bool) -> Path:
    import numpy as np

    images = max(batch * steps * 10 // 9 + 10, 1100)  # 90 % for training; every one of the 1,000 classes
    rng = np.random.default_rng(0)
    np.savez(folder / "pictures.npz", x=rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8),
             y=np.arange(images) % 1000)
    spec = folder / f"resnet-{compile_}.yaml"
    spec.write_text(json.dumps({
        "udlc": 1, "extends": str(ROOT / "examples" / "zoo" / "resnet18.yaml"), "name": "resnet18-32px",
        "data": {"source": "pictures.npz", "split": [0.9, 0.05, 0.05]}, "model": {"input": [3, 32, 32]},
        "metrics": [], "schedule": {"type": "constant"},
        "train": {"epochs": 2, "batch_size": batch, "checkpoint_seconds": 3600, "compile": compile_}}))
    return spec


def udlc_rate(spec: Path, out: Path, per_sample: int) -> float:
    """udlc's second epoch: its logged samples/s × units per sample (tokens of a window, or 1 picture)."""
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    run = train_spec(compile_spec(spec), out=out, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["samples_per_s"] * per_sample


def timed_epochs(model, optimizer, batches, loss_of, device, compile_: bool, units: int) -> float:
    """The hand loop: two epochs (bf16 autocast on CUDA), the second timed; units per second."""
    import torch

    step_model = torch.compile(model) if compile_ else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rate = 0.0
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started, seen = time.perf_counter(), 0
        for x, y in batches():
            with autocast:
                loss = loss_of(step_model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seen += units * len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = seen / (time.perf_counter() - started)
    return rate


def hand_gpt_rate(spec: Path, compile_: bool) -> float:
    import torch
    import torch.nn.functional as F

    import udlc
    from nanogpt import hand_model_class, hand_state_from_udlc, model_config
    from udlc.tasks import compile_spec
    from udlc.trainer.device import pick_device

    compiled = compile_spec(spec)
    device = pick_device("auto")
    data = compiled.task.load_data(compiled)
    shape = model_config(compiled)
    model = hand_model_class()(**shape, fused=True)
    model.load_state_dict(hand_state_from_udlc(udlc.build(compiled).state_dict(), shape["layers"], True))
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    o = compiled.spec.optimizer
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps, fused=device.type == "cuda")
    ids = torch.as_tensor(data.ids["train"], dtype=torch.long, device=device)
    context, batch = shape["context"], compiled.spec.train.batch_size
    windows = (len(ids) - 1) // context
    generator = torch.Generator(device=device).manual_seed(0)

    def batches():
        order = torch.randperm(windows, generator=generator, device=device)
        for i in range(0, windows - batch + 1, batch):
            starts = order[i:i + batch, None] * context + torch.arange(context + 1, device=device)
            chunk = ids[starts]
            yield chunk[:, :-1], chunk[:, 1:]

    def loss_of(logits, y):
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    return timed_epochs(model, optimizer, batches, loss_of, device, compile_, context)


def hand_resnet_rate(spec: Path, compile_: bool) -> float:
    import torch
    import torch.nn.functional as F

    from udlc.tasks import compile_spec
    from udlc.trainer.device import fused, pick_device
    from udlc.trainer.run import build_models

    compiled = compile_spec(spec)
    device = pick_device("auto")
    data = compiled.task.load_data(compiled)
    model = build_models(compiled, device)["model"].to(memory_format=torch.channels_last)
    o = compiled.spec.optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                nesterov=o.nesterov, **fused(device)) if o.type == "sgd" else \
        torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay, **fused(device))
    x = torch.as_tensor(data.x_train, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.as_tensor(data.y_train, device=device)
    batch, generator = compiled.spec.train.batch_size, torch.Generator(device=device).manual_seed(0)

    def batches():
        order = torch.randperm(len(x), generator=generator, device=device)
        for i in range(0, len(x), batch):
            yield x[order[i:i + batch]], y[order[i:i + batch]]

    return timed_epochs(model, optimizer, batches, F.cross_entropy, device, compile_, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2,resnet18")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps an epoch")
    parser.add_argument("--compile", action="store_true", help="torch.compile on both sides")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script on any machine")
    args = parser.parse_args()
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # the hand loop's TF32
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU ({torch.get_num_threads()} threads) — not the GPU this benchmark is for"
    steps = 3 if args.smoke else args.steps
    print(f"{device}; torch {torch.__version__}; compile {args.compile}; {steps} steps an epoch, epoch 2 timed")
    print(f"{'model':<10}{'unit':<9}{'udlc':>14}{'hand-tuned':>14}{'udlc/hand':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            if name == "gpt2":
                shape = GPT2_SMOKE if args.smoke else GPT2
                spec = gpt_spec(folder, shape, steps, args.compile)
                ours = udlc_rate(spec, folder / "runs", shape["context"])
                theirs = hand_gpt_rate(spec, args.compile)
                unit = "tokens/s"
            elif name == "resnet18":
                spec = resnet_spec(folder, 32 if args.smoke else 512, steps, args.compile)
                ours = udlc_rate(spec, folder / "runs", 1)
                theirs = hand_resnet_rate(spec, args.compile)
                unit = "images/s"
            else:
                raise SystemExit(f"unknown model {name!r}: gpt2 or resnet18")
            print(f"{name:<10}{unit:<9}{ours:>14,.0f}{theirs:>14,.0f}{ours / theirs:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
