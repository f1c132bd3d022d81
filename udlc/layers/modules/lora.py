"""LoRA's module (Hu et al. 2021, as peft implements it): a linear layer with a low-rank update beside its
weight. It is an nn.Linear that keeps the base layer's own `weight` and `bias` (the same tensors, under the same
names), so a checkpoint or a published file of the base network loads into the adapted one unchanged, and adds
`lora_A` (rank, in) and `lora_B` (out, rank). udlc.spec.finetune.LoraSpec describes the options; the spec's
`lora:` targets are wrapped by `adapt`, and `merge` folds every adapter back into a plain nn.Linear for export."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LoraLinear(nn.Linear):
    """y = W x + b + (alpha / rank) * B A dropout(x), as peft's lora.Linear computes it. A starts as nn.Linear's
    own weights do (Kaiming-uniform with a = sqrt(5)) and B at zero, so the adapted layer starts equal to its
    base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        nn.Module.__init__(self)  # not nn.Linear's __init__, which would draw a weight of its own
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return F.linear(x, self.weight, self.bias) + update * self.scaling

    def merged(self) -> nn.Linear:
        """The plain linear layer this one computes (outside training): W + (alpha / rank) B A, and b."""
        out = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.weight + (self.lora_B @ self.lora_A) * self.scaling)
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"


def adapt(model: nn.Module, names: list[str], rank: int, alpha: float, dropout: float) -> int:
    """Wrap each named submodule that is an nn.Linear, and each nn.Linear child (an attention layer's q, k, v and
    out) of the others, in a LoraLinear; returns how many were wrapped. The adapters' A is drawn from the global
    random stream: the caller seeds it."""
    wrapped = 0
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            parent, _, attr = name.rpartition(".")
            targets = [(model.get_submodule(parent) if parent else model, attr, module)]
        else:
            targets = [(module, attr, child) for attr, child in module.named_children() if isinstance(child, nn.Linear)]
        for owner, attr, linear in targets:
            if not isinstance(linear, LoraLinear):
                setattr(owner, attr, LoraLinear(linear, rank, alpha, dropout))
                wrapped += 1
    return wrapped


def merge(model: nn.Module) -> nn.Module:
    """The model with every LoraLinear replaced by the plain nn.Linear it computes (in place; returned)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLinear):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, module.merged())
    return model


def has_adapters(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLinear) for m in model.modules())
