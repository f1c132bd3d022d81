"""The exporter's half of the served kinds (udlc.tasks.served): for each kind, how a network is wrapped into the
module that is exported — raw inputs in, the kind's outputs out (udlc.exporter.serving, udlc.exporter.decoding)
— with its typed inputs and the metadata keys of its own. udlc.exporter.onnx looks the wrapper up by the
served kind and writes the common metadata around it; the runtime's readers (udlc.runtime.readers) read the
file by the same kind."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from udlc.data import Normalization
from udlc.exporter import decoding
from udlc.exporter.serving import Decode, Denoise, NodeServing, Serving
from udlc.tasks.served import (CLASSES, DECODED, DECODED_TEXT, DENOISER, EDGE_PROBABILITIES, FILL_MASK, KINDS, LATENTS,
                               MASKS, NEXT_TOKEN, NODE_CLASSES, PICTURES, SAMPLES, TEXT_CLASSES, TOKEN_LABELS, VALUES)


@dataclass
class Export:
    """What a wrapper is given: the network with the run's weights, its graph, what is served of it, run.json's
    record, and the symbols' smallest sizes and bounds (a wrapper may add symbols, as the key/value cache's P)."""

    network: Any
    graph: Any
    served: Any  # udlc.tasks.registry.Served
    info: dict[str, Any]
    symbols: dict[str, int]
    bounds: dict[str, int]

    @property
    def output(self) -> int | None:
        """The served output's index, or None where the network has one output and returns it bare."""
        return self.served.output if len(self.graph.outputs) > 1 else None

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_json(self.info["normalization"])

    def one_input(self) -> tuple[str, tuple]:
        (name, shape), = self.graph.inputs.items()  # a served network takes one input (the task checks it)
        return name, tuple(shape)

    def typed_inputs(self) -> list[tuple]:
        return [(name, shape, self.graph.dtype_of(name)) for name, shape in self.graph.inputs.items()]


@dataclass
class Wrapped:
    model: Any  # the module exported; its `output_names` begin with the kind's outputs
    inputs: list[tuple]  # (name, one sample's shape[, dtype])
    metadata: dict[str, str] = field(default_factory=dict)  # the kind's own keys
    also: dict[str, int] | None = None  # the sizes of one more parity check beside the default one


def generative(e: Export, inputs: list[tuple]) -> dict[str, str]:
    """What `udlc sample` draws and how it pictures samples; the shapes are those the file takes."""
    shapes = json.dumps([list(shape) for _, shape, *_ in inputs])
    return {"network": e.served.network, "latent_shape": json.dumps(e.info["latent_shape"]),
            "value_range": json.dumps(e.info["value_range"]), "input_shapes": shapes, "sample_shapes": shapes}


def classes(e: Export) -> Wrapped:
    name, shape = e.one_input()
    return Wrapped(Serving(e.network, shape, e.output, e.served.answers, e.normalization,
                           names=KINDS[CLASSES].outputs), [(name, shape)])


def values(e: Export) -> Wrapped:
    """Values in the targets' units: un-standardized; from logits of values in [0, 1] (an autoencoder's bce),
    squashed then put back in the data's units."""
    name, shape = e.one_input()
    names = KINDS[VALUES].outputs
    if e.served.answers == "sigmoid":
        return Wrapped(Decode(e.network, e.output, True, e.normalization, normalize_input=True, names=names),
                       [(name, shape)])
    target = e.info.get("target_normalization")  # absent in run.json of runs from before it existed
    network = e.network
    if e.info.get("feedback"):  # task forecasting's feedback: the horizon made by feeding predictions back
        from udlc.tasks.feedback import Feedback

        network = Feedback(e.network, e.info["feedback"])
    return Wrapped(Serving(network, shape, e.output, "identity", e.normalization,
                           Normalization.from_json(target) if target is not None else None, names=names),
                   [(name, shape)])


def latents(e: Export) -> Wrapped:
    name, shape = e.one_input()
    inputs = [(name, shape)]
    return Wrapped(Serving(e.network, shape, e.output, "identity", e.normalization, names=KINDS[LATENTS].outputs),
                   inputs, generative(e, inputs))


