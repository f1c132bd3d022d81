"""Losses, metrics and optimizers: every registered name validates, builds and runs; metrics agree with
scikit-learn, losses with torch's modules, optimizers get every argument the spec gives."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from sklearn import metrics as skm

from udlc.errors import UdlcError
from udlc.spec.losses import LOSSES, Loss, Mismatch
from udlc.spec.metrics import METRICS, Metric
from udlc.spec.optimizers import OPTIMIZERS, Optimizer, RMSprop
from udlc.spec.training import CLASSIFICATION_LOSSES, metric_name
from udlc.objectives import augments, implements, losses, metrics, optimizers, schedules
from udlc.objectives.losses import make_loss
from udlc.objectives.metrics import compute_metrics, predictions
from udlc.objectives.optimizers import make_optimizer
from udlc.spec.augments import AUGMENTS
from udlc.spec.metrics import higher_is_better
from udlc.spec.schedules import SCHEDULES

CPU = torch.device("cpu")
N_CLASSES = 3  # the tiny classification inputs below; loss examples with class weights give this many


def examples(registry):
    return [pytest.param(e, ex, id=f"{e.name}-{i}") for e in registry for i, ex in enumerate(registry.examples(e))]


def tiny_batch(targets: str, gen: torch.Generator, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Random outputs and targets of the kind a loss takes."""
    if targets == "class":
        return torch.randn(n, N_CLASSES, generator=gen), torch.randint(0, N_CLASSES, (n,), generator=gen)
    if targets == "binary":
        return torch.randn(n, 1, generator=gen), torch.randint(0, 2, (n,), generator=gen).float()
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen)


# ---- registry-wide ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry, example", examples(LOSSES))
def test_every_loss_validates_builds_and_runs(entry, example) -> None:
    cfg = TypeAdapter(Loss).validate_python(example)
    assert cfg.type == entry.name
    out, y = tiny_batch(entry.targets, torch.Generator().manual_seed(0))
    out.requires_grad_(True)
    value = make_loss(cfg, CPU)(out, y)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()
    # The output check accepts what the loss just ran on, and rejects an output of the wrong width.
    n_classes = {"class": N_CLASSES, "binary": 2, "real": None}[entry.targets]
    task = "regression" if entry.targets == "real" else "classification"
    assert entry.check(cfg, tuple(out.shape[1:]), task, n_classes, tuple(y.shape[1:])) is None
    assert isinstance(entry.check(cfg, (7,), task, n_classes, tuple(y.shape[1:])), Mismatch)
    assert entry.classification == (entry.name in CLASSIFICATION_LOSSES)
    assert entry.answers in ("softmax", "sigmoid", "identity")


def metric_inputs(task: str, gen: torch.Generator, n: int = 32):
    """(how the loss answers, random outputs, perfect outputs, targets) for a metric's task."""
    if task == "classification":
        y = torch.randint(0, N_CLASSES, (n,), generator=gen)
        return "softmax", torch.randn(n, N_CLASSES, generator=gen), 10.0 * torch.eye(N_CLASSES)[y], y
    y = torch.randn(n, 2, generator=gen)
    return "identity", torch.randn(n, 2, generator=gen), y.clone(), y


@pytest.mark.parametrize("entry, example", examples(METRICS))
def test_every_metric_validates_computes_and_knows_its_direction(entry, example) -> None:
    cfg = TypeAdapter(Metric).validate_python(example)
    assert cfg.type == entry.name
    assert "higher_is_better" in {f.name for f in dataclasses.fields(entry)}
    assert isinstance(entry.higher_is_better, bool)
    name = metric_name(cfg)
    assert name == entry.logged_name(cfg)
    for split in ("train_", "val_", "test_"):
        assert higher_is_better(split + name) is entry.higher_is_better
    answers, noise, perfect, y = metric_inputs(entry.task, torch.Generator().manual_seed(1))
    random_score = compute_metrics([cfg], noise, y, answers)[name]
    perfect_score = compute_metrics([cfg], perfect, y, answers)[name]
    assert isinstance(random_score, float) and np.isfinite(random_score)
    # The field and the implementation agree: perfect answers never score worse than random ones.
    assert (perfect_score >= random_score) if entry.higher_is_better else (perfect_score <= random_score)


