"""`init:` — the weights a run starts from: a file, a Hugging Face folder or a udlc run, and the mapping that
renames its tensors to the network's (udlc.weights reads and checks them)."""

from pydantic import Field

from udlc.spec.base import StrictModel
from udlc.spec.model import Name


class InitSpec(StrictModel):
    from_: str = Field(
        alias="from", min_length=1,
        description="the weights, relative to this spec: a .safetensors file, a torch state dict (.pt, .pth, .bin; "
                    "loaded with weights_only=True only), a Hugging Face model folder (config.json with "
                    "model.safetensors, a sharded model.safetensors.index.json, or pytorch_model.bin) or a udlc run "
                    "folder. `udlc check` reads safetensors headers (no tensor) to check the mapping against the "
                    "file; a pickled state dict is read by torch only, so its mapping is checked when training starts")
    map: str | None = Field(
        None, min_length=1,
        description="the mapping of the file's tensor names to the network's: a shipped mapping's name (gpt2: "
                    "gpt2.map.yaml beside the spec, or in udlc's examples/zoo) or a mapping file relative to the "
                    "spec. Without one, names are taken as they are, and a tensor whose shape differs keeps its "
                    "fresh init (a replaced head)")
    network: Name | None = Field(None, description="the network that receives the weights; default: the only one "
                                                   "(a udlc run: every network, by name)")
