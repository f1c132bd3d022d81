"""Dense layers and shape plumbing: linear, flatten, reshape, identity, split."""

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, fmt, numel, register


class Linear(LayerConfig):
    type: Literal["linear"] = "linear"
    out_features: PositiveInt | None = Field(None, description="required unless `tie` gives it")
    bias: bool = True
    tie: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        None, description="the id of an embedding whose weights this layer shares (a language model's output "
                          "layer); out_features is then the embedding's vocabulary")

    @model_validator(mode="after")
    def _out_features_or_tie(self) -> "Linear":
        if self.out_features is None and self.tie is None:
            raise ValueError("give out_features (`linear: 10`), or `tie: <embedding id>`")
        return self


def linear_shape(cfg: Linear, x: Shape) -> Shape:
    if len(x) == 0:
        raise ShapeError("expects input (..., features) but gets a scalar per sample")
    if len(x) >= 3:
        raise ShapeError(f"expects input (..., features) but gets {fmt(x)}", "add 'flatten' before it")
    return x[:-1] + (cfg.out_features,)


def linear_params(cfg: Linear, x: Shape) -> int:
    weight = 0 if cfg.tie else x[-1] * cfg.out_features  # a tied weight is the embedding's, counted there
    return weight + (cfg.out_features if cfg.bias else 0)


def linear_flops(cfg: Linear, x: Shape) -> int:
    return 2 * numel(x) * cfg.out_features


def build_linear(cfg: Linear, x: Shape):
    from torch import nn

    return nn.Linear(x[-1], cfg.out_features, bias=cfg.bias)


def linear_tensors(cfg: Linear, x: Shape) -> dict[str, tuple[int, ...]]:
    return {"weight": (cfg.out_features, x[-1]), **({"bias": (cfg.out_features,)} if cfg.bias else {})}


register(Linear, shape=linear_shape, build=build_linear, params=linear_params, flops=linear_flops, main_arg="out_features",
         reads=EACH, tensors=linear_tensors,
         samples=[({"out_features": 7}, ((5,),)), ({"out_features": 3, "bias": False}, ((4, 6),)),
                  ({"out_features": 5}, (("T", 6),))])


class Flatten(LayerConfig):
    """Flattens every axis from `start_dim` on; axes count from the first one after the batch axis."""

    type: Literal["flatten"] = "flatten"
    start_dim: int = Field(0, ge=0)


def flatten_shape(cfg: Flatten, x: Shape) -> Shape:
    if cfg.start_dim >= max(len(x), 1):
        raise ShapeError(f"start_dim {cfg.start_dim} is past the last axis of {fmt(x)}")
    return x[: cfg.start_dim] + (numel(x[cfg.start_dim :]),)


def build_flatten(cfg: Flatten, x: Shape):
    from torch import nn

    return nn.Flatten(start_dim=cfg.start_dim + 1)


# From start_dim 1 on, a sequence (T, ...) keeps its positions: each one is flattened alone.
register(Flatten, shape=flatten_shape, build=build_flatten, main_arg="start_dim",
         reads=lambda cfg: EACH if cfg.start_dim >= 1 else ALL,
         samples=[({}, ((2, 3, 4),)), ({"start_dim": 1}, ((2, 3, 4),))])


class Reshape(LayerConfig):
    """Reshape one sample; one axis may be -1 and is then inferred."""

    type: Literal["reshape"] = "reshape"
    shape: list[int] = Field(min_length=1)


def reshape_shape(cfg: Reshape, x: Shape) -> Shape:
    target = list(cfg.shape)
    if target.count(-1) > 1 or any(d == 0 or d < -1 for d in target):
        raise ShapeError(f"shape {target} may hold positive sizes and at most one -1")
    known = numel([d for d in target if d != -1])
    if -1 in target:
        if numel(x) % known:
            raise ShapeError(f"cannot reshape {fmt(x)} ({numel(x)} values) to {target}")
        target[target.index(-1)] = numel(x) // known
    if numel(target) != numel(x):
        raise ShapeError(f"cannot reshape {fmt(x)} ({numel(x)} values) to {fmt(tuple(target))} ({numel(target)} values)")
    return tuple(target)


def build_reshape(cfg: Reshape, x: Shape):
    from udlc.layers.modules.dense import ReshapeModule

    return ReshapeModule(cfg.shape)


register(Reshape, shape=reshape_shape, build=build_reshape, main_arg="shape",
         samples=[({"shape": [2, -1]}, ((12,),)), ({"shape": [24]}, ((2, 3, 4),)), ({"shape": [-1, 2, 3]}, (("T", 6),))])


class Identity(LayerConfig):
    type: Literal["identity"] = "identity"


def build_identity(cfg: Identity, x: Shape):
    from torch import nn

    return nn.Identity()


register(Identity, shape=lambda cfg, x: x, build=build_identity, reads=EACH, samples=[({}, ((3, 4),))])


class Split(LayerConfig):
    """Cuts the input along `dim` into parts of the given sizes, each a named output that later layers pick
    with `from: split.name` (a VAE encoder's head: `split: {sizes: [16, 16], names: [mu, logvar]}`)."""

    type: Literal["split"] = "split"
    sizes: list[PositiveInt] = Field(min_length=2)
    names: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] | None = Field(
        None, description="one name per part (default part0, part1, ...)")
    dim: int = Field(-1, description="the axis to cut; -1 is the last, 0 a sample's first")

    @model_validator(mode="after")
    def _names_fit(self) -> "Split":
        if self.names is not None and len(self.names) != len(self.sizes):
            raise ValueError(f"give one name per size: {len(self.sizes)} sizes, {len(self.names)} names")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError("the names must differ")
        return self


def split_names(cfg: Split) -> tuple[str, ...]:
    return tuple(cfg.names) if cfg.names else tuple(f"part{i}" for i in range(len(cfg.sizes)))


def split_shape(cfg: Split, x: Shape) -> tuple[Shape, ...]:
    if not -len(x) <= cfg.dim < len(x):
        raise ShapeError(f"dim {cfg.dim} is out of range for the input {fmt(x)}")
    dim = cfg.dim % len(x)
    if sum(cfg.sizes) != x[dim]:
        raise ShapeError(f"sizes {cfg.sizes} add up to {sum(cfg.sizes)}, but axis {cfg.dim} of {fmt(x)} is {x[dim]}",
                         "make the sizes add up to that axis")
    return tuple(x[:dim] + (size,) + x[dim + 1:] for size in cfg.sizes)


def build_split(cfg: Split, x: Shape):
    from udlc.layers.modules.dense import SplitModule

    return SplitModule(cfg.sizes, cfg.dim % len(x) + 1)  # skip the batch axis


# Position-wise when it cuts a sequence's features (the last axis of (T, features)), not its positions.
register(Split, shape=split_shape, build=build_split, main_arg="sizes", outputs=split_names,
         reads=lambda cfg: EACH if cfg.dim in (-1, 1) else ALL,
         samples=[({"sizes": [3, 5], "names": ["mu", "logvar"]}, ((8,),)), ({"sizes": [1, 2], "dim": 0}, ((3, 4),))])