@pytest.mark.parametrize("entry, example", examples(OPTIMIZERS))
def test_every_optimizer_gets_every_argument_and_steps(entry, example) -> None:
    cfg = TypeAdapter(Optimizer).validate_python(example)
    assert cfg.type == entry.name
    model = torch.nn.Linear(3, 2)
    opt, note = make_optimizer(model, cfg)
    for field in type(cfg).model_fields:
        # these pick param groups (tested below and in tests/test_finetune.py), not torch's arguments
        if field not in ("type", "decay_bias_and_norm", "groups", "layer_decay"):
            assert opt.defaults[field] == getattr(cfg, field), field
    before = model.weight.detach().clone()
    x = torch.randn(4, 3)

    def closure():  # every torch optimizer takes one; L-BFGS (OPTIMIZERS[...].closure) needs it
        opt.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert not torch.equal(before, model.weight) and isinstance(note, str)


def test_registered_names_are_the_spec_union_members() -> None:
    for union, registry in ((Loss, LOSSES), (Metric, METRICS), (Optimizer, OPTIMIZERS)):
        for name in registry.names():
            assert TypeAdapter(union).validate_python(name).type == name


def test_unknown_names_get_a_did_you_mean() -> None:
    with pytest.raises(UdlcError, match="did you mean 'cross_entropy'"):
        LOSSES["cross_entropi"]
    with pytest.raises(UdlcError, match="did you mean 'val_accuracy'"):
        higher_is_better("val_acuracy")


def test_higher_is_better_comes_from_the_registry() -> None:
    expected = {"val_accuracy": True, "val_loss": False, "train_loss": False, "val_r2": True,
                "val_top5_accuracy": True, "test_f1_macro": True, "val_mae": False, "val_rmse": False}
    assert {name: higher_is_better(name) for name in expected} == expected


def test_registries_and_implementations_import_without_torch() -> None:
    code = ("import sys, udlc.spec.training, udlc.spec.losses, udlc.spec.metrics, udlc.spec.optimizers, "
            "udlc.spec.schedules, udlc.objectives.losses, udlc.objectives.metrics, udlc.objectives.optimizers, "
            "udlc.objectives.schedules, udlc.objectives.augments; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


TABLES = [(LOSSES, losses.BUILD), (METRICS, metrics.COMPUTE), (OPTIMIZERS, optimizers.BUILD),
          (SCHEDULES, schedules.FACTOR), (AUGMENTS, augments.APPLY)]


@pytest.mark.parametrize("registry, table", TABLES, ids=lambda x: getattr(x, "kind", ""))
def test_every_registered_name_has_one_implementation(registry, table) -> None:
    assert list(table) == registry.names()  # the same names, in the same order


def test_a_forgotten_or_stray_implementation_fails_at_import() -> None:
    table = dict(losses.BUILD)
    del table["huber"]
    with pytest.raises(AssertionError, match=r"loss implementations .*none for \['huber'\]"):
        implements(LOSSES, table)
    with pytest.raises(AssertionError, match=r"\['hinge'\] not registered"):
        implements(LOSSES, {**losses.BUILD, "hinge": losses.BUILD["mse"]})


def test_spec_holds_configs_only() -> None:
    """udlc/spec has no implementations: nothing there imports torch or numpy, even inside a function."""
    import re
    from pathlib import Path

    import udlc.spec

    for path in Path(udlc.spec.__file__).parent.glob("*.py"):
        found = re.findall(r"^\s*(?:import|from)\s+(torch|numpy)\b", path.read_text(), re.M)
        assert not found, f"{path.name} imports {found}"


# ---- metrics against scikit-learn ---------------------------------------------------------------

SEEDS = range(5)


@pytest.mark.filterwarnings("ignore:'k' .* will result in a perfect score")  # k >= classes, on purpose
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 5, 12])
def test_classification_metrics_agree_with_sklearn(seed: int, n_classes: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = 40  # few samples per class: some classes are missing from the targets or the predictions
    out = torch.randn(n, n_classes, generator=gen)
    y = torch.randint(0, n_classes, (n,), generator=gen)
    ks = sorted({1, 2, 3, n_classes, n_classes + 2})
    got = compute_metrics(TypeAdapter(list[Metric]).validate_python(
        ["accuracy", "f1_macro", *({"top_k": k} for k in ks)]), out, y, "softmax")
    pred = out.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    prob = out.softmax(1).numpy()
    if n_classes == 2:
        prob = prob[:, 1]  # sklearn takes a binary problem's scores as the positive class's
    for k in ks:
        want = skm.top_k_accuracy_score(y, prob, k=k, labels=np.arange(n_classes))
        assert got[f"top{k}_accuracy"] == pytest.approx(want), k


def test_f1_macro_counts_classes_that_are_only_predicted() -> None:
    y, pred = [0, 0, 1, 1], [0, 2, 1, 1]
    out = 10.0 * torch.eye(3)[pred]
    got = compute_metrics(TypeAdapter(list[Metric]).validate_python(["f1_macro"]), out, torch.tensor(y),
                          "softmax")
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))


