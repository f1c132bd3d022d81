"""The `model` section. Layer entries stay plain data here: their many shorthand forms are read by
the compiler's resolve pass, which knows the registry and the blocks; the JSON Schema still
describes them exactly (see udlc.spec.schema)."""

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, WithJsonSchema, model_validator

from udlc.spec.base import StrictModel

INITS = ("default", "kaiming", "xavier", "normal", "zeros")
Init = Literal["default", "kaiming", "xavier", "normal", "zeros"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# A marker that udlc.spec.schema replaces with a reference to the registry-built LayerEntry definition.
LayerEntry = Annotated[Any, WithJsonSchema({"x-udlc": "LayerEntry"})]
InputShape = Annotated[list[PositiveInt], Field(min_length=1, max_length=4)]
ParamType = Literal["int", "float", "bool", "str", "list"]


class BlockParam(StrictModel):
    """A block parameter written in full: `ch: {type: int, default: 32}`; without default it is required."""

    type: ParamType
    default: Any = None


class BlockSpec(StrictModel):
    """A reusable, parameterized sequence of layers; `$name` in its layers stands for a parameter."""

    params: dict[Name, BlockParam | int | float | bool | str | list] = Field(
        default_factory=dict, description="name: default value (its type is the default's) or {type, default}"
    )
    layers: list[LayerEntry] = Field(min_length=1)


class ModelSpec(StrictModel):
    input: InputShape | None = Field(None, description="one sample's shape; the batch axis is implicit")
    inputs: dict[Name, InputShape] | None = Field(None, min_length=1,
                                                  description="several named inputs instead of `input`")
    blocks: dict[Name, BlockSpec] = Field(default_factory=dict)
    layers: list[LayerEntry] = Field(min_length=1)
    outputs: list[Name] | None = Field(None, description="node ids to output (default: the last layer)")
    init: Init = Field("default", description="weight init for layers without their own `init`")

    @model_validator(mode="after")
    def _one_kind_of_input(self) -> "ModelSpec":
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either `input: [shape]` or `inputs: {name: [shape], ...}`")
        return self

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.inputs is not None:
            return {k: tuple(v) for k, v in self.inputs.items()}
        return {"x": tuple(self.input or ())}  # `x`, as a hand-written forward(self, x) would say
