"""The image zoo (examples/zoo): each famous convnet has torchvision's published parameter count (its weight
tables' num_params; torchvision cannot be imported next to the CPU torch here) — LeNet-5 the classic 61,706 —,
ResNet-18's nodes are named as torchvision's modules and compute what a hand-written ResNet-18 computes with the
same weights; and the language that keeps them short: `stage`, `residual`'s `shortcut`."""

from __future__ import annotations

from pathlib import Path

import pytest

from udlc.compiler.pipeline import resolve_spec
from udlc.errors import SpecErrors
from udlc.tasks import compile_text

ZOO = Path(__file__).resolve().parent.parent / "examples" / "zoo"


@pytest.mark.parametrize("name, params", [
    ("lenet5", 61_706), ("alexnet", 61_100_840), ("vgg11", 132_863_336), ("vgg16", 138_357_544),
    ("vgg16_bn", 138_365_992), ("resnet18", 11_689_512), ("resnet34", 21_797_672),
    ("resnet50", 25_557_032), ("mobilenet_v2", 3_504_872), ("efficientnet_b0", 5_288_548),
    ("efficientnet_b1", 7_794_184), ("efficientnet_b2", 9_109_994), ("efficientnet_b3", 12_233_232),
    ("efficientnet_b4", 19_341_616), ("efficientnet_b5", 30_389_784), ("efficientnet_b6", 43_040_704),
    ("efficientnet_b7", 66_347_960), ("convnext_tiny", 28_589_128), ("googlenet", 6_624_904),
    ("inception_v3", 27_161_264 - 3_326_696),  # torchvision's count holds its auxiliary head; the zoo has none
])
def test_zoo_parameter_counts_are_torchvisions(name: str, params: int) -> None:
    from udlc.tasks import compile_spec as check

    assert check(ZOO / f"{name}.yaml").graph.total_params == params  # `udlc check` accepts each, too


def torchvision_resnet18_keys() -> set[str]:
    """torchvision.models.resnet18().state_dict()'s parameter names (running statistics left out)."""
    keys = {"conv1.weight", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"}
    for layer in range(1, 5):
        for block in range(2):
            stem = f"layer{layer}.{block}"
            keys |= {f"{stem}.conv1.weight", f"{stem}.conv2.weight"}
            keys |= {f"{stem}.bn{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
        if layer > 1:
            keys |= {f"layer{layer}.0.downsample.0.weight", f"layer{layer}.0.downsample.1.weight",
                     f"layer{layer}.0.downsample.1.bias"}
    return keys


def reference_resnet18():
    """ResNet-18 written out in torch, as torchvision's BasicBlock layout."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
                if stride != 1 or cin != cout else None

        def forward(self, x):
            out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (out + (x if self.downsample is None else self.downsample(x))).relu()

    stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
    layers = [nn.Sequential(Basic(a, b, s), Basic(b, b, 1)) for a, b, s in widths]
    return nn.Sequential(*stem, *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))


@pytest.mark.slow
def test_resnet18_is_named_as_torchvisions_and_computes_as_a_hand_written_one() -> None:
    import torch

    from udlc.compiler.lower import lower

    model = lower(resolve_spec(ZOO / "resnet18.yaml").graph, seed=0).eval()
    ours = {name.replace("_", "."): p for name, p in model.named_parameters()}
    assert set(ours) == torchvision_resnet18_keys()
    reference = reference_resnet18().eval()
    # The reference's own names, mapped to torchvision's: its stem and head are numbered in the Sequential.
    renames = {"0.": "conv1.", "1.": "bn1.", "10.": "fc."} | {f"{i + 3}.": f"layer{i}." for i in range(1, 5)}
    with torch.no_grad():
        for name, p in reference.named_parameters():
            head, _, rest = name.partition(".")
            p.copy_(ours[renames[head + "."] + rest])
    x = torch.randn(2, 3, 64, 64)  # any size: the head pools globally
    torch.testing.assert_close(model(x), reference(x))


STAGES = """\
udlc: 1
name: stages
data: {source: digits}
model:
  input: [1, 8, 8]
  blocks:
    basic:
      params: {ch: 8, stride: 1}
      layers:
        - residual:
            layers:
              - conv2d: {out_channels: $ch, kernel_size: 3, stride: $stride, padding: 1, id: conv1}
              - relu
            shortcut: SHORTCUT
  layers:
    - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
    - stage: {block: BLOCK, times: 3, args: {ch: 16}, first: {stride: 2}, id: layer1}
    - global_avgpool
    - linear: 10
loss: cross_entropy
"""


def stages(block: str = "basic", shortcut: str = "[{conv2d: {out_channels: $ch, kernel_size: 1, stride: $stride}}]"):
    return compile_text(STAGES.replace("BLOCK", block).replace("SHORTCUT", shortcut), file="spec.yaml")


def test_a_stage_repeats_its_block_with_the_first_copy_changed() -> None:
    graph = stages().graph
    convs = {name: node for name, node in graph.nodes.items() if name.endswith("conv1")}
    assert list(convs) == ["layer1_0_conv1", "layer1_1_conv1", "layer1_2_conv1"]
    assert [c.config.stride for c in convs.values()] == [2, 1, 1]  # `first` changes only the first copy
    assert [c.shape for c in convs.values()] == [(16, 4, 4)] * 3
    shortcuts = [name for name, node in graph.nodes.items() if node.op == "conv2d" and node.config.kernel_size == 1]
    assert shortcuts == ["layer1_0_conv2d"]  # the shortcut only where the shapes differ


def test_shortcut_none_leaves_the_body_alone_where_shapes_differ() -> None:
    graph = stages(shortcut="none").graph
    adds = [name for name, node in graph.nodes.items() if node.op == "add"]
    assert adds == ["layer1_1_add", "layer1_2_add"]  # the first copy changes the shape: no skip there


@pytest.mark.parametrize("block, shortcut, line, words", [
    ("basik", "none", 17, "no block named 'basik' — did you mean 'basic'?"),
    ("basic", "[{conv2d: {out_channels: 4, kernel_size: 1, stride: $stride}}]", 14,
     "the shortcut turns (8, 8, 8) into (4, 4, 4), but the body into (16, 4, 4)"),
])
def test_a_stage_or_shortcut_mistake_is_reported_at_its_line(block: str, shortcut: str, line: int, words: str) -> None:
    with pytest.raises(SpecErrors) as info:
        stages(block, shortcut)
    (err,) = info.value.errors
    assert err.span.line == line and words in f"{err.message} — {err.hint}", err
