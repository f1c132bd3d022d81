"""Lowering to torch.fx, and the pure training helpers (schedules, checkpoint state)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import udlc
from udlc.compiler.infer import bind
from udlc.compiler.lower import cross_check, example_inputs, lower
from udlc.compiler.pipeline import resolve_text
from udlc.spec.training import Cosine, Cyclical, Linear, MultiStep, OneCycle, Step
from udlc.runs import checkpoint
from udlc.objectives.schedules import lr_factor

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_build_and_match_static_shapes(example: Path) -> None:
    compiled = udlc.load_spec(example)
    if not compiled.graphs:
        pytest.skip(f"{example.name}: no network (model: gradient_boosting)")
    modules = udlc.build(compiled)
    for name, graph in compiled.graphs.items():
        assert cross_check(graph).startswith("torch agrees")
        module = modules if compiled.spec.model is not None else modules[name]
        binding = {s: 11 for s in graph.symbols}  # a length of its own for every symbol (T)
        outs = module(*example_inputs(graph, 3, binding))
        outs = outs if isinstance(outs, tuple) else (outs,)
        assert [tuple(o.shape) for o in outs] == [(3, *bind(s, binding)) for s in graph.output_shapes]


def test_generated_forward_reads_like_pytorch() -> None:
    module = udlc.build(ROOT / "examples" / "digits-cnn.yaml")
    code = module.code
    assert "def forward(self, x)" in code
    assert "conv_bn_conv2d = self.conv_bn_conv2d(x)" in code
    assert "add = self.add(conv_bn_relu, conv_bn_2_relu)" in code


def tiny(init: str = "default", extra: str = ""):
    return resolve_text(f"""
udlc: 1
name: t
data: {{source: digits}}
loss: cross_entropy
model:
  input: [8]
  init: {init}
  layers: [{{linear: 16}}, relu, {{linear: {{out_features: 4{extra}}}}}]
""").graph


def test_init_options() -> None:
    zeros = lower(tiny("zeros"), seed=0)
    assert all(torch.count_nonzero(p) == 0 for p in zeros.parameters())
    kaiming = lower(tiny("kaiming"), seed=0)
    w = kaiming.linear.weight
    assert abs(w.std().item() - math.sqrt(2 / 8)) < 0.15 and torch.count_nonzero(kaiming.linear.bias) == 0
    mixed = lower(tiny("default", ", init: zeros"), seed=0)
    assert torch.count_nonzero(mixed.linear_1.weight) == 0 and torch.count_nonzero(mixed.linear.weight) > 0


@pytest.mark.parametrize("name", sorted(__import__("udlc.spec.inits", fromlist=["INITS"]).INITS))
def test_every_registered_init_is_accepted_and_sets_the_weights(name: str) -> None:
    """Registering an init is enough: the spec accepts its name, and lowering applies it to every weight
    matrix (biases start at zero); 'default' leaves PyTorch's own init."""
    from udlc.compiler.lower import FILL
    from udlc.spec.inits import INITS

    assert INITS[name].description
    default, mine = lower(tiny("default"), seed=0), lower(tiny(name), seed=0)
    same = [torch.equal(a, b) for a, b in zip(default.parameters(), mine.parameters())]
    if FILL[name] is None:
        assert all(same)
    else:
        assert not same[0] and torch.count_nonzero(mine.linear.bias) == 0


def test_same_seed_same_weights_regardless_of_global_rng() -> None:
    a = lower(tiny(), seed=3)
    torch.rand(100)
    b = lower(tiny(), seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def factors(schedule, steps=100, spe=10, base=0.1):
    f = lr_factor(schedule, base, spe, steps)
    return [f(t) for t in range(steps)]


def test_warmup_then_cosine_to_min_lr() -> None:
    fs = factors(Cosine(warmup_steps=10, min_lr=0.001))
    assert fs[0] == pytest.approx(0.1) and fs[9] == pytest.approx(1.0)
    assert fs[10] == pytest.approx(1.0) and fs[-1] == pytest.approx(0.01, abs=0.01)
    assert all(a >= b for a, b in zip(fs[10:], fs[11:]))


def test_step_multistep_linear_cyclical_one_cycle() -> None:
    assert factors(Step(step_size=3, gamma=0.5))[29:31] == [1.0, 0.5]
    assert factors(MultiStep(milestones=[2, 5]))[19:21] == [1.0, pytest.approx(0.1)]
    lin = factors(Linear(min_lr=0.0))
    assert lin[0] == 1.0 and lin[50] == pytest.approx(0.5)
    cyc = factors(Cyclical(cycle_epochs=2, min_lr=0.01))
    assert cyc[0] == pytest.approx(0.1) and cyc[10] == pytest.approx(1.0) and cyc[20] == pytest.approx(0.1)
    one = factors(OneCycle(max_lr=1.0, pct_start=0.3))
    assert max(one) == pytest.approx(10.0) and one.index(max(one)) == 29 and one[-1] < one[0]


def test_checkpoint_round_trip_keeps_nested_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state(),
             "position": {"epoch": 2, "best": None}}
    checkpoint.save(tmp_path / "last", state)
    back = checkpoint.load(tmp_path / "last")
    assert back["position"] == {"epoch": 2, "best": None}
    assert torch.equal(back["rng"], state["rng"])
    assert set(back["optimizer"]["state"]) == {0, 1}
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(back["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (tmp_path / "last.json").is_file()


def test_weight_decay_skips_biases_and_norms() -> None:
    from udlc.objectives.optimizers import make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    spec = SimpleNamespace(type="adamw", lr=0.1, weight_decay=0.1, decay_bias_and_norm=False, betas=(0.9, 0.99),
                           eps=1e-8, amsgrad=False)
    opt, note = make_optimizer(model, spec)
    decayed, plain = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [(4, 4)] and plain["weight_decay"] == 0.0
    assert len(plain["params"]) == 3 and "not on 3 biases and norm parameters" in note


def test_checkpoints_use_the_plain_module_under_torch_compile() -> None:
    from udlc.trainer.loop import Setup

    model = torch.nn.Linear(2, 2)
    compiled = torch.compile(model)  # nothing is compiled until the first call
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    holder = SimpleNamespace(models={"model": compiled})
    assert Setup.module(holder, "model") is model
    assert list(Setup.module(holder, "model").state_dict()) == ["weight", "bias"]


def test_reserved_ids_cover_every_public_attribute_of_a_graph_module() -> None:
    """Node ids become submodule names; one that shadows an nn.Module/GraphModule attribute breaks lowering."""
    from udlc.compiler.resolve import RESERVED_IDS

    public = {n for n in dir(torch.fx.GraphModule) if not n.startswith("_")}
    assert public <= RESERVED_IDS, sorted(public - RESERVED_IDS)
