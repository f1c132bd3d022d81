"""Issue 24 §5: adadelta, adagrad, nadam, radam and lbfgs equal torch.optim's; the orthogonal and uniform inits
equal torch.nn.init's; train.precision fp64 trains in float64 and exports a float32 file with parity."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter
from safetensors.torch import load_file
from torch import nn

import udlc
from udlc.compiler.lower import apply_init
from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors
from udlc.objectives.optimizers import make_optimizer
from udlc.spec.optimizers import check_closure_optimizers
from udlc.spec.training import Optimizer
from udlc.tasks.check import compile_text
from udlc.trainer.evaluate import evaluate_run
from udlc.trainer.run import build_models

# Each optimizer with every field away from its default, and torch's class given the same values by hand: a
# field that udlc dropped or misnamed leaves torch's default in place and the parameters part.
FIRST_ORDER = [
    ({"type": "adadelta", "lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.01},
     torch.optim.Adadelta, {"lr": 0.5, "rho": 0.8, "eps": 1e-5}),
    ({"type": "adagrad", "lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-9,
      "weight_decay": 0.01},
     torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-9}),
    ({"type": "nadam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-7, "momentum_decay": 0.01, "weight_decay": 0.01,
      "decoupled_weight_decay": True},
     torch.optim.NAdam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7, "momentum_decay": 0.01,
                         "decoupled_weight_decay": True}),
    ({"type": "radam", "lr": 0.01, "betas": [0.85, 0.995], "eps": 1e-7, "weight_decay": 0.05,
      "decoupled_weight_decay": True},
     torch.optim.RAdam, {"lr": 0.01, "betas": (0.85, 0.995), "eps": 1e-7, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize("fields, cls, kwargs", FIRST_ORDER, ids=[f[0]["type"] for f in FIRST_ORDER])
def test_first_order_optimizers_step_as_torch_does(fields, cls, kwargs) -> None:
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 3), nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    opt, _ = make_optimizer(ours, TypeAdapter(Optimizer).validate_python(fields))
    # udlc's rule: weight decay on the weight matrix, not on the bias.
    ref = cls([{"params": [theirs.weight], "weight_decay": fields["weight_decay"]},
               {"params": [theirs.bias], "weight_decay": 0.0}], **kwargs)
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    before = ours.weight.detach().clone()
    for _ in range(5):
        for model, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            F.mse_loss(model(x), y).backward()
            o.step()
    assert not torch.equal(ours.weight, before)  # it moved
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_lbfgs_fields_reach_torch_and_max_eval_follows_torch_default() -> None:
    cfg = TypeAdapter(Optimizer).validate_python({"lbfgs": {"max_iter": 8, "history_size": 5,
                                                            "line_search_fn": "strong_wolfe"}})
    opt, note = make_optimizer(nn.Linear(2, 1), cfg)
    assert isinstance(opt, torch.optim.LBFGS) and "no weight decay" in note
    assert opt.defaults == {"lr": 1.0, "max_iter": 8, "max_eval": 10, "history_size": 5,
                            "line_search_fn": "strong_wolfe", "tolerance_grad": 1e-7, "tolerance_change": 1e-9}
    assert opt.defaults["max_eval"] == torch.optim.LBFGS(nn.Linear(2, 1).parameters(), max_iter=8).defaults["max_eval"]


REGRESSION = """
udlc: 1
name: lbfgs-diabetes
seed: 0
data: {{source: diabetes}}
model: {{input: [10], layers: [{{linear: 8}}, tanh, {{dropout: 0.2}}, {{linear: 1}}]}}
loss: mse
optimizer: {{type: lbfgs, line_search_fn: strong_wolfe, max_iter: 6, history_size: 10}}
train: {{batch_size: {batch}, epochs: 2, seed: 1, checkpoint_seconds: 0}}
"""


@pytest.mark.parametrize("batch", [1000, 128], ids=["full-batch", "minibatches"])
def test_lbfgs_run_equals_a_hand_written_closure_loop(tmp_path, batch) -> None:
    """The same data, init and batch order as the run; the closure redraws the dropout masks the step first drew
    (torch's RNG state kept before the step), as udlc's replay promises."""
    compiled = compile_text(REGRESSION.format(batch=batch))
    run = udlc.train(compiled, out=tmp_path, quiet=True)
    trained = load_file(run / "checkpoints" / "last.safetensors")

    task, cpu = compiled.task, torch.device("cpu")
    state = task.start(compiled, task.load_data(compiled), cpu)
    batches = task.batches(state, "train", batch_size=batch, shuffle=True, device=cpu)
    model = build_models(compiled, cpu)["model"]
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=6, history_size=10, line_search_fn="strong_wolfe")
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model.train()
    for _ in range(2):
        for b in batches.epoch_batches(generator):
            rng = torch.get_rng_state()

            def closure():
                torch.set_rng_state(rng)
                opt.zero_grad()
                loss = F.mse_loss(model(b["x"]), b["target"])
                loss.backward()
                return loss

            opt.step(closure)
    assert opt.state[opt._params[0]]["func_evals"] > 2 * len(batches)  # the line search re-evaluated
    for name, tensor in model.state_dict().items():
        assert torch.equal(trained[f"models.model.{name}"], tensor), name


def _closure_errors(text: str) -> list:
    compiled = resolve_text(text, "spec.yaml")
    return check_closure_optimizers(compiled.spec, compiled.doc)


def test_lbfgs_refuses_what_it_cannot_recompute_at_its_line() -> None:
    base = "udlc: 1\nname: x\ndata: {source: diabetes}\nmodel: {input: [10], layers: [{linear: 1}]}\nloss: mse\n"
    (accum,) = _closure_errors(base + "optimizer: lbfgs\ntrain:\n  grad_accum: 2\n")
    assert (accum.span.line, accum.path) == (8, "train.grad_accum") and "raise train.batch_size" in accum.hint
    (clip,) = _closure_errors(base + "optimizer: lbfgs\ntrain:\n  grad_clip: 1.0\n")
    assert (clip.span.line, clip.path) == (8, "train.grad_clip")
    assert _closure_errors(base + "optimizer: lbfgs\ntrain: {batch_size: 500}\n") == []
    assert _closure_errors(base + "optimizer: adam\ntrain: {grad_accum: 2, grad_clip: 1.0}\n") == []
    two = ("udlc: 1\nname: x\ndata: {source: diabetes}\nmodels:\n  a: {input: [10], layers: [{linear: 4}]}\n"
           "  b: {input: [4], layers: [{linear: 1}]}\noptimizers:\n  a: adam\n  b: {type: lbfgs}\n")
    (several,) = _closure_errors(two)
    assert (several.span.line, several.path) == (9, "optimizers.b") and "2 (a, b)" in several.message


def test_lbfgs_max_eval_below_max_iter_is_refused_at_its_line() -> None:
    with pytest.raises(SpecErrors) as e:
        resolve_text("udlc: 1\nname: x\ndata: {source: diabetes}\nmodel: {input: [10], layers: [{linear: 1}]}\n"
                     "loss: mse\noptimizer: {type: lbfgs, max_iter: 10, max_eval: 5}\n", "spec.yaml")
    assert e.value.errors[0].span.line == 6 and "at least max_iter" in str(e.value)


@pytest.mark.parametrize("shape", [(7, 5), (6, 3, 3, 3), (40, 12)])
def test_orthogonal_and_uniform_inits_equal_torch_nn_init(shape) -> None:
    for init, reference in (("orthogonal", nn.init.orthogonal_),
                            ("uniform", lambda w: nn.init.uniform_(w, -1 / _fan_in(shape) ** 0.5,
                                                                   1 / _fan_in(shape) ** 0.5))):
        module = nn.Conv2d(shape[1], shape[0], shape[2]) if len(shape) == 4 else nn.Linear(shape[1], shape[0])
        torch.manual_seed(7)
        apply_init(module, init)
        torch.manual_seed(7)
        expected = reference(torch.empty(shape))
        assert torch.equal(module.weight, expected), init
        assert torch.equal(module.bias, torch.zeros_like(module.bias))
    flat = module.weight.detach().flatten(1)  # the last: uniform. Check the bound by hand, too.
    assert flat.abs().max() <= _fan_in(shape) ** -0.5


def test_orthogonal_gives_orthonormal_rows_through_a_spec() -> None:
    compiled = compile_text("udlc: 1\nname: o\ndata: {source: digits}\nmodel:\n  input: [64]\n  init: orthogonal\n"
                            "  layers: [{linear: 32}, relu, {linear: 10}]\nloss: cross_entropy\n")
    weight = build_models(compiled, torch.device("cpu"))["model"].linear.weight.detach()
    assert torch.allclose(weight @ weight.T, torch.eye(32), atol=1e-5)


def _fan_in(shape: tuple[int, ...]) -> int:
    size = 1
    for s in shape[1:]:
        size *= s
    return size


FP64 = """
udlc: 1
name: fp64-digits
data: {source: digits}
model: {input: [64], layers: [{linear: 16}, relu, {dropout: 0.1}, {linear: 10}]}
loss: cross_entropy
metrics: [accuracy]
train: {precision: fp64, epochs: 1, batch_size: 256}
"""


def test_fp64_trains_in_float64_and_exports_float32_with_parity(tmp_path) -> None:
    run = udlc.train(compile_text(FP64), out=tmp_path, quiet=True)
    saved = load_file(run / "checkpoints" / "last.safetensors")
    # Weights and Adam's moments; Adam's step counter is float32 in torch whatever the parameters' dtype.
    floats = {k: t.dtype for k, t in saved.items() if t.is_floating_point() and not k.endswith(".step")}
    assert len(floats) == 12 and set(floats.values()) == {torch.float64}, floats
    results = json.loads((run / "results.json").read_text())
    # `udlc eval` rebuilds the float64 network before loading: the same metrics to the last digit.
    assert evaluate_run(run)["test_loss"] == results["test_loss"]
    onnx_path = udlc.export(run)  # parity-checked against torch inside
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_fp64_networks_take_float32_batches_and_compute_in_float64() -> None:
    from udlc.trainer.loop import Setup

    compiled = compile_text(FP64)
    models = build_models(compiled, torch.device("cpu"))
    seen = []
    models["model"].linear.register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    s = Setup(spec=compiled.spec, task=compiled.task, graphs=compiled.graphs, models=models, optimizers={},
              schedulers={}, plateaus={}, train=None, val=None, augment=None, generator=torch.Generator(),
              device=torch.device("cpu"), autocast=None, run=None, log=None)
    Setup(**{**s.__dict__, "state": dict(s.state)})  # a second Setup over the same networks hooks them once
    out = s.models["model"](torch.randn(3, 64))
    assert out.dtype == torch.float64 and seen == [(torch.float64, torch.float64)]
    assert len(s.models["model"]._forward_pre_hooks) == 1


def test_fp64_with_fsdp_is_refused_at_the_train_section() -> None:
    with pytest.raises(SpecErrors, match="use strategy: ddp") as e:
        compile_text(FP64.replace("batch_size: 256}", "batch_size: 256, strategy: fsdp}"))
    assert e.value.errors[0].path == "train"


def test_lbfgs_resume_continues_exactly(tmp_path) -> None:
    """L-BFGS's state (its curvature pairs, step length, counters) survives the checkpoint: two epochs then two
    more equal four at once."""
    from udlc.runs import RunFolder
    from udlc.trainer.run import train_spec

    four = REGRESSION.format(batch=128).replace("epochs: 2", "epochs: 4")
    whole = udlc.train(compile_text(four), out=tmp_path / "whole", quiet=True)
    half = udlc.train(compile_text(REGRESSION.format(batch=128)), out=tmp_path / "half", quiet=True)
    train_spec(compile_text(four), resume=RunFolder.open(half), quiet=True)
    a, b = (load_file(run / "checkpoints" / "last.safetensors") for run in (whole, half))
    assert a.keys() == b.keys() and any("old_dirs" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
