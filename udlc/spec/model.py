"""The `model` section. Layer entries stay plain data here: their many shorthand forms are read by
the compiler's resolve pass, which knows the registry and the blocks; the JSON Schema still
describes them exactly (see udlc.compiler.schema)."""

from typing import Annotated, Any, Literal, Union

from pydantic import Field, PositiveInt, WithJsonSchema, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.inits import INITS as _INITS

INITS = tuple(_INITS)  # the names, for messages and the schema
Init = Literal[INITS]  # type: ignore[valid-type]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# A marker that udlc.compiler.schema replaces with a reference to the registry-built LayerEntry definition.
LayerEntry = Annotated[Any, WithJsonSchema({"x-udlc": "LayerEntry"})]
# A dimension of an input: a size, or a symbol for a size known only from the data (T, N).
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
InputShape = Annotated[list[Union[PositiveInt, Symbol]], Field(min_length=1, max_length=4)]
DType = Literal["float32", "int64", "bool"]
# An output: a node id, or `id.name` for one of a node's named outputs.
Ref = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")]
ParamType = Literal["int", "float", "bool", "str", "list"]


class TensorInput(StrictModel):
    """An input written in full: its shape (sizes and symbols such as T) and dtype."""

    shape: InputShape
    dtype: DType = "float32"


Input = Union[InputShape, TensorInput]


class BlockParam(StrictModel):
    """A block parameter written in full: `ch: {type: int, default: 32}`; without default it is required, and
    `default: null` leaves it out (null: the layer's own default, e.g. num_kv_heads)."""

    type: ParamType
    default: Any = None


class BlockSpec(StrictModel):
    """A reusable, parameterized sequence of layers; `$name` in its layers stands for a parameter."""

    params: dict[Name, BlockParam | int | float | bool | str | list] = Field(
        default_factory=dict, description="name: default value (its type is the default's) or {type, default}"
    )
    inputs: list[Name] = Field(
        default_factory=lambda: ["x"], min_length=1,
        description="names of the block's inputs, visible as ids in its layers; a call's `from` names one node per "
                    "input (the previous layer by default, for one input). With `repeat` the first input chains and "
                    "the others stay")
    layers: list[LayerEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_inputs(self) -> "BlockSpec":
        twice = sorted({n for n in self.inputs if self.inputs.count(n) > 1})
        if twice:
            raise ValueError(f"input '{twice[0]}' is named twice")
        return self


class ModelSpec(StrictModel):
    input: Input | None = Field(None, description="one sample's shape ([64], [T, 8]) or {shape, dtype}; "
                                                  "the batch axis is implicit")
    inputs: dict[Name, Input] | None = Field(None, min_length=1, description="several named inputs instead of `input`")
    blocks: dict[Name, BlockSpec] = Field(default_factory=dict)
    layers: list[LayerEntry] = Field(min_length=1)
    outputs: list[Ref] | None = Field(None, description="node ids (or id.output) to output (default: the last layer)")
    init: Init = Field("default", description="weight init for layers without their own `init`")
    params: dict[Name, Union[int, float, str, bool]] = Field(default_factory=dict, description=(
        "values the top-level layers use as $name, and in arithmetic ($width * 64): a family's width and depth "
        "multipliers, set by the specs that extend this one"))
    stochastic_depth: Literal["as_written", "linear"] = Field(
        "as_written", description="linear: the k-th of the K drop_path layers drops p·k/(K-1), from 0 at the "
                                  "first to its p at the last (ConvNeXt's, timm's)")

    @model_validator(mode="after")
    def _one_kind_of_input(self) -> "ModelSpec":
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either `input: [shape]` or `inputs: {name: [shape], ...}`")
        return self

    def input_types(self) -> dict[str, tuple[tuple[int | str, ...], str]]:
        """Each input's (shape, dtype); a single `input` is named `x`, as a hand-written forward(self, x) says."""
        given = self.inputs if self.inputs is not None else {"x": self.input}
        return {name: (tuple(v.shape), v.dtype) if isinstance(v, TensorInput) else (tuple(v), "float32")
                for name, v in given.items()}
