"""Weight initializations a spec can name (`init: kaiming` on a layer, `model.init` for all): one entry
each, holding what it does to a weight matrix or kernel. torch is imported only when one is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class InitEntry:
    name: str
    apply: Callable[[Any], None] | None  # fills a weight of rank >= 2 in place; None keeps PyTorch's own init
    description: str


INITS: dict[str, InitEntry] = {}


def register(entry: InitEntry) -> None:
    if entry.name in INITS:
        raise ValueError(f"init {entry.name!r} registered twice")
    INITS[entry.name] = entry


def _kaiming(weight: Any) -> None:
    from torch import nn

    nn.init.kaiming_normal_(weight, nonlinearity="relu")


def _xavier(weight: Any) -> None:
    from torch import nn

    nn.init.xavier_uniform_(weight)


def _normal(weight: Any) -> None:
    from torch import nn

    nn.init.normal_(weight, std=0.02)


def _zeros(weight: Any) -> None:
    from torch import nn

    nn.init.zeros_(weight)


register(InitEntry("default", None, "PyTorch's own initialization of each layer"))
register(InitEntry("kaiming", _kaiming, "He normal, for ReLU networks"))
register(InitEntry("xavier", _xavier, "Glorot uniform, for tanh and sigmoid networks"))
register(InitEntry("normal", _normal, "normal with std 0.02, as GPT and BERT"))
register(InitEntry("zeros", _zeros, "all zeros (a residual branch that starts as the identity)"))
