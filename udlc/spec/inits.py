"""Weight initializations a spec can name (`init: kaiming` on a layer, `model.init` for all): one entry each,
with what it is for. Their implementations are in udlc.compiler.lower, which applies them, under the same names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InitEntry:
    name: str
    description: str


INITS: dict[str, InitEntry] = {}


def register(entry: InitEntry) -> None:
    if entry.name in INITS:
        raise ValueError(f"init {entry.name!r} registered twice")
    INITS[entry.name] = entry


register(InitEntry("default", "PyTorch's own initialization of each layer"))
register(InitEntry("kaiming", "He normal, for ReLU networks"))
register(InitEntry("xavier", "Glorot uniform, for tanh and sigmoid networks"))
register(InitEntry("normal", "normal with std 0.02, as GPT and BERT"))
register(InitEntry("zeros", "all zeros (a residual branch that starts as the identity)"))
register(InitEntry("orthogonal", "a (semi-)orthogonal matrix, gain 1 (torch.nn.init.orthogonal_; kernels flattened "
                                 "to out × in·k): every singular value 1, for very deep plain stacks"))
register(InitEntry("uniform", "U(-a, a) with a = 1/sqrt(fan_in), fan_in = inputs × kernel size: the bound torch's "
                              "Linear and Conv give their weights, here for every layer alike (an embedding's is "
                              "1/sqrt(its width))"))
