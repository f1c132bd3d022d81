"""The image layers of the modern convnets, each against torch's own or the definition: layernorm2d, channel_shuffle,
drop_path (and stochastic depth rising linearly with depth), layer_scale, prelu."""

from __future__ import annotations

import pytest
import torch

from udlc.layers import REGISTRY
from udlc.tasks import compile_text


def built(op: str, shape: tuple, **args):
    lt = REGISTRY[op]
    return lt.build(lt.config(**args), shape)


def test_layernorm2d_normalizes_each_pixels_channels() -> None:
    x = torch.randn(2, 6, 3, 4)
    norm = built("layernorm2d", (6, 3, 4))
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    expected = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, 1e-6)
    torch.testing.assert_close(norm(x), expected.permute(0, 3, 1, 2))


def test_channel_shuffle_is_torchs() -> None:
    x = torch.randn(2, 12, 3, 3)
    torch.testing.assert_close(built("channel_shuffle", (12, 3, 3), groups=3)(x), torch.nn.ChannelShuffle(3)(x))


def test_drop_path_drops_whole_samples_while_training_only() -> None:
    torch.manual_seed(0)
    layer = built("drop_path", (4, 5), p=0.25).train()
    x = torch.ones(4000, 4, 5)
    y = layer(x)
    kept = y.flatten(1)
    scaled = torch.tensor(1 / 0.75)
    assert ((kept == 0).all(1) | (kept == scaled).all(1)).all()  # each sample zeroed or scaled as a whole
    assert abs((kept[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    assert torch.equal(layer.eval()(x), x)


def test_stochastic_depth_rises_linearly_from_zero_to_p() -> None:
    spec = """\
udlc: 1
name: depth
data: {source: digits}
model:
  input: [64]
  stochastic_depth: linear
  blocks:
    block:
      layers: [{residual: [{linear: 64}, {drop_path: 0.3}]}]
  layers: [{block: {repeat: 4}}, {linear: 10}]
loss: cross_entropy
"""
    graph = compile_text(spec).graph
    ps = [node.config.p for node in graph.nodes.values() if node.op == "drop_path"]
    assert ps == pytest.approx([0.0, 0.1, 0.2, 0.3])
    as_written = compile_text(spec.replace("  stochastic_depth: linear\n", "")).graph
    assert [n.config.p for n in as_written.nodes.values() if n.op == "drop_path"] == [0.3] * 4


def test_layer_scale_starts_at_its_value_per_channel() -> None:
    x = torch.randn(2, 4, 3, 3)
    layer = built("layer_scale", (4, 3, 3), value=1e-6)
    assert layer.gamma.shape == (4, 1, 1)
    torch.testing.assert_close(layer(x), x * 1e-6)
    assert REGISTRY["layer_scale"].params(REGISTRY["layer_scale"].config(axis=-1), ("T", 8)) == 8


def test_prelu_per_channel_is_torchs() -> None:
    x = torch.randn(2, 5, 3, 3)
    ours = built("prelu", (5, 3, 3), per_channel=True, slope=0.1)
    reference = torch.nn.PReLU(5, init=0.1)
    torch.testing.assert_close(ours(x), reference(x))


def test_channels_last_trains_the_same_network(tmp_path) -> None:
    """train.memory_format only changes how convolution weights are laid out: the weights after an epoch agree
    with a contiguous run's (up to the kernels' summation order)."""
    import yaml

    from tests.conftest import train_here
    from udlc.runs import RunFolder, checkpoint

    doc = {"udlc": 1, "name": "cl", "seed": 0, "data": {"source": "digits"},
           "model": {"input": [1, 8, 8], "layers": [{"conv2d": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
                                                    "relu", "global_avgpool", {"linear": 10}]},
           "loss": "cross_entropy", "train": {"epochs": 1, "batch_size": 64, "deterministic": True}}
    weights = {}
    for layout in ("contiguous", "channels_last"):
        path = tmp_path / f"{layout}.yaml"
        path.write_text(yaml.safe_dump({**doc, "train": {**doc["train"], "memory_format": layout}}))
        run = RunFolder.open(train_here(path, tmp_path / layout))
        weights[layout] = checkpoint.load(run.checkpoint("last"))["models"]["model"]
    for key, value in weights["contiguous"].items():
        torch.testing.assert_close(weights["channels_last"][key], value, atol=1e-5, rtol=1e-4)
