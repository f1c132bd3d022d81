"""Registry-wide layer tests: every registered type, every sample, checked against the real torch module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from udlc.layers import REGISTRY, LayerConfig, ShapeError, register

CASES = [(name, i) for name, lt in REGISTRY.items() for i in range(len(lt.samples))]


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_sample_matches_torch(name: str, index: int) -> None:
    import torch

    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    assert lt.config.model_validate(cfg.model_dump()) == cfg
    out_shape = lt.shape(cfg, *shapes)
    torch.manual_seed(0)
    module = lt.build(cfg, *shapes).eval()
    with torch.no_grad():
        out = module(*(torch.randn(3, *s) for s in shapes))
    assert tuple(out.shape) == (3, *out_shape)
    assert lt.params(cfg, *shapes) == sum(p.numel() for p in module.parameters() if p.requires_grad)
    flops = lt.flops(cfg, *shapes)
    assert isinstance(flops, int) and flops >= 0


def test_every_type_has_two_samples_except_trivial_ones() -> None:
    few = sorted(n for n, lt in REGISTRY.items() if len(lt.samples) < 2 and lt.config.model_fields.keys() != {"type"})
    assert few == []


def test_main_arg_fills_the_config() -> None:
    cfg = REGISTRY["conv2d"].config.model_validate({"out_channels": 16, "kernel_size": 3})
    assert REGISTRY["conv2d"].main_arg == "out_channels" and cfg.out_channels == 16
    assert REGISTRY["maxpool2d"].config.model_validate({"kernel_size": 2}).stride is None
    assert REGISTRY["dropout"].config.model_validate({}).p == 0.5


def shape_of(name: str, args: dict, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    lt = REGISTRY[name]
    return lt.shape(lt.config.model_validate(args), *shapes)


@pytest.mark.parametrize(
    "name,args,shapes,text",
    [
        ("conv2d", {"out_channels": 8, "kernel_size": 3}, [(64,)], "expects input (channels, height, width) but gets (64,)"),
        ("conv1d", {"out_channels": 8, "kernel_size": 3, "groups": 2}, [(3, 10)], "groups 2 does not divide"),
        ("conv2d", {"out_channels": 8, "kernel_size": 5}, [(3, 4, 4)], "kernel_size 5 (dilation 1) is larger than the input (3, 4, 4)"),
        ("conv_transpose2d", {"out_channels": 2, "kernel_size": 1, "padding": 2}, [(3, 2, 2)], "leaves no output"),
        ("add", {}, [(3, 4), (3, 5)], "(3, 4) and (3, 5)"),
        ("add", {}, [(3, 4)], "two or more inputs"),
        ("concat", {}, [(2, 4, 4), (3, 4, 5)], "(2, 4, 4) and (3, 4, 5)"),
        ("concat", {"dim": 2}, [(2, 4), (2, 4)], "dim 2 is out of range"),
        ("groupnorm", {"num_groups": 3}, [(8, 4, 4)], "num_groups 3 does not divide the 8 channels"),
        ("maxpool2d", {"kernel_size": 3}, [(4, 2, 2)], "kernel_size 3 is larger than the input (4, 2, 2)"),
        ("avgpool1d", {"kernel_size": 2}, [(3, 4, 4)], "expects input (channels, length) but gets (3, 4, 4)"),
        ("global_avgpool", {}, [(64,)], "expects input (channels, *spatial) but gets (64,)"),
        ("batchnorm2d", {}, [(64,)], "expects input (channels, height, width)"),
        ("batchnorm1d", {}, [(3, 4, 4)], "expects input (channels,) or (channels, length)"),
        ("layernorm", {"dims": 3}, [(4, 5)], "dims 3 is more than the 2 axes"),
        ("dropout2d", {}, [(10,)], "expects input (channels, height, width) but gets (10,)"),
        ("softmax", {"dim": 2}, [(4, 5)], "dim 2 is out of range for the input (4, 5)"),
        ("log_softmax", {"dim": -3}, [(4, 5)], "dim -3 is out of range"),
        ("upsample", {"scale_factor": 2, "mode": "bilinear"}, [(3, 8)], "mode 'bilinear' expects input (channels, height, width)"),
        ("upsample", {"size": [4, 4]}, [(3, 8)], "size (4, 4) has 2 values"),
        ("upsample", {"scale_factor": 2}, [(8,)], "but gets (8,)"),
    ],
)
def test_bad_inputs_raise_shape_error(name: str, args: dict, shapes: list, text: str) -> None:
    with pytest.raises(ShapeError) as info:
        shape_of(name, args, *shapes)
    assert text in info.value.message


def test_shape_errors_carry_hints() -> None:
    with pytest.raises(ShapeError) as info:
        shape_of("conv2d", {"out_channels": 8, "kernel_size": 3}, (64,))
    assert info.value.hint == "add 'reshape' before it"


@pytest.mark.parametrize(
    "name,args",
    [
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "groups": 3}),
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": "same"}),
        ("conv2d", {"out_channels": 8, "kernel_size": 0}),
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "in_channels": 3}),
        ("conv_transpose2d", {"out_channels": 8, "kernel_size": 3, "stride": 2, "output_padding": 2}),
        ("maxpool2d", {"kernel_size": 2, "padding": 2}),
        ("dropout", {"p": 1.0}),
        ("upsample", {}),
        ("upsample", {"scale_factor": 2, "size": 8}),
        ("upsample", {"scale_factor": 2, "align_corners": True}),
        ("gelu", {"approximate": "erf"}),
    ],
)
def test_bad_arguments_fail_validation(name: str, args: dict) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        REGISTRY[name].config.model_validate(args)


def test_batch_axis_is_skipped_by_dims() -> None:
    import torch

    # softmax dim 0 normalizes the sample's first axis, so columns (batched dim 1) sum to 1.
    lt = REGISTRY["softmax"]
    cfg = lt.config.model_validate({"dim": 0})
    out = lt.build(cfg, (4, 5))(torch.randn(3, 4, 5))
    assert torch.allclose(out.sum(dim=1), torch.ones(3, 5))


def test_registry_refuses_reserved_node_keys() -> None:
    class UsesId(LayerConfig):
        type: Literal["test_uses_id"] = "test_uses_id"
        id: int = 0

    with pytest.raises(ValueError, match="reserved"):
        register(UsesId, shape=lambda cfg, x: x, build=lambda cfg, x: None, samples=[({}, ((1,),))])
    assert "test_uses_id" not in REGISTRY


def test_registry_refuses_a_name_twice() -> None:
    lt = REGISTRY["relu"]
    with pytest.raises(ValueError, match="registered twice"):
        register(lt.config, shape=lt.shape, build=lt.build, samples=list(lt.samples))


def test_shape_rules_do_not_import_torch() -> None:
    # `udlc check` runs the registry's shape, params and FLOP rules without torch.
    code = (
        "import sys\n"
        "from udlc.layers import REGISTRY\n"
        "for lt in REGISTRY.values():\n"
        "    for args, shapes in lt.samples:\n"
        "        cfg = lt.config.model_validate(args)\n"
        "        lt.shape(cfg, *shapes); lt.params(cfg, *shapes); lt.flops(cfg, *shapes)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