def decoder(kind: str) -> Callable[[Export], Wrapped]:
    """A code or latent in, a sample in the data's units out (DECODED and SAMPLES differ in who reads them)."""

    def wrap(e: Export) -> Wrapped:
        inputs = [e.one_input()]
        return Wrapped(Decode(e.network, e.output, e.served.answers == "sigmoid", e.normalization,
                              names=KINDS[kind].outputs), inputs, generative(e, inputs))

    return wrap


def denoiser(e: Export) -> Wrapped:
    inputs = e.typed_inputs()
    return Wrapped(Denoise(e.network), inputs, {**generative(e, inputs), "diffusion": json.dumps(e.info["diffusion"])})


def nodes(embed: bool) -> Callable[[Export], Wrapped]:
    """A graph network on node features (normalized in the graph) and edges: class probabilities per node, or
    (`embed`) the nodes' embeddings, whose dot products the reader turns into edge probabilities."""

    def wrap(e: Export) -> Wrapped:
        return Wrapped(NodeServing(e.network, e.normalization, embed=embed), e.typed_inputs())

    return wrap


class MaskServing(Serving):
    """A segmentation network served: raw pictures in; each pixel's class probabilities (B, K, H, W) and its most
    likely class (B, H, W) out, so that a caller of the file needs no argmax of its own."""

    def forward(self, x: Any) -> tuple[Any, Any]:
        _, probabilities = super().forward(x)
        return probabilities, probabilities.argmax(dim=1)


def masks(e: Export) -> Wrapped:
    name, shape = e.one_input()
    return Wrapped(MaskServing(e.network, shape, e.output, "softmax", e.normalization, names=KINDS[MASKS].outputs),
                   [(name, shape)])


def pictures(e: Export) -> Wrapped:
    """Raw pictures in, pictures in the targets' units out; the targets' range lets a reader write them as PNGs."""
    name, shape = e.one_input()
    target = e.info.get("target_normalization")
    return Wrapped(Serving(e.network, shape, e.output, "identity", e.normalization,
                           Normalization.from_json(target) if target is not None else None,
                           names=KINDS[PICTURES].outputs), [(name, shape)],
                   {"value_range": json.dumps(e.info["value_range"])})


# Networks on token ids (udlc.exporter.decoding).

def text_classes(e: Export) -> Wrapped:
    return Wrapped(*decoding.text_classes(e.network, e.graph, e.info))


def next_token(e: Export) -> Wrapped:
    model, inputs, also, extra = decoding.next_token(e.network, e.graph, e.info, e.symbols, e.bounds)
    return Wrapped(model, inputs, extra, also)


def decoded_text(e: Export) -> Wrapped:
    return Wrapped(*decoding.decoded_text(e.network, e.graph, e.info))


def token_labels(e: Export) -> Wrapped:
    return Wrapped(*decoding.token_labels(e.network, e.graph, e.info))


def fill_mask(e: Export) -> Wrapped:
    """A masked language model: ids (and token types) in, each position's logits and token probabilities out;
    `udlc generate` fills a prompt's [MASK]s with the tokenizer the file carries."""
    extra = {"tokenizer": json.dumps(e.info["tokenizer"]), "context": str(e.info["context"]),
             "mask_token": e.info["mask_token"]}
    return Wrapped(decoding.token_model(e.network, e.graph, e.info["vocab_size"], classes=True),
                   decoding.typed_inputs(e.graph), extra)


WRAPPERS: dict[str, Callable[[Export], Wrapped]] = {
    CLASSES: classes, VALUES: values, LATENTS: latents, DECODED: decoder(DECODED), SAMPLES: decoder(SAMPLES),
    DENOISER: denoiser, NODE_CLASSES: nodes(embed=False), EDGE_PROBABILITIES: nodes(embed=True),
    MASKS: masks, PICTURES: pictures,
    TEXT_CLASSES: text_classes, NEXT_TOKEN: next_token, DECODED_TEXT: decoded_text, TOKEN_LABELS: token_labels,
    FILL_MASK: fill_mask,
}
if WRAPPERS.keys() != KINDS.keys():  # a kind the exporter cannot write, or a wrapper for no kind
    raise RuntimeError(f"export wrappers and served kinds differ: {sorted(WRAPPERS.keys() ^ KINDS.keys())}")
