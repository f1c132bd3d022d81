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


# ---- a model that is not a network: gradient-boosted trees (udlc.tasks.boosting checks it, trainer.trees fits it) ---

class GradientBoosting(StrictModel):
    """scikit-learn's HistGradientBoostingClassifier/Regressor, fitted on the spec's training split; `loss:`
    picks which (cross_entropy: classes, by log loss; mse or mae: values). Defaults are scikit-learn's."""

    max_iter: PositiveInt = Field(100, description="boosting iterations: trees per class (one for values)")
    learning_rate: float = Field(0.1, gt=0, description="shrinkage of each tree's contribution")
    max_depth: PositiveInt | None = Field(None, description="each tree's depth limit (default none)")
    max_leaf_nodes: int | None = Field(31, ge=2, description="each tree's leaf limit (null: none)")
    min_samples_leaf: PositiveInt = Field(20, description="training samples a leaf holds at least")
    l2_regularization: float = Field(0.0, ge=0, description="L2 penalty on the leaves' values")
    max_features: float = Field(1.0, gt=0, le=1, description="fraction of the features each split considers")
    max_bins: int = Field(255, ge=2, le=255, description="bins each feature is cut into before fitting")
    early_stopping: bool = Field(False, description="stop adding trees when the validation split's loss has not "
                                 "improved by `tol` for `n_iter_no_change` iterations (needs a validation split)")
    n_iter_no_change: PositiveInt = Field(10, description="early_stopping: iterations without improvement")
    tol: float = Field(1e-7, ge=0, description="early_stopping: the improvement that counts")


class TreeModelSpec(StrictModel):
    """`model: {gradient_boosting: {...}}`: the whole model, with no layers; it reads flat rows of features."""

    gradient_boosting: GradientBoosting = Field(description="its settings; `{}` for scikit-learn's defaults")


def model_kind(value: Any) -> str:
    """Which model a `model:` mapping writes: the tree ensemble when it names `gradient_boosting`, else a network
    (pydantic's discriminator for Spec.model)."""
    if isinstance(value, dict):
        return "trees" if "gradient_boosting" in value else "network"
    return "trees" if isinstance(value, TreeModelSpec) else "network"


def tree_model(spec: Any) -> GradientBoosting | None:
    """The spec's gradient-boosting settings, or None for a network: the one test of which kind of model a spec
    trains (check, train and export each dispatch on it)."""
    model = getattr(spec, "model", None)
    return model.gradient_boosting if isinstance(model, TreeModelSpec) else None
