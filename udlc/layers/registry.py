"""The one registry of layer types.

Each layer type is kept together in its family's file: a pydantic config, a pure shape rule, parameter
and FLOP counts, and a builder that imports torch only when called (its modules are named classes in
udlc.layers.modules, which only the builders import). Dispatch is a dict lookup by the
name users write (`linear`, `conv2d`); a spec can name nothing that is not registered here.

A family's file is imported when one of its names is first looked up (FAMILIES says which file registers which
names), so `udlc check` pays only for the families a spec uses; going through every type (the schema, the
registry-wide tests, a did-you-mean) imports them all.
"""

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from udlc.spec.base import StrictModel

# One sample's shape; the batch axis is implicit. A dimension is a size, or a named symbol ('T' for a
# sequence's length, 'N' for a graph's node count, 'T-2' after a convolution shortens it). Shape rules
# only ever see sizes: the compiler evaluates them at two sizes of each symbol and names the result
# (udlc.compiler.infer), so a rule written for ints serves symbolic shapes too.
Dim = int | str
Shape = tuple[Dim, ...]
DTYPES = ("float32", "int64", "bool")

# How a layer's output at position t of a sequence reads its inputs, the position being axis 0 of a sequence
# (T, features...) as udlc lays them out (LayerType.reads).
EACH = "each"  # position t alone: a linear, a norm of the features, an activation, an embedding, a merge
EARLIER = "earlier"  # positions up to t: causal self-attention, a left-to-right recurrent layer
SHAPE = "shape"  # the input's length only, never its values: a table of relative position biases
ALL = "all"  # any position: attention without `causal`, a convolution or pooling over T, a flatten of T
READS = (EACH, EARLIER, SHAPE, ALL)

# Keys every node accepts beside its own arguments; a config may not use these names.
NODE_KEYS = ("id", "from", "repeat", "init")


class ShapeError(Exception):
    """A shape rule's complaint: what is wrong and, when there is one, the fix."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class LayerConfig(StrictModel):
    """Base of every layer config: unknown keys rejected (with a did-you-mean), immutable, and built on
    first use (StrictModel defers), so `udlc check` pays only for the types a spec uses.
    Subclasses add `type: Literal[...]`."""


def no_count(cfg: Any, *inputs: Shape) -> int:
    return 0


def floats(cfg: Any, *dtypes: str) -> str:
    """The dtype rule of most layers: float32 in, float32 out."""
    for dtype in dtypes:
        if dtype != "float32":
            hint = ("token ids go through an `embedding` first" if dtype == "int64" else
                    "a mask selects values; it is not one (use it where a layer takes a mask)")
            raise ShapeError(f"expects float32 input but gets {dtype}", hint)
    return "float32"


@dataclass(frozen=True)
class LayerType:
    name: str
    config: type[LayerConfig]
    shape: Callable[..., Shape]  # (cfg, *input_shapes) -> output shape
    build: Callable[..., Any]  # (cfg, *input_shapes) -> torch.nn.Module
    params: Callable[..., int]  # (cfg, *input_shapes) -> trainable parameter count
    flops: Callable[..., int]  # (cfg, *input_shapes) -> multiply-adds x2 for one sample
    main_arg: str | None  # the field a scalar fills: `linear: 10` -> out_features=10
    arity: int | None  # number of inputs; None means two or more (merges)
    dtype: Callable[..., str]  # (cfg, *input_dtypes) -> output dtype; raises ShapeError for a wrong one
    # Names of several outputs (cfg -> names), picked with `from: node.name`; None for one output. A layer
    # with several outputs has a shape rule that returns one shape per name, in order.
    outputs: Callable[[Any], tuple[str, ...]] | None
    # (arguments, input shapes) pairs that the registry-wide tests build, run and export: a new layer
    # type is tested by registering it. Shapes may hold symbols (T): the tests run them at two lengths.
    samples: tuple[tuple[dict, tuple[Shape, ...]], ...]
    sample_dtypes: tuple[str, ...] = ()  # the samples' input dtypes by position, where not float32
    # (cfg, *input_shapes) -> the largest size a symbol may take here ({'T': 128} for a positions table of 128
    # rows); None where the layer takes any size. Runs at sizes of the layer's choice stay within it.
    bounds: Callable[..., dict[str, int]] | None = None
    # How the output at position t of a sequence reads its inputs' positions (EACH, EARLIER, SHAPE or ALL, below):
    # one word for every input, a tuple of one per input, or a rule (cfg -> either) where the arguments decide.
    # ALL is the default, so that a new layer is taken for one that reads later positions until it says otherwise:
    # a language model that wrongly passes `check` learns from the tokens it must predict, while one wrongly
    # refused says so at its line. udlc.compiler.causality follows these words through a graph.
    reads: str | tuple[str, ...] | Callable[[Any], str | tuple[str, ...]] = ALL
    # The attribute of the built module holding a table of absolute positions, row p added to position p: cached
    # decoding adds its rows from the first new position on.
    positions_table: str | None = None
    # (cfg, *input_shapes) -> {state-dict name within the node's module: shape} for every parameter and persistent
    # buffer the built module has, so `udlc check` knows a network's tensors without torch (udlc.compiler.tensors);
    # None for a layer whose module holds none.
    tensors: Callable[..., dict[str, tuple[int, ...]]] | None = None

    def reads_of(self, cfg: Any, arity: int) -> tuple[str, ...]:
        """The word for each of a node's `arity` inputs."""
        words = self.reads(cfg) if callable(self.reads) else self.reads
        return (words,) * arity if isinstance(words, str) else words

    def works_position_wise(self, cfg: Any) -> bool:
        """Whether each position comes out of that position's features alone (a linear, an activation, a norm of
        the features): a language model made of such layers and causal self-attention decodes with a key/value
        cache (udlc.exporter.decoding)."""
        words = self.reads(cfg) if callable(self.reads) else self.reads
        return all(w == EACH for w in ((words,) if isinstance(words, str) else words))


