"""The module that is exported: raw inputs in, answers out.

A model file stands on its own (DESIGN.md): whoever loads model.onnx in onnxruntime, from any language,
feeds the raw feature matrix and reads answers, with nothing to copy out of udlc. So the exported graph
is the served network wrapped in what training kept outside it: the input standardization fitted on the
training split, the choice of the served output, and what the loss makes of that output (class
probabilities, or regression values back in the targets' own units).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from udlc.compiler.infer import bind
from udlc.data import Normalization

# The outputs' names by what the module makes of the network's output, unless the served kind names them.
OUTPUT_NAMES = {"softmax": ["logits", "probabilities"], "sigmoid": ["logits", "probabilities"],
                "identity": ["prediction"]}


class Serving(nn.Module):
    """network((x - shift) / scale), its served output, then probabilities or (given the targets' normalization)
    values in the targets' units. `names`: the outputs' names (default by `answers`)."""

    def __init__(self, network: nn.Module, input_shape: tuple[int | str, ...], output: int | None, answers: str,
                 normalization: Normalization, target_normalization: Normalization | None = None,
                 names: tuple[str, ...] | None = None):
        super().__init__()
        if answers not in OUTPUT_NAMES:
            raise ValueError(f"unknown answers {answers!r}: expected one of {', '.join(OUTPUT_NAMES)}")
        self.network = network
        self.input_shape = tuple(input_shape)  # one sample's, symbols (T) included
        self.output = output  # None: the network has one output and returns it bare
        self.answers = answers
        self.names = list(names or OUTPUT_NAMES[answers])
        self.register_buffer("shift", torch.from_numpy(normalization.shift.copy()))
        self.register_buffer("scale", torch.from_numpy(normalization.scale.copy()))
        # Only regression values are un-standardized; runs from before target standardization have none.
        self.unstandardize = answers == "identity" and target_normalization is not None
        if self.unstandardize:
            self.register_buffer("target_shift", torch.from_numpy(target_normalization.shift.copy()))
            self.register_buffer("target_scale", torch.from_numpy(target_normalization.scale.copy()))

    @property
    def output_names(self) -> list[str]:
        return self.names

    def forward(self, x: torch.Tensor) -> Any:
        # The same float32 arithmetic as Normalization.apply_normalization, so the network sees what it trained on.
        out = self.network((x - self.shift) / self.scale)
        if self.output is not None:
            out = out[self.output]
        if self.answers == "softmax":
            return out, torch.softmax(out, dim=1)
        if self.answers == "sigmoid":
            # One logit; two columns [1 - p, p] so that the class is the argmax, as for softmax.
            # sigmoid(-z) rather than 1 - sigmoid(z): 1 - p keeps its precision when p is near 1.
            return out, torch.cat([torch.sigmoid(-out), torch.sigmoid(out)], dim=1)
        if self.unstandardize:
            out = out * self.target_scale + self.target_shift  # as Supervised.raw: the targets' own units
        return out

    def sample_inputs(self, batch: int, generator: torch.Generator, binding: dict[str, int]
                      ) -> tuple[torch.Tensor, ...]:
        """Raw inputs that standardize to N(0, 1), the values the network meets in use: the export and its
        parity gate then exercise the network where it works, not where raw N(0, 1) values land once
        standardized (for pixels of 0..16, all far below the training mean)."""
        shape = (batch, *bind(self.input_shape, binding))
        return (torch.randn(shape, generator=generator) * self.scale + self.shift,)


class Decode(nn.Module):
    """A latent in, a sample in the data's units out: a decoder or generator, then sigmoid where it gives
    logits of values in [0, 1] (`squash`), then the data's normalization undone. With `normalize_input`, a raw
    sample in (an autoencoder's reconstruction from logits). `names`: the output's name."""

    def __init__(self, network: nn.Module, output: int | None, squash: bool, normalization: Normalization,
                 normalize_input: bool = False, names: tuple[str, ...] = ("sample",)):
        super().__init__()
        self.network, self.output, self.squash, self.normalize_input = network, output, squash, normalize_input
        self.output_names = list(names)
        self.register_buffer("shift", torch.from_numpy(normalization.shift.copy()))
        self.register_buffer("scale", torch.from_numpy(normalization.scale.copy()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.network((z - self.shift) / self.scale if self.normalize_input else z)
        if self.output is not None:
            out = out[self.output]
        if self.squash:
            out = torch.sigmoid(out)
        return out * self.scale + self.shift


class Denoise(nn.Module):
    """A diffusion model's denoiser as trained: (x_t, t[, label]) in, the predicted noise out. The sampler
    runs around it (udlc.runtime.sample), in the data's normalized units, and un-normalizes the result."""

    output_names = ["noise"]

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*inputs)


class NodeServing(nn.Module):
    """A graph network's classes: raw node features (normalized here, as in training), the edge list and, to
    classify graphs, the batch vector (or the edge weights) in; logits and probabilities per node out (to
    classify graphs: every node its graph's)."""

    def __init__(self, network: nn.Module, normalization: Normalization, embed: bool = False):
        super().__init__()
        self.network, self.embed = network, embed  # embed: the nodes' embeddings alone (link prediction)
        self.register_buffer("shift", torch.from_numpy(normalization.shift.reshape(-1).copy()))
        self.register_buffer("scale", torch.from_numpy(normalization.scale.reshape(-1).copy()))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, third: torch.Tensor | None = None) -> Any:
        """`third`: the network's third input when it has one, the batch vector or the edge weights."""
        inputs = (edge_index,) if third is None else (edge_index, third)
        out = self.network((x - self.shift) / self.scale, *inputs)
        return out if self.embed else (out, torch.softmax(out, dim=-1))

    @property
    def output_names(self) -> list[str]:
        return ["embedding"] if self.embed else ["logits", "probabilities"]

