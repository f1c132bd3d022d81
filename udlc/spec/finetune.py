"""The fine-tuning sections' configs: `lora:` (low-rank adapters on linear layers and attention projections) and
`optimizer.groups` (a learning rate and weight decay for the layers a pattern names). What they name is checked
against the typed graphs by udlc.compiler.finetune; the adapters themselves are udlc.layers.modules.lora."""

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from udlc.spec.base import StrictModel

PATTERN_HELP = "node names as `udlc summary` shows them; * and ? match any characters (layer4_* names a stage)"


class ParamGroup(StrictModel):
    """A learning rate and weight decay of their own for the layers `match` names; the first group that names a
    layer sets it, and a layer no group names keeps the optimizer's lr and weight_decay."""

    match: list[str] = Field(min_length=1, description=f"the layers of this group: {PATTERN_HELP}")
    lr: PositiveFloat | None = Field(None, description="their learning rate (default the optimizer's)")
    weight_decay: NonNegativeFloat | None = Field(None, description="their weight decay (default the optimizer's); "
                                                                    "biases and norm scales are still spared "
                                                                    "unless decay_bias_and_norm")


class LoraSpec(StrictModel):
    """LoRA (Hu et al. 2021), as peft's: each targeted linear layer (and each of an attention layer's q, k, v and
    out projections) computes W x + b + (alpha / rank) * B A dropout(x), A of shape (rank, in) drawn as
    nn.Linear's weights are, B (out, rank) at zero, so training starts from the base network. The base is frozen:
    only A and B (and the `also_train` layers) are in the optimizer and in the checkpoints, which record where
    the base came from. Export merges B A into W: the ONNX file is the plain network."""

    rank: PositiveInt = Field(8, description="r, the adapters' inner width")
    alpha: PositiveFloat = Field(8.0, description="the adapters' output is scaled by alpha / rank (peft's "
                                                  "lora_alpha; its default is 8 too)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input, in training only")
    targets: list[str] = Field(default_factory=lambda: ["*"], min_length=1, description=(
        "the linear and attention layers that get adapters (default all of them): " + PATTERN_HELP))
    also_train: list[str] = Field(default_factory=list, description=(
        "layers trained whole beside the adapters, as peft's modules_to_save (a new classification head): "
        + PATTERN_HELP))
