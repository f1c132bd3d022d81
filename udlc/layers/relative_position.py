"""T5's relative position bias (Raffel et al. 2020): a learned scalar per head for each bucket of the distance
from a query to a key, added to the attention scores.

    relative_position_bias   x (T, ...) -> bias (num_heads, T, T); only x's length is read

Its output feeds the `biased_` attention types (udlc.layers.attention): `biased_multihead_attention:
{from: [h, position_bias]}`. T5 keeps one table per stack, in its first layer, and passes the computed bias to
every other layer; here one node computes it and each layer names it in `from`, so a stack shares one table
(the `t5_` blocks in udlc/compiler/library/t5.yaml take it as an input).

Buckets, for the distance r = key position - query position: half of them (a quarter, for each sign, when
bidirectional) hold the distances 0, 1, 2, ... exactly; the rest grow logarithmically up to max_distance, and
every farther distance shares the last. Unidirectional (causal) attention gives every later key bucket 0, as T5's
decoder does (those keys are masked anyway).
"""

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from udlc.layers.registry import SHAPE, LayerConfig, Shape, ShapeError, register


class RelativePositionBias(LayerConfig):
    """The bias (num_heads, T, T) of a sequence (T, ...): num_buckets x num_heads parameters."""

    type: Literal["relative_position_bias"] = "relative_position_bias"
    num_heads: PositiveInt
    num_buckets: PositiveInt = Field(32, description="buckets of distances (T5: 32)")
    max_distance: PositiveInt = Field(128, description="distances from here on share the last bucket (T5: 128)")
    bidirectional: bool = Field(True, description="separate buckets for keys before and after the query (an "
                                "encoder); false for causal self-attention (a decoder): later keys share bucket 0")

    @model_validator(mode="after")
    def _buckets_fit(self) -> "RelativePositionBias":
        exact = self.exact
        if exact < 1:
            raise ValueError(f"num_buckets {self.num_buckets} is too few: give at least "
                             f"{4 if self.bidirectional else 2}")
        if self.max_distance <= exact:
            raise ValueError(f"max_distance {self.max_distance} must be more than the {exact} distances "
                             f"that num_buckets {self.num_buckets} holds exactly")
        return self

    @property
    def per_side(self) -> int:
        return self.num_buckets // 2 if self.bidirectional else self.num_buckets

    @property
    def exact(self) -> int:
        return self.per_side // 2


def bias_shape(cfg: RelativePositionBias, x: Shape) -> Shape:
    if not x:
        raise ShapeError("expects a sequence (length, ...) but gets a scalar per sample",
                         "give it the token ids or the embedded sequence the attention reads")
    return (cfg.num_heads, x[0], x[0])


def any_dtype(cfg: RelativePositionBias, *dtypes: str) -> str:
    return "float32"  # only the input's length is read: ids, masks and vectors all serve


def bias_params(cfg: RelativePositionBias, x: Shape) -> int:
    return cfg.num_buckets * cfg.num_heads


def bias_flops(cfg: RelativePositionBias, x: Shape) -> int:
    return cfg.num_heads * x[0] * x[0]  # a lookup: one operation per value read out, as `embedding` counts


def build_bias(cfg: RelativePositionBias, x: Shape):
    from udlc.layers.modules.relative_position import RelativePositionBiasModule

    return RelativePositionBiasModule(cfg)


register(RelativePositionBias, shape=bias_shape, build=build_bias, params=bias_params, flops=bias_flops,
         main_arg="num_heads", dtype=any_dtype, sample_dtypes=("int64",), reads=SHAPE,
         tensors=lambda cfg, x: {"weight": (cfg.num_buckets, cfg.num_heads)},
         samples=[({"num_heads": 2, "num_buckets": 8, "max_distance": 6}, (("T",),)),
                  ({"num_heads": 3, "num_buckets": 6, "max_distance": 5, "bidirectional": False}, (("T",),)),
                  ({"num_heads": 4}, ((7, 5),))])
