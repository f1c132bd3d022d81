"""Registry-wide layer tests: every registered type, every sample, checked against the real torch module."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from udlc.compiler.infer import bind, bindings, infer
from udlc.layers import REGISTRY, LayerConfig, ShapeError, register
from udlc.layers.conv import per_axis

ROOT = Path(__file__).resolve().parents[1]

CASES = [(name, i) for name, lt in REGISTRY.items() for i in range(len(lt.samples))]


def sample_inputs(lt, shapes, batch: int, binding: dict[str, int]) -> list:
    """Random inputs for a registry sample: its dtypes, its symbols (T) at the binding's sizes."""
    from udlc.layers.registry import random_input

    dtypes = list(lt.sample_dtypes) + ["float32"] * (len(shapes) - len(lt.sample_dtypes))
    return [random_input((batch, *bind(s, binding)), d) for s, d in zip(shapes, dtypes)]


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_sample_matches_torch(name: str, index: int) -> None:
    """The static types agree with the torch module's outputs, at two sizes of every symbol in the sample."""
    import torch

    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    assert lt.config.model_validate(cfg.model_dump()) == cfg
    dtypes = list(lt.sample_dtypes) + ["float32"] * (len(shapes) - len(lt.sample_dtypes))
    out_shapes, out_dtypes, params, _ = infer(lt, cfg, list(shapes), dtypes)
    names = list(dict.fromkeys(d for s in shapes for d in s if isinstance(d, str)))
    torch.manual_seed(0)
    module = lt.build(cfg, *[bind(s, bindings(names)[0]) for s in shapes]).eval()
    for binding in bindings(names):
        with torch.no_grad():
            out = module(*sample_inputs(lt, shapes, 3, binding))
        outs = out if lt.outputs else (out,)  # a layer with several outputs returns one tensor per name
        assert [tuple(o.shape) for o in outs] == [(3, *bind(s, binding)) for s in out_shapes]
        assert [str(o.dtype).removeprefix("torch.") for o in outs] == out_dtypes
    if lt.outputs:
        assert len(lt.outputs(cfg)) == len(out_shapes)
    assert params == sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---- FLOPs ----------------------------------------------------------------------------------------
# The convention (what `udlc check` and `udlc summary` report): FLOPs for one sample, a multiply-add
# counting 2, bias additions not counted — exactly what torch.utils.flop_counter.FlopCounterMode counts for
# the matmul and convolution ops. FlopCounterMode counts 0 for everything else (activations, norms,
# pooling, merges); udlc counts their elementwise work instead, a few operations per element (one for an
# activation, four for a norm, one per window element for pooling, eight per output for bilinear
# resampling). Those counts are checked against bounds: at most 8 operations per element of the larger of
# input and output (per window element, for pooling), and at least one per output when the layer computes
# new values rather than moving or selecting its inputs (reshape, concat, inference dropout, max pooling).
BATCH = 2
# Beyond the registry's samples: the arguments where a FLOP formula is easiest to get wrong.
FLOP_CASES = [
    ("linear", {"out_features": 5}, ((7, 3),)),  # applied to each of 7 rows
    ("conv1d", {"out_channels": 6, "kernel_size": 3, "stride": 3, "dilation": 2, "groups": 3}, ((3, 20),)),
    ("conv2d", {"out_channels": 8, "kernel_size": [3, 2], "stride": [2, 3], "dilation": [1, 2], "groups": 2,
                "padding": [2, 1]}, ((4, 11, 10),)),
    ("conv2d", {"out_channels": 6, "kernel_size": 4, "padding": "same", "groups": 6}, ((6, 7, 5),)),  # depthwise
    ("conv_transpose2d", {"out_channels": 4, "kernel_size": [3, 2], "stride": [2, 3], "padding": 1,
                          "output_padding": [1, 2], "dilation": [1, 2], "groups": 2}, ((6, 5, 4),)),
    ("adaptive_avgpool1d", {"output_size": 5}, ((2, 7),)),  # overlapping windows
    ("adaptive_avgpool2d", {"output_size": [6, 3]}, ((2, 4, 5),)),  # more outputs than inputs on one axis
    ("avgpool2d", {"kernel_size": 3, "stride": 1, "padding": 1}, ((2, 6, 6),)),
    ("upsample", {"size": [9, 3], "mode": "bilinear"}, ((2, 4, 6),)),
]
def at_report_size(shapes: tuple) -> tuple:
    """Sample shapes with their symbols at the size FLOPs are counted at (udlc.compiler.infer.REPORT_SIZE)."""
    names = list(dict.fromkeys(d for s in shapes for d in s if isinstance(d, str)))
    return tuple(bind(s, bindings(names)[0]) for s in shapes)


FLOP_ALL = [(n, args, at_report_size(shapes)) for n, lt in REGISTRY.items() for args, shapes in lt.samples] + FLOP_CASES