@pytest.mark.filterwarnings("ignore:'k' .* will result in a perfect score")
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_bce_metrics_agree_with_sklearn(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(50, 1, generator=gen)
    y = torch.randint(0, 2, (50,), generator=gen).float()  # bce targets are floats
    got = compute_metrics(TypeAdapter(list[Metric]).validate_python(
        ["accuracy", "f1_macro", {"top_k": 1}, {"top_k": 2}]), out, y, "sigmoid")
    prob = out[:, 0].sigmoid().numpy()
    pred = (out[:, 0] > 0).long().numpy()
    assert torch.equal(predictions(out, LOSSES["bce"].answers), torch.from_numpy(pred))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    for k in (1, 2):
        assert got[f"top{k}_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, prob, k=k, labels=[0, 1]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_agree_with_sklearn(seed: int, outputs: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.tensor([1.0, 100.0, 0.01])[:outputs]  # columns of different scales: averaging matters
    y = torch.randn(30, outputs, generator=gen) * scale + 3
    out = y + torch.randn(30, outputs, generator=gen) * scale * 0.5
    if outputs == 1:
        y = y[:, 0]  # targets of shape (B,) against outputs (B, 1), as a one-value regression has them
    got = compute_metrics(TypeAdapter(list[Metric]).validate_python(["mae", "rmse", "r2"]), out, y, "identity")
    yn, on = y.double().numpy(), out.double().numpy().reshape(y.shape)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(yn, on), rel=1e-6)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(yn, on), rel=1e-6)
    assert got["r2"] == pytest.approx(skm.r2_score(yn, on), rel=1e-6)


def test_r2_of_a_constant_column_follows_sklearn() -> None:
    y = torch.tensor([[1.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    metrics = TypeAdapter(list[Metric]).validate_python(["r2"])
    for out in (y.clone(), y + torch.tensor([[0.5, 0.1]])):
        assert compute_metrics(metrics, out, y, "identity")["r2"] == pytest.approx(skm.r2_score(y.numpy(), out.numpy()))


# ---- losses against torch's modules --------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_bce_with_pos_weight_equals_torch(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    out, y = torch.randn(20, 1, generator=gen), torch.randint(0, 2, (20,), generator=gen).float()
    cfg = TypeAdapter(Loss).validate_python({"bce": {"pos_weight": 2.5}})
    want = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.5]))(out, y[:, None])
    assert torch.allclose(make_loss(cfg, CPU)(out, y), want)
    plain = torch.nn.BCEWithLogitsLoss()(out, y[:, None])
    assert torch.allclose(make_loss(TypeAdapter(Loss).validate_python("bce"), CPU)(out, y), plain)


