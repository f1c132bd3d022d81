"""Learning-rate schedules: each registered one validates and runs; each one torch has is compared with
torch.optim.lr_scheduler step by step; warmup and plateau on their own."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import TypeAdapter

from udlc.objectives.schedules import FACTOR, PlateauScale, lr_factor
from udlc.spec.schedules import SCHEDULES, Schedule
from udlc.spec.training import Plateau as PlateauConfig

BASE = 0.1
SCHED = TypeAdapter(Schedule)


def ours(spec, total: int, steps_per_epoch: int = 1, base: float = BASE) -> list[float]:
    cfg = SCHED.validate_python(spec)
    factor = lr_factor(cfg, base, steps_per_epoch, total)
    return [base * factor(t) for t in range(total)]


def torchs(make, total: int, base: float = BASE) -> list[float]:
    """The lr torch's scheduler gives each of `total` optimizer steps (stepped after each, as the loop does)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base, momentum=0.9)
    sched = make(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def assert_same(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    worst = max(abs(x - y) for x, y in zip(a, b))
    assert worst <= 1e-9 * max(map(abs, b)), f"differs by up to {worst}"


S = torch.optim.lr_scheduler


@pytest.mark.parametrize("entry, example", [pytest.param(e, x, id=f"{e.name}-{i}") for e in SCHEDULES
                                            for i, x in enumerate(SCHEDULES.examples(e))])
def test_every_schedule_validates_and_gives_usable_factors(entry, example) -> None:
    cfg = SCHED.validate_python(example)
    assert cfg.type == entry.name
    for spe, total in ((1, 1), (3, 30)):
        fs = [lr_factor(cfg, BASE, spe, total)(t) for t in range(total)]
        # Some start at 0 (a cycle from min_lr 0); none may be negative.
        assert all(math.isfinite(f) and f >= 0 for f in fs), fs
    assert max(fs) > 0, fs


# ---- against torch.optim.lr_scheduler: durations in epochs, one step per epoch -------------------

EPOCHS = 23


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (7, 0.9)])
def test_step_is_steplr(step_size: int, gamma: float) -> None:
    want = torchs(lambda o: S.StepLR(o, step_size=step_size, gamma=gamma), EPOCHS)
    assert_same(ours({"step": {"step_size": step_size, "gamma": gamma}}, EPOCHS), want)


@pytest.mark.parametrize("milestones", [[1], [2, 5, 11], [5, 3, 3]])
def test_multistep_is_multisteplr(milestones: list[int]) -> None:
    want = torchs(lambda o: S.MultiStepLR(o, milestones=milestones, gamma=0.3), EPOCHS)
    assert_same(ours({"multistep": {"milestones": milestones, "gamma": 0.3}}, EPOCHS), want)


@pytest.mark.parametrize("gamma", [0.5, 0.95, 1.0])
def test_exponential_is_exponentiallr(gamma: float) -> None:
    assert_same(ours({"exponential": {"gamma": gamma}}, EPOCHS), torchs(lambda o: S.ExponentialLR(o, gamma), EPOCHS))


@pytest.mark.parametrize("steps_per_epoch", [1, 4])
def test_epoch_durations_hold_for_any_steps_per_epoch(steps_per_epoch: int) -> None:
    """With several steps per epoch, the lr changes at epoch boundaries: torch's per-epoch lr, repeated."""
    for spec, make in (({"step": {"step_size": 3, "gamma": 0.5}}, lambda o: S.StepLR(o, 3, 0.5)),
                       ({"multistep": {"milestones": [2, 4]}}, lambda o: S.MultiStepLR(o, [2, 4])),
                       ({"exponential": {"gamma": 0.8}}, lambda o: S.ExponentialLR(o, 0.8))):
        per_epoch = torchs(make, EPOCHS)
        assert_same(ours(spec, EPOCHS * steps_per_epoch, steps_per_epoch),
                    [lr for lr in per_epoch for _ in range(steps_per_epoch)])


@pytest.mark.parametrize("total", [1, 10, 57])
@pytest.mark.parametrize("min_lr", [0.0, 1e-3])
def test_cosine_is_cosineannealinglr(total: int, min_lr: float) -> None:
    want = torchs(lambda o: S.CosineAnnealingLR(o, T_max=total, eta_min=min_lr), total)
    assert_same(ours({"cosine": {"min_lr": min_lr}}, total, steps_per_epoch=5), want)


@pytest.mark.parametrize("total", [1, 10, 57])
@pytest.mark.parametrize("min_lr", [0.0, 1e-3])
def test_linear_is_linearlr(total: int, min_lr: float) -> None:
    want = torchs(lambda o: S.LinearLR(o, start_factor=1.0, end_factor=min_lr / BASE, total_iters=total), total)
    assert_same(ours({"linear": {"min_lr": min_lr}}, total, steps_per_epoch=5), want)