def torch_flops(name: str, args: dict, shapes: tuple) -> tuple[int, list, object]:
    """(FlopCounterMode's count for one sample, the inputs, the output) of the built layer on a batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    lt = REGISTRY[name]
    cfg = lt.config.model_validate(args)
    torch.manual_seed(0)
    module = lt.build(cfg, *shapes).eval()
    xs = sample_inputs(lt, shapes, BATCH, {})
    # oneDNN runs an LSTM as one fused op FlopCounterMode cannot see; without it torch counts its matmuls
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(*xs)
    total = counter.get_total_flops()
    assert total % BATCH == 0
    return total // BATCH, xs, out


@pytest.mark.parametrize("name,args,shapes", FLOP_ALL, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(FLOP_ALL)])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # the point of one case
def test_flops_match_torch(name: str, args: dict, shapes: tuple) -> None:
    import torch

    lt = REGISTRY[name]
    cfg = lt.config.model_validate(args)
    static = lt.flops(cfg, *shapes)
    counted, xs, out = torch_flops(name, args, shapes)
    out = torch.cat([o.reshape(-1) for o in out]).reshape(BATCH, -1) if isinstance(out, tuple) else out
    assert isinstance(static, int)
    if counted:  # a matmul or convolution: torch's count is the reference
        assert static == counted, f"{name}{args} on {shapes}: udlc counts {static:,}, torch {counted:,}"
        return
    out_numel = out[0].numel()
    window = math.prod(per_axis(getattr(cfg, "kernel_size", 1), len(shapes[0]) - 1))
    most = 8 * window * max(sum(math.prod(s) for s in shapes), out_numel)
    assert 0 <= static <= most, f"{name}{args}: {static:,} FLOPs for {out_numel} outputs"
    inputs = torch.cat([x.flatten() for x in xs])
    if not torch.isin(out, inputs).all():  # the layer computes new values (not only moves or selects them)
        assert static >= out_numel, f"{name}{args}: {static} FLOPs for {out_numel} computed outputs"


@pytest.mark.parametrize("name,args,shape", [c for c in FLOP_ALL if c[0].startswith(("adaptive_avgpool",
                                                                                      "global_avgpool"))])
def test_average_pool_flops_count_window_elements(name: str, args: dict, shape: tuple) -> None:
    """An average pool is linear: its matrix has one nonzero per (window, element) pair, one add each."""
    import torch

    lt = REGISTRY[name]
    cfg = lt.config.model_validate(args)
    module = lt.build(cfg, *shape)
    x = torch.randn(*shape[0])
    matrix = torch.autograd.functional.jacobian(lambda v: module(v.unsqueeze(0))[0], x)
    assert lt.flops(cfg, *shape) == int((matrix != 0).sum())


def test_example_models_count_what_torch_counts() -> None:
    """The whole graph: the matmul and convolution nodes' FLOPs add up to FlopCounterMode's count for the
    lowered module (so resolve's projections and block expansions are counted as built)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from udlc.compiler.infer import bindings
    from udlc.compiler.lower import example_inputs, lower
    from udlc.tasks import compile_spec

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for name, graph in compile_spec(path).graphs.items():
            if any(bound < size for s, size in bindings(graph.symbols)[0].items()
                   for bound in [graph.bounds.get(s, size)]):
                continue  # FLOPs are counted at a length this network cannot take (text-to-text's 16 positions)
            module = lower(graph, seed=0).eval()
            with FlopCounterMode(display=False) as counter, torch.no_grad():  # symbols at the size FLOPs count them
                module(*example_inputs(graph, BATCH, bindings(graph.symbols)[0]))
            matmuls = sum(n.flops for n in graph.nodes.values() if n.op in (
                "linear", "conv1d", "conv2d", "conv_transpose2d", "patch_embed", "gcn_conv", "gat_conv", "sage_conv",
                "gin_conv") or "attention" in n.op)
            assert matmuls > 0 and matmuls * BATCH == counter.get_total_flops(), (path.name, name)


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
    "name,args,message",
    [
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "groups": 3}, "groups 3 must divide out_channels 8"),
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": "same"}, "padding 'same' needs stride 1"),
        ("conv2d", {"out_channels": 8, "kernel_size": 0}, "greater than 0"),
        ("conv2d", {"out_channels": 8, "kernel_size": 3, "in_channels": 3}, "unknown keys ['in_channels']"),
        ("conv_transpose2d", {"out_channels": 8, "kernel_size": 3, "stride": 2, "output_padding": 2},
         "output_padding 2 must be smaller than stride or dilation"),
        ("maxpool2d", {"kernel_size": 2, "padding": 2}, "padding 2 must be at most half of kernel_size 2"),
        ("dropout", {"p": 1.0}, "less than 1"),
        ("upsample", {}, "give either scale_factor or size"),
        ("upsample", {"scale_factor": 2, "size": 8}, "give either scale_factor or size"),
        ("upsample", {"scale_factor": 2, "align_corners": True}, "align_corners applies only to modes"),
        ("gelu", {"approximate": "erf"}, "'none' or 'tanh'"),
    ],
)
def test_bad_arguments_fail_validation(name: str, args: dict, message: str) -> None:
    # The message is checked too: a case that fails for another reason (a renamed field is an unknown key)
    # would otherwise pass while testing nothing.
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        REGISTRY[name].config.model_validate(args)
    assert message in str(info.value)


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
        "from udlc.compiler.infer import infer\n"
        "from udlc.layers import REGISTRY\n"
        "for lt in REGISTRY.values():\n"
        "    for args, shapes in lt.samples:\n"
        "        dtypes = list(lt.sample_dtypes) + ['float32'] * (len(shapes) - len(lt.sample_dtypes))\n"
        "        infer(lt, lt.config.model_validate(args), list(shapes), dtypes)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