@pytest.mark.parametrize("seed", SEEDS)
def test_huber_mse_mae_equal_torch(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    out, y = torch.randn(20, 2, generator=gen) * 3, torch.randn(20, 2, generator=gen) * 3
    cases = {"huber": torch.nn.HuberLoss(delta=1.0), "mse": torch.nn.MSELoss(), "mae": torch.nn.L1Loss()}
    for spec, module in [({"huber": 2}, torch.nn.HuberLoss(delta=2.0)), *cases.items()]:
        cfg = TypeAdapter(Loss).validate_python(spec)
        assert torch.allclose(make_loss(cfg, CPU)(out, y), module(out, y)), spec


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_with_smoothing_and_weights_equals_torch(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    out, y = torch.randn(20, 4, generator=gen), torch.randint(0, 4, (20,), generator=gen)
    weight = [0.5, 1.0, 2.0, 4.0]
    cfg = TypeAdapter(Loss).validate_python({"cross_entropy": {"label_smoothing": 0.2, "weight": weight}})
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), label_smoothing=0.2)(out, y)
    assert torch.allclose(make_loss(cfg, CPU)(out, y), want)
    short = TypeAdapter(Loss).validate_python({"cross_entropy": 0.1})  # the shorthand fills label_smoothing
    assert torch.allclose(make_loss(short, CPU)(out, y), torch.nn.CrossEntropyLoss(label_smoothing=0.1)(out, y))


def test_output_checks_say_what_to_fix() -> None:
    ce, bce, mse = (TypeAdapter(Loss).validate_python(n) for n in ("cross_entropy", "bce", "mse"))
    wrong = LOSSES["cross_entropy"].check(ce, (4,), "classification", 10, ())
    assert wrong is not None and wrong.hint == "end the model with `linear: 10`" and wrong.at == "output"
    assert LOSSES["bce"].check(bce, (1,), "classification", 3, ()) is not None  # three classes: not binary
    assert LOSSES["bce"].check(bce, (1,), "classification", None, ()) is None
    on_classes = LOSSES["mse"].check(mse, (1,), "classification", 2, ())
    assert on_classes is not None and on_classes.at == "loss" and "cross_entropy" in on_classes.hint
    shape = LOSSES["mse"].check(mse, (2,), "regression", None, (3,))
    assert shape is not None and shape.hint == "end the model with `linear: 3`"


# ---- optimizers ---------------------------------------------------------------------------------


def test_rmsprop_is_torchs_with_the_given_arguments() -> None:
    cfg = RMSprop(lr=0.02, alpha=0.9, momentum=0.5, eps=1e-6, centered=True, weight_decay=0.01)
    model = torch.nn.Linear(3, 2)
    opt, _ = make_optimizer(model, cfg)
    assert type(opt) is torch.optim.RMSprop
    want = torch.optim.RMSprop(model.parameters(), lr=0.02, alpha=0.9, momentum=0.5, eps=1e-6, centered=True,
                               weight_decay=0.01).defaults
    assert {k: opt.defaults[k] for k in want} == want


def norm_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))


def test_weight_decay_skips_biases_and_norms_unless_asked() -> None:
    model = norm_model()
    matrices = {id(model[0].weight), id(model[2].weight)}
    opt, note = make_optimizer(model, TypeAdapter(Optimizer).validate_python({"adamw": {"weight_decay": 0.1}}))
    decayed, plain = opt.param_groups
    assert {id(p) for p in decayed["params"]} == matrices and decayed["weight_decay"] == 0.1
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0.0  # two biases, the norm's weight and bias
    assert "not on 4 biases and norm parameters" in note
    spec = {"adamw": {"weight_decay": 0.1, "decay_bias_and_norm": True}}
    (group,), note = make_optimizer(model, TypeAdapter(Optimizer).validate_python(spec))[0].param_groups, None
    assert len(group["params"]) == 6 and group["weight_decay"] == 0.1
    (group,) = make_optimizer(model, TypeAdapter(Optimizer).validate_python("sgd"))[0].param_groups
    assert group["weight_decay"] == 0.0