# Which family file (udlc/layers/<file>.py) registers which layer types; a test holds it to what they register.
FAMILIES: dict[str, tuple[str, ...]] = {
    "dense": ("linear", "flatten", "reshape", "identity", "split"),
    "conv": ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "channel_shuffle"),
    "pooling": ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "maxpool3d", "avgpool3d", "global_avgpool",
                "global_maxpool", "adaptive_avgpool1d", "adaptive_avgpool2d"),
    "norm": ("batchnorm1d", "batchnorm2d", "layernorm", "layernorm2d", "rmsnorm", "groupnorm"),
    "dropout": ("dropout", "dropout2d", "drop_path"),
    "activation": ("relu", "sigmoid", "tanh", "silu", "leaky_relu", "elu", "gelu", "relu6", "hardswish",
                   "hardsigmoid", "mish", "prelu", "softmax", "log_softmax"),
    "resample": ("upsample", "pixel_shuffle", "pixel_unshuffle"),
    "merge": ("add", "multiply", "concat"),
    "attention": ("multihead_attention", "masked_multihead_attention", "cross_attention", "masked_cross_attention",
                  "biased_multihead_attention", "masked_biased_multihead_attention",
                  "multihead_attention_with_weights", "masked_multihead_attention_with_weights",
                  "cross_attention_with_weights", "masked_cross_attention_with_weights",
                  "biased_multihead_attention_with_weights", "masked_biased_multihead_attention_with_weights"),
    "positions": ("sinusoidal_positions", "learned_positions"),
    "relative_position": ("relative_position_bias",),
    "scale": ("scale", "layer_scale"),
    "recurrent": ("rnn", "lstm", "gru", "lstm_cell", "gru_cell", "seq_pool", "masked_seq_pool"),
    "embedding": ("embedding", "patch_embed"),
    "sequence": ("transpose", "permute", "select", "cls_token", "mean"),
    "generative": ("reparameterize", "sinusoidal_embedding"),
    "message_passing": ("gcn_conv", "gat_conv", "sage_conv", "gin_conv", "global_mean_pool", "global_max_pool",
                        "global_add_pool"),
    "audio": ("spectrogram", "mel_spectrogram", "log_mel_spectrogram", "mfcc", "time_mask", "freq_mask"),
}
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}


