"""task: gan — the adversarial losses and the gradient penalty against closed forms, the Fréchet distance,
what check refuses at its line, d_steps, and a tiny run: resume, samples.png, the exported generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import edited_spec, read_csv, refused_at, train_here
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gan-moons.yaml"


def small(tmp_path: Path, changes: dict | None = None, name: str = "gan.yaml") -> Path:
    return edited_spec(tmp_path / name, EXAMPLE, {"train.epochs": 3, "data.samples": 600, **(changes or {})})


def test_the_example_checks() -> None:
    assert compile_spec(EXAMPLE).task.name == "gan"


@pytest.mark.parametrize("changes, marker, words", [
    ({"models.critic": {"input": [2], "layers": [{"linear": 1}]}}, "critic:", "no network 'critic'"),
    ({"models.generator.layers": [{"linear": 3}]}, "linear: 3", "[2]; it gives [3]"),
    ({"models.discriminator.layers": [{"linear": 5}]}, "linear: 5", "one score"),
    ({"task": {"gan": {"loss": "hinge", "label_smoothing": 0.1}}}, "label_smoothing", "non_saturating"),
    ({"task": {"gan": {"gp_weight": 5}}}, "gp_weight", "wasserstein_gp"),
    ({"train.grad_accum": 2}, "grad_accum", "does not accumulate"),
    ({"loss": "mse"}, "loss: mse", "defines its own losses"),
    ({"metrics": ["r2"]}, "metrics:", "own values"),
    ({"models.discriminator.input": [3], "models.generator.layers": [{"linear": 3}]}, "input: [3]", "moons gives"),
    ({"train.early_stopping": {"monitor": "val_fid", "patience": 2}}, "monitor: val_fid", "val_frechet"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, changes, marker, words) -> None:
    refused_at(small(tmp_path, changes), marker, words)


def test_a_task_that_takes_a_loss_says_so_when_it_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"udlc": 1, "name": "x", "data": {"source": "iris"},
                                    "model": {"input": [4], "layers": [{"linear": 3}]}}))
    with pytest.raises(SpecErrors) as info:
        compile_spec(path)
    assert "needs a `loss`" in info.value.errors[0].message


def gan(**options):
    from udlc.tasks.gan import GAN, GANOptions

    return GAN(GANOptions(**options))


def test_the_losses_are_their_closed_forms() -> None:
    import torch

    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    ns = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    assert torch.allclose(gan().d_loss(real, fake), ns)
    assert torch.allclose(gan().g_loss(fake), -torch.log(sig(fake)).mean())
    smooth = -(0.9 * torch.log(sig(real)) + 0.1 * torch.log(1 - sig(real))).mean() - torch.log(1 - sig(fake)).mean()
    assert torch.allclose(gan(label_smoothing=0.1).d_loss(real, fake), smooth)
    hinge = torch.tensor((0 + 2.0) / 2 + (1.5 + 0) / 2)  # relu(1 - real), relu(1 + fake)
    assert torch.allclose(gan(loss="hinge").d_loss(real, fake), hinge)
    assert torch.allclose(gan(loss="hinge").g_loss(fake), torch.tensor(1.25))
    assert torch.allclose(gan(loss="wasserstein_gp").d_loss(real, fake), fake.mean() - real.mean())


def test_the_gradient_penalty_of_a_linear_critic_is_its_weights_norm_minus_one_squared() -> None:
    import torch

    from udlc.tasks.gan import gradient_penalty

    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))  # norm 5: penalty (5 - 1)² whatever the mix
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(16.0)
    gp.backward()  # create_graph: the penalty trains the critic
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_the_frechet_distance_of_two_gaussians() -> None:
    from udlc.tasks.generative import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) * 2.0 + np.array([1.0, 0.0, 2.0])
    # |m_a - m_b|² + tr(I + 4I - 2·2I) = 5 + 3
    assert frechet_distance(a, b) == pytest.approx(8.0, abs=0.15)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_d_steps_gives_the_generator_one_step_per_d_steps_batches(tmp_path: Path, one_torch_thread) -> None:
    from udlc.runs import checkpoint

    run = train_here(small(tmp_path, {"task": {"gan": {"d_steps": 3}}, "train.epochs": 2}), tmp_path / "runs")
    state = checkpoint.load(run / "checkpoints" / "last")
    batches = math.ceil(480 / 64) * 2  # 600 samples, 80 % for training, in batches of 64
    steps = {n: int(state["optimizers"][n]["state"][0]["step"]) for n in ("generator", "discriminator")}
    assert steps == {"discriminator": batches, "generator": batches // 3}
    rows = read_csv(run / "metrics.csv")
    assert all(float(r["train_g_loss"]) > 0 and float(r["val_frechet"]) >= 0 for r in rows)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    from udlc.exporter.onnx import export_run

    root = tmp_path_factory.mktemp("gan")
    run = train_here(small(root, {"task": {"gan": {"loss": "wasserstein_gp", "samples_every": 2}}}), root / "runs")
    export_run(run)
    return run


@pytest.mark.slow
def test_a_run_logs_both_losses_and_leaves_a_scatter_plot(gan_run: Path) -> None:
    from PIL import Image

    rows = read_csv(gan_run / "metrics.csv")
    assert list(rows[0])[:7] == ["epoch", "train_gp", "train_d_loss", "train_g_loss", "val_d_loss", "val_g_loss",
                                 "val_frechet"]
    results = json.loads((gan_run / "results.json").read_text())
    best = min(rows, key=lambda r: float(r["val_frechet"]))
    assert json.loads((gan_run / "run.json").read_text())["best_epoch"] == int(best["epoch"])
    assert results["test_frechet"] >= 0
    assert Image.open(gan_run / "samples.png").mode == "RGB"
    assert sorted(p.name for p in (gan_run / "samples").iterdir()) == ["epoch-0002.png"]  # samples_every: 2 of 3


@pytest.mark.slow
@pytest.mark.slow
def test_the_exported_generator_gives_points_in_the_datas_units(gan_run: Path, invoke, tmp_path: Path) -> None:
    import torch

    from udlc.compiler.lower import lower
    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.sample import SampleFile

    run = RunFolder.open(gan_run)
    compiled = run.compiled()
    generator = lower(compiled.graphs["generator"]).eval()
    checkpoint.load_models({"generator": generator}, run.final_checkpoint(compiled.spec))
    norm = run.info["normalization"]
    points = SampleFile(gan_run / "model.onnx").sample(40, seed=1)
    z = np.random.default_rng(1).standard_normal((40, 8), dtype=np.float32)
    with torch.no_grad():
        expected = generator(torch.from_numpy(z)).numpy() * np.array(norm["scale"]) + np.array(norm["shift"])
    assert points.shape == (40, 2) and np.allclose(points, expected, atol=1e-4)
    result = invoke("sample", gan_run, "-n", "500", "-o", tmp_path / "points.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "points.npy").shape == (500, 2)