@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
@pytest.mark.parametrize("cycle_epochs, steps_per_epoch", [(2, 1), (4, 3), (1.5, 4)])
def test_cyclical_is_cycliclr(mode: str, cycle_epochs: float, steps_per_epoch: int) -> None:
    total = 40
    half = int(cycle_epochs * steps_per_epoch) / 2  # torch takes the half cycle in steps
    want = torchs(lambda o: S.CyclicLR(o, base_lr=1e-3, max_lr=BASE, step_size_up=half, step_size_down=half,
                                       mode=mode, cycle_momentum=False), total)
    got = ours({"cyclical": {"min_lr": 1e-3, "cycle_epochs": cycle_epochs, "mode": mode}}, total, steps_per_epoch)
    assert_same(got, want)


@pytest.mark.parametrize("total", [7, 37, 100, 1000])
@pytest.mark.parametrize("pct_start", [0.25, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_is_onecyclelr(total: int, pct_start: float, anneal: str) -> None:
    for max_lr, final_div in ((1.0, 1e4), (None, 10.0)):
        want = torchs(lambda o: S.OneCycleLR(
            o, max_lr=max_lr or 10 * BASE, total_steps=total, pct_start=pct_start, anneal_strategy=anneal,
            final_div_factor=final_div, cycle_momentum=False), total)
        spec = {"one_cycle": {"max_lr": max_lr, "pct_start": pct_start, "final_div": final_div, "anneal": anneal}}
        assert_same(ours(spec, total), want)


def test_one_cycle_when_the_ramp_is_one_step() -> None:
    """pct_start x steps == 1 puts OneCycleLR's phase boundary at step 0, where torch divides by zero. Ours
    is torch's with the boundary a hair earlier (the peak at step 0) and, from step 1 on, a hair either side."""
    fs = ours({"one_cycle": {"max_lr": 1.0, "pct_start": 0.1}}, 10)
    for eps in (-1e-12, 1e-12):
        want = torchs(lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=0.1 + eps,
                                             cycle_momentum=False), 10)
        assert_same(fs[1:], want[1:])
        if eps < 0:
            assert fs[0] == pytest.approx(want[0]) == 1.0


# ---- warmup -------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["cosine", {"one_cycle": {"max_lr": 0.5}}, {"step": {"step_size": 1}}])
@pytest.mark.parametrize("warmup", [1, 5])
def test_warmup_ramps_linearly_then_runs_the_schedule_over_the_rest(example, warmup: int) -> None:
    total = 30
    cfg = SCHED.validate_python(example)
    warm = lr_factor(cfg.model_copy(update={"warmup_steps": warmup}), BASE, 2, total)
    plain = lr_factor(cfg, BASE, 2, total - warmup)
    ramp = torchs(lambda o: S.LinearLR(o, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)),
                  warmup)
    assert_same([BASE * warm(t) for t in range(warmup)], ramp)
    assert [warm(t) for t in range(warmup, total)] == [plain(t) for t in range(total - warmup)]


# ---- plateau ------------------------------------------------------------------------------------


def test_every_registered_schedule_has_one_implementation() -> None:
    assert set(FACTOR) == set(SCHEDULES.names())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_follows_reducelronplateau(seed: int, mode: str) -> None:
    """ReduceLROnPlateau with threshold 0 and no cooldown is the same rule, applied to the same values."""
    gen = torch.Generator().manual_seed(seed)
    # A noisy trend with flat stretches and repeats, so that improvements and waits both happen.
    values = (torch.randn(60, generator=gen).cumsum(0) * 0.3).round(decimals=1).tolist()
    cfg = PlateauConfig(patience=2, factor=0.5, min_lr=BASE * 0.5**4)
    ours_ = PlateauScale(cfg, BASE, mode)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    ref = S.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2, threshold=0, threshold_mode="abs",
                              min_lr=cfg.min_lr)
    for v in values:
        ours_.update(v)
        ref.step(v)
        assert BASE * ours_.scale == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)


def test_plateau_waits_patience_epochs_then_cuts_down_to_min_lr() -> None:
    p = PlateauScale(PlateauConfig(patience=2, factor=0.1, min_lr=BASE * 0.05), BASE, "min")
    scales = []
    for v in [1.0, 0.9, 0.9, 0.95, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, float("nan")]:
        p.update(v)
        scales.append(p.scale)
    # Epochs 4 and 5 are the 2nd and 3rd without improvement: the 3rd (> patience) cuts; 0.5 improves;
    # three more waits cut again, now to min_lr / lr rather than 0.01; later cuts stay there.
    assert scales[:4] == [1.0] * 4 and scales[4] == pytest.approx(0.1) and scales[5:8] == [scales[4]] * 3
    assert scales[8] == pytest.approx(0.05) and scales[-1] == pytest.approx(0.05)
    back = PlateauScale(p.spec, BASE, "min")
    back.load(p.state())
    assert back.state() == p.state()