class LayerRegistry(Mapping[str, LayerType]):
    """Every layer type by name, each family's file imported on the first lookup of one of its names."""

    def __init__(self) -> None:
        self._types: dict[str, LayerType] = {}

    def __getitem__(self, name: str) -> LayerType:
        if name not in self._types and name in FAMILY_OF:
            importlib.import_module(f"udlc.layers.{FAMILY_OF[name]}")
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._types or name in FAMILY_OF)

    def __iter__(self) -> Iterator[str]:
        self.load_all()
        return iter([*FAMILY_OF, *(n for n in self._types if n not in FAMILY_OF)])

    def __len__(self) -> int:
        self.load_all()
        return len(self._types)

    def load_all(self) -> None:
        for family in FAMILIES:
            importlib.import_module(f"udlc.layers.{family}")

    def add(self, lt: LayerType) -> None:
        self._types[lt.name] = lt

    def loaded(self) -> dict[str, LayerType]:
        """The types registered so far, without importing any family."""
        return dict(self._types)


REGISTRY = LayerRegistry()


def register(
    config: type[LayerConfig],
    *,
    shape: Callable[..., Shape],
    build: Callable[..., Any],
    params: Callable[..., int] = no_count,
    flops: Callable[..., int] = no_count,
    main_arg: str | None = None,
    arity: int | None = 1,
    dtype: Callable[..., str] = floats,
    outputs: Callable[[Any], tuple[str, ...]] | None = None,
    samples: list[tuple[dict, tuple[Shape, ...]]],
    sample_dtypes: tuple[str, ...] = (),
    bounds: Callable[..., dict[str, int]] | None = None,
    reads: str | tuple[str, ...] | Callable[[Any], str | tuple[str, ...]] = ALL,
    positions_table: str | None = None,
    tensors: Callable[..., dict[str, tuple[int, ...]]] | None = None,
) -> None:
    name = config.model_fields["type"].default
    if name in REGISTRY.loaded():
        raise ValueError(f"layer type {name!r} registered twice")
    clash = set(NODE_KEYS) & set(config.model_fields)
    if clash:
        raise ValueError(f"{name}: field names {sorted(clash)} are reserved for every node")
    if main_arg is not None and main_arg not in config.model_fields:
        raise ValueError(f"{name}: main_arg {main_arg!r} is not a field")
    if not samples:
        raise ValueError(f"{name}: give at least one sample (arguments, input shapes) for the tests")
    if not callable(reads) and not set((reads,) if isinstance(reads, str) else reads) <= set(READS):
        raise ValueError(f"{name}: reads {reads!r} is not one of {READS} (or a tuple of them, one per input)")
    if isinstance(reads, tuple) and arity is not None and len(reads) != arity:
        raise ValueError(f"{name}: reads names {len(reads)} inputs, but the layer takes {arity}")
    family = config.__module__.rpartition(".")[2]
    if FAMILY_OF.get(name) != family and config.__module__.startswith("udlc.layers."):
        raise ValueError(f"{name}: add it to FAMILIES['{family}'] in udlc/layers/registry.py, so a lookup finds it")
    REGISTRY.add(LayerType(name, config, shape, build, params, flops, main_arg, arity, dtype, outputs,
                           tuple(samples), tuple(sample_dtypes), bounds, reads, positions_table, tensors))


def random_input(shape: tuple[int, ...], dtype: str, generator: Any = None) -> Any:
    """A random tensor of a type: floats from a normal, ids 0 or 1 (valid for any vocabulary), masks half true."""
    import torch

    if dtype == "int64":
        return torch.randint(0, 2, shape, generator=generator)
    if dtype == "bool":
        return torch.rand(shape, generator=generator) < 0.5
    return torch.randn(shape, generator=generator)


def numel(shape: Shape) -> int:
    return math.prod(shape)


def expect_rank(name: str, x: Shape, ranks: tuple[int, ...], meaning: str, hint: str | None = None) -> None:
    """Raise a ShapeError unless `x` has one of the given ranks (batch axis not counted)."""
    if len(x) not in ranks:
        raise ShapeError(f"expects input {meaning} but gets {fmt(x)}", hint)


def fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
