"""Models that read token ids, as exported: a language model with its key/value cache (so that each new token
costs one step of one token), and the rest (an encoder–decoder, a language model that cannot be cached) as
the network itself on its typed inputs.

The exported graph takes the new tokens (B, T) and, for each causal self-attention layer, the keys and
values of the P positions before them (B, kv_heads, P, head_dim); it gives the logits of the new
positions (B, T, vocab) and the keys and values of all P + T positions. With P = 0 it is the plain
forward of the network: `udlc generate` feeds the prompt that way, then one token at a time.

This holds only where each position's output depends on earlier positions through the causal attention
alone: every other layer must work position by position (a linear, a norm of the features, an
activation, an embedding, ...), and positions are added at the offset P. `cache_plan` says whether a
network is such; one that is not (a convolution or a recurrent layer over time) is exported without a
cache and generates by running its whole window for each token.
"""

from __future__ import annotations

import json
from typing import Any

from udlc.compiler.graph import Graph
from udlc.layers import REGISTRY


def cache_plan(graph: Graph) -> tuple[list[str], str | None]:
    """The attention nodes whose keys and values are cached, or the reason the network cannot be cached."""
    (name, shape), = graph.inputs.items()
    if len(shape) != 1 or not isinstance(shape[0], str):
        return [], "the input has no symbolic length"
    t = shape[0]
    cached = []
    for node in graph.nodes.values():
        shapes = [graph.shape_of(i) for i in node.inputs] + list(node.shapes)
        if any(s is None or not s or s[0] != t or len(s) > 2 for s in shapes):
            return [], f"layer '{node.name}' ({node.op}) changes the sequence axis"
        layer = REGISTRY[node.op]
        if node.op == "multihead_attention" and getattr(node.config, "causal", False):
            cached.append(node.name)
        elif not (layer.works_position_wise(node.config) or layer.positions_table):
            # the registry says which layers are (udlc.layers.registry.LayerType.position_wise): a concat or
            # split along the features, a layernorm of them, a linear, an activation, ...
            return [], f"layer '{node.name}' ({node.op}) is not computed position by position"
    if not cached:
        return [], "the network has no causal self-attention"
    return cached, None


def past_symbol(length: str) -> str:
    """The cached positions' symbol: P, unless the network calls its length that."""
    return "P" if length != "P" else "PAST"


