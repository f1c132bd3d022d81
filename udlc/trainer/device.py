"""Where a run computes and how: the device, float64 where train.precision asks, and on CUDA the defaults a
hand-tuned PyTorch loop would use — bf16 autocast (`train.precision: auto`), TF32 matrix products, fused
Adam/AdamW/SGD steps, convolution weights channels-last (`train.memory_format: auto`). Pinned host memory for
streamed data and whole splits resident on the GPU are udlc.data.batches' part; `train.compile: true` is
torch.compile."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Iterator

from udlc.errors import UdlcError


def pick_device(choice: str, processes: Any = None):
    """The spec's train.device; on several processes, each its own GPU (torchrun's LOCAL_RANK)."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UdlcError("train.device is 'cuda' but no CUDA device is available — use 'auto' or 'cpu'")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and processes is not None:  # udlc.trainer.distributed.start checked there is one
        return torch.device("cuda", processes.local_rank)
    return torch.device(choice)


def precision(train: Any, device: Any) -> tuple[bool, Any]:
    """Whether the run computes in bf16, and the context manager its forward passes run in. fp64 needs none: its
    networks are float64 themselves (float64, which udlc.trainer.loop.Setup applies)."""
    import torch

    bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    return bf16, partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16 else nullcontext


def float64(models: dict[str, Any]) -> None:
    """train.precision fp64: each network's parameters and buffers in float64, and float inputs widened as they
    enter it, so every batch (and a task's own draws: a GAN's latents, a diffusion's noise) reaches the network
    in float64 without any task or data loader knowing. Integer inputs (token ids, edge indices) pass as they are.
    Applied twice, a network is hooked once."""
    import torch

    def widen(module: Any, args: tuple) -> tuple:
        return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)

    for model in models.values():
        if getattr(model, "udlc_float64", False):
            continue
        model.double()
        model.register_forward_pre_hook(widen)
        model.udlc_float64 = True


def channels_last(memory_format: str, device: Any, models: dict[str, Any]) -> bool:
    """`channels_last`, or `auto` on CUDA for networks with 2-D convolutions (tensor cores read NHWC)."""
    from torch import nn

    if memory_format != "auto":
        return memory_format == "channels_last"
    return device.type == "cuda" and any(isinstance(m, nn.Conv2d) for model in models.values()
                                         for m in model.modules())


def fused(device: Any) -> dict[str, bool]:
    """The optimizer's keyword for one fused kernel per step: on CUDA (every parameter there)."""
    return {"fused": True} if device.type == "cuda" else {}


@contextmanager
def tf32(device: Any) -> Iterator[None]:
    """TF32 matrix products and convolutions on CUDA for this run (float32 inputs, 10-bit mantissa products, as
    PyTorch's performance guide advises for training); the caller's settings come back after."""
    import torch

    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