def cached_decoder(network: Any, graph: Graph, cached: list[str], vocab_size: int) -> Any:
    """The network as a module (tokens, *past keys and values) -> (logits, *present keys and values)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from udlc.layers.modules.attention import rotary

    def attend(m: Any, x: Any, past_k: Any, past_v: Any, start: Any) -> tuple[Any, Any, Any]:
        """Causal self-attention of T new positions over the P cached ones and themselves."""
        q = m.split(m.q(x), m.heads)
        k, v = m.split(m.k(x), m.kv_heads), m.split(m.v(x), m.kv_heads)
        if m.inv_freq is not None:
            q, k = rotary(q, m.inv_freq, start), rotary(k, m.inv_freq, start)
        k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        kk, vv = k, v
        if m.heads > m.kv_heads:
            kk, vv = (t.repeat_interleave(m.heads // m.kv_heads, dim=1) for t in (k, v))
        n, s = x.shape[1], k.shape[2]
        keep = torch.arange(n, device=x.device)[:, None] + (s - n) >= torch.arange(s, device=x.device)[None, :]
        out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=keep, scale=m.scale)
        return m.out(out.transpose(1, 2).reshape(x.shape)), k, v

    class CachedDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network
            self.vocab_size = vocab_size
            (self.input_name, (self.length,)), = graph.inputs.items()  # the length's symbol: T
            self.past = past_symbol(self.length)
            self.heads = {n: (network.get_submodule(n).kv_heads, network.get_submodule(n).head_dim) for n in cached}

        @property
        def output_names(self) -> list[str]:
            return ["logits"] + [f"present_{kv}_{i}" for i in range(len(cached)) for kv in ("key", "value")]

        @property
        def input_names(self) -> list[str]:
            return [self.input_name] + [f"past_{kv}_{i}" for i in range(len(cached)) for kv in ("key", "value")]

        def forward(self, *inputs):  # tokens, then each cached layer's past keys and values
            tokens, past = inputs[0], inputs[1:]
            start = past[0].shape[2]
            values, presents = {self.input_name: tokens}, []
            for node in graph.nodes.values():
                args = [values[i] for i in node.inputs]
                module = self.network.get_submodule(node.name)
                if node.name in self.heads:
                    i = cached.index(node.name)
                    out, k, v = attend(module, args[0], past[2 * i], past[2 * i + 1], start)
                    presents += [k, v]
                elif REGISTRY[node.op].positions_table:  # the table's rows from the first new position
                    table = getattr(module, REGISTRY[node.op].positions_table)
                    out = args[0] + table[start:start + args[0].shape[1]]
                else:
                    out = module(*args)
                values[node.name] = out
                for j, name in enumerate(node.out_names):
                    values[f"{node.name}.{name}"] = out[j]
            return (values[graph.outputs[0]], *presents)

        def sample_inputs(self, batch: int, generator: Any, binding: dict[str, int]) -> tuple:
            """Ids across the vocabulary for T new positions, and random keys and values for P cached ones."""
            t, p = binding.get(self.length, 3), binding.get(self.past, 5)
            past = []
            for kv_heads, head_dim in self.heads.values():
                past += [torch.randn(batch, kv_heads, p, head_dim, generator=generator) for _ in range(2)]
            return (torch.randint(0, self.vocab_size, (batch, t), generator=generator), *past)

    return CachedDecoder().eval()


def typed_inputs(graph: Graph) -> list[tuple]:
    return [(name, shape, graph.dtype_of(name)) for name, shape in graph.inputs.items()]


def text_classes(network: Any, graph: Graph, info: dict) -> tuple[Any, list[tuple], dict[str, str]]:
    """A text classifier: ids and mask in, class probabilities out; `udlc predict` tokenizes the column itself."""
    extra = {"tokenizer": json.dumps(info["tokenizer"]), "text_column": info["text_column"],
             "max_tokens": str(info["max_tokens"])}
    return token_model(network, graph, info["vocab_size"], classes=True), typed_inputs(graph), extra


def decoded_text(network: Any, graph: Graph, info: dict) -> tuple[Any, list[tuple], dict[str, str]]:
    """An encoder–decoder: `udlc generate` reads the vocabulary, and how long a decoded target may run."""
    extra = {"vocabulary": json.dumps(info["vocabulary"]), "max_target_length": str(info["max_target_length"])}
    if info.get("tokenizer"):  # text to text: a tokenizer's ids, <bos> and <eos> among its specials
        extra["tokenizer"] = json.dumps(info["tokenizer"])
    return token_model(network, graph, info.get("vocab_size") or len(info["vocabulary"])), typed_inputs(graph), extra


def token_labels(network: Any, graph: Graph, info: dict) -> tuple[Any, list[tuple], dict[str, str]]:
    """A token labeller: `udlc generate` reads the vocabulary."""
    return token_model(network, graph, len(info["vocabulary"])), typed_inputs(graph), \
        {"vocabulary": json.dumps(info["vocabulary"])}


def next_token(network: Any, graph: Graph, info: dict, symbols: dict[str, int], bounds: dict[str, int]
               ) -> tuple[Any, list[tuple], dict[str, int] | None, dict[str, str]]:
    """A language model with its key/value cache where it can have one: the module, its typed inputs, the sizes
    of one more parity check beside the default one (None: none), and the metadata decoding needs. New symbols
    go into `symbols` with their smallest sizes, and into `bounds` with theirs."""
    inputs = typed_inputs(graph)
    extra = {"tokenizer": json.dumps(info["tokenizer"]), "context": str(info["context"]),
             "vocab_size": str(info["vocab_size"])}
    cached, why_not = cache_plan(graph)
    if not cached:
        return token_model(network, graph, info["vocab_size"]), inputs, None, {**extra, "kv_cache_unavailable": why_not}
    model = cached_decoder(network, graph, cached, info["vocab_size"])
    past = past_symbol(inputs[0][1][0])
    shapes = [shape for shape in model.heads.values() for _ in range(2)]  # a key and a value per layer
    inputs += [(name, (heads, past, dim)) for name, (heads, dim) in zip(model.input_names[1:], shapes)]
    symbols[past] = 0
    length = inputs[0][1][0]
    if length in bounds:  # cached and new positions together fit the positions table: trace within half each
        bounds[length] = bounds[past] = bounds[length] // 2
    # checked with nothing cached too: how generation feeds a prompt
    return model, inputs, {past: 0}, {**extra, "kv_cache": json.dumps(model.input_names[1:])}


def token_model(network: Any, graph: Graph, vocab_size: int, classes: bool = False) -> Any:
    """The network on its inputs as they are (ids and masks), giving `logits` (and, for a classifier, class
    `probabilities`); its parity samples are ids across the whole vocabulary and masks true on a prefix,
    as padding makes them."""
    import torch
    from torch import nn

    from udlc.compiler.infer import bind

    class TokenModel(nn.Module):
        output_names = ["logits", "probabilities"] if classes else ["logits"]

        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, *inputs):
            out = self.network(*inputs)
            out = out[0] if isinstance(out, tuple) else out
            return (out, torch.softmax(out, dim=-1)) if classes else out

        def sample_inputs(self, batch: int, generator: Any, binding: dict[str, int]) -> tuple:
            xs = []
            for name, shape in graph.inputs.items():
                shape = (batch, *bind(shape, binding))
                if graph.dtype_of(name) == "bool":
                    real = torch.randint(1, shape[1] + 1, (batch, 1), generator=generator)
                    xs.append(torch.arange(shape[1])[None, :] < real)
                else:  # ids an embedding of fewer rows reads (BERT's two token types) stay within its rows
                    rows = [n.config.num_embeddings for n in graph.nodes.values() if n.op == "embedding"
                            and name in n.inputs and getattr(n.config, "num_embeddings", None)]
                    xs.append(torch.randint(0, min([vocab_size, *rows]), shape, generator=generator))
            return tuple(xs)

    return TokenModel().eval()
