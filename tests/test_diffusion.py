"""task: diffusion — the schedules, the forward process q(x_t | x_0) and the samplers against closed forms, the
numpy sampler against the torch one step by step, what check refuses at its line, and a tiny class-conditional
run: EMA, resume, export, `udlc sample --class`, the reference classifier's measures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_failure, edited_spec, line_of, train_here
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec
from udlc.tasks.diffusion_sampling import alphas_cumprod, guided, sample, timesteps

ROOT = Path(__file__).resolve().parent.parent
SPIRALS = ROOT / "examples" / "diffusion-spirals.yaml"
DIGITS = ROOT / "examples" / "diffusion-digits.yaml"


def written(tmp_path: Path, example: Path, changes: dict | None = None, name: str = "d.yaml") -> Path:
    return edited_spec(tmp_path / name, example, changes or {})


@pytest.mark.parametrize("example", [SPIRALS, DIGITS], ids=lambda p: p.name)
def test_the_examples_check(example: Path) -> None:
    assert compile_spec(example).task.name == "diffusion"


@pytest.mark.parametrize("example, changes, marker, words", [
    (SPIRALS, {"model.inputs": {"x": [2], "t": [1], "noise": [1]}}, "noise: [1]", "none of x"),
    (SPIRALS, {"model.inputs": {"x": [2], "t": [2]}}, "t: [2]", "one float32"),
    (SPIRALS, {"model.layers": [{"linear": 3}]}, "linear: 3", "predicts the noise"),
    (SPIRALS, {"task": {"diffusion": {"guidance": 2.0}}}, "guidance", "class-conditional"),
    (SPIRALS, {"loss": "mse"}, "loss: mse", "defines its own losses"),
    (SPIRALS, {"task": {"diffusion": {"steps": 10, "sample_steps": 20}}}, "sample_steps", "cannot exceed"),
    (DIGITS, {"model.layers": [{"sinusoidal_embedding": {"dim": 8, "from": "t"}},
                               {"embedding": {"num_embeddings": 10, "embedding_dim": 8, "from": "label"}},
                               "flatten", {"linear": 64}, {"reshape": [1, 8, 8]}]},
     "num_embeddings: 10", "needs 11"),
    (DIGITS, {"metrics": ["r2"]}, "metrics:", "own loss"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, example, changes, marker, words) -> None:
    spec = written(tmp_path, example, changes)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    first = info.value.errors[0]
    assert first.span.line == line_of(spec, marker), (first.message, first.span.line)
    assert words in " ".join(e.message + " " + (e.hint or "") for e in info.value.errors)


def test_the_schedules_are_their_formulas() -> None:
    linear = alphas_cumprod("linear", 1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    assert np.allclose(linear, np.cumprod(1 - betas))
    cosine = alphas_cumprod("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert np.allclose(cosine[:900], [f(t + 1) / f(0) for t in range(900)])
    for abar in (linear, cosine, alphas_cumprod("linear", 20)):
        assert np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1 and abar[-1] < 1e-3


def test_the_sampler_visits_steps_from_the_noisiest_down_to_zero() -> None:
    assert timesteps(10, 10) == list(range(9, -1, -1))
    assert timesteps(1000, 4) == [999, 666, 333, 0]


def test_the_forward_process_has_its_closed_form_statistics() -> None:
    """x_t = sqrt(ā_t) x_0 + sqrt(1 - ā_t) ε: at each step, mean sqrt(ā_t)·x_0 and variance 1 - ā_t."""
    import torch

    from udlc.tasks.diffusion import Diffusion, DiffusionOptions, DiffusionState

    task = Diffusion(DiffusionOptions(steps=10, schedule="linear", label_dropout=0.3))
    abar = alphas_cumprod("linear", 10)
    state = DiffusionState(None, net="model", inputs=["x", "t", "label"], conditional=True, abar=abar,
                           abar_tensor=torch.as_tensor(abar, dtype=torch.float32), null_label=7,
                           eval_generator=None, clip_bounds=(None, None))
    x0 = torch.full((60000, 1), 2.0)
    labels = torch.full((60000, 1), 3)
    inputs, eps = task.noised(state, x0, labels, torch.Generator().manual_seed(0), dropout=0.3)
    t = inputs["t"].reshape(-1).long()
    assert t.min() == 0 and t.max() == 9
    abar = state.abar_tensor[t][:, None]
    assert torch.allclose(inputs["x"], abar.sqrt() * x0 + (1 - abar).sqrt() * eps, atol=1e-6)
    for step in (0, 5, 9):
        xt = inputs["x"][t == step]
        assert xt.mean().item() == pytest.approx(2.0 * math.sqrt(state.abar[step]), abs=0.03)
        assert xt.var().item() == pytest.approx(1 - state.abar[step], rel=0.06)  # ~3 standard errors
    null = (inputs["label"] == 7).float().mean().item()
    assert null == pytest.approx(0.3, abs=0.01) and set(inputs["label"].unique().tolist()) == {3, 7}


def gaussian_denoiser(abar: np.ndarray, mu: float, sd: float):
    """The exact E[ε | x_t] for data N(mu, sd²)."""
    def denoise(x, t):
        a = abar[t]
        return math.sqrt(1 - a) * (x - math.sqrt(a) * mu) / (a * sd ** 2 + 1 - a)
    return denoise


@pytest.mark.parametrize("sampler, visits", [("ddpm", 1000), ("ddim", 1000), ("ddim", 100)])
def test_the_samplers_recover_a_gaussian_from_its_exact_denoiser(sampler: str, visits: int) -> None:
    abar = alphas_cumprod("linear", 1000)
    rng = np.random.default_rng(0)
    out = sample(rng.standard_normal(20000), gaussian_denoiser(abar, 2.0, 0.5), abar, sampler,
                 timesteps(1000, visits), lambda x: rng.standard_normal(x.shape))
    assert out.mean() == pytest.approx(2.0, abs=0.02)
    assert out.std() == pytest.approx(0.5, abs=0.03 if visits == 1000 else 0.05)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_numpy_and_torch_samplers_agree_step_by_step_with_the_same_noise(sampler: str) -> None:
    import torch

    abar = alphas_cumprod("cosine", 50)
    times = timesteps(50, 20)
    draws = np.random.default_rng(1).standard_normal((len(times) + 1, 300, 2)).astype(np.float32)
    denoise = gaussian_denoiser(abar, 0.7, 0.3)

    def run(to, clip):
        seen, step = [], iter(range(1, len(times) + 1))

        def record(x, t):
            seen.append(np.asarray(x, dtype=np.float64).copy())
            return denoise(x, t)
        out = sample(to(draws[0]), record, abar, sampler, times, lambda x: to(draws[next(step)]), clip)
        return np.asarray(out, dtype=np.float64), seen

    a, trace_a = run(lambda v: v.copy(), lambda x0: np.clip(x0, -1.0, 1.0))
    b, trace_b = run(lambda v: torch.from_numpy(v.copy()), lambda x0: x0.clamp(-1.0, 1.0))
    # float32 arithmetic in both: equal to rounding at every step
    assert len(trace_a) == len(times) and all(np.allclose(p, q, atol=1e-4) for p, q in zip(trace_a, trace_b))
    assert np.allclose(a, b, atol=1e-5)


def test_guidance_mixes_the_conditional_and_unconditional_noise() -> None:
    c, u = np.array([1.0, 2.0]), np.array([0.0, 4.0])
    assert np.array_equal(guided(c, u, 1.0), c) and np.array_equal(guided(c, u, 0.0), u)
    assert np.array_equal(guided(c, u, 2.0), np.array([2.0, 0.0]))


def test_the_sinusoidal_embedding_is_its_formula() -> None:
    import torch

    from udlc.layers.modules.generative import SinusoidalEmbeddingModule

    layer = SinusoidalEmbeddingModule(8, 100.0, 2.0)
    v = torch.tensor([[3.0, -1.0]])
    out = layer(v)
    f = [2.0 * 100.0 ** (-i / 4) for i in range(4)]
    expected = []
    for x in (3.0, -1.0):
        expected += [math.sin(x * fi) for fi in f] + [math.cos(x * fi) for fi in f]
    assert out.shape == (1, 16) and torch.allclose(out[0], torch.tensor(expected), atol=1e-6)


TINY = {
    "train.epochs": 2,
    "task": {"diffusion": {"steps": 20, "sample_steps": 4, "ema": 0.9, "guidance": 2.0}},
    "model.blocks.cond_conv.layers": [
        {"conv2d": {"out_channels": "$ch", "kernel_size": 3, "padding": 1, "from": "h"}},
        {"silu": {"id": "features"}},
        {"linear": {"out_features": "$ch", "from": "cond"}},
        {"reshape": ["$ch", 1, 1]},
        {"add": {"from": "features"}},
    ],
}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    from udlc.exporter.onnx import export_run

    root = tmp_path_factory.mktemp("diffusion")
    run = train_here(written(root, DIGITS, TINY), root / "runs")
    export_run(run)
    return run


@pytest.mark.slow
def test_a_run_keeps_an_ema_reports_quality_and_leaves_a_picture(digits_run: Path) -> None:
    from PIL import Image

    from udlc.runs import checkpoint

    state = checkpoint.load(digits_run / "checkpoints" / "last")
    raw, ema = state["models"]["model"], state["models"]["model_ema"]
    assert raw.keys() == ema.keys() and any(not raw[k].equal(ema[k]) for k in raw)
    assert "model_ema" not in state["optimizers"]
    results = json.loads((digits_run / "results.json").read_text())
    assert {"test_loss", "test_class_accuracy", "test_classifier_frechet", "test_reference_accuracy",
            "test_classifier_frechet_val"} <= results.keys()
    assert results["test_reference_accuracy"] > 0.9 and 0 <= results["test_class_accuracy"] <= 1
    picture = Image.open(digits_run / "samples.png")
    assert picture.mode == "L" and picture.size[0] > 10 * 32  # a column per class


@pytest.mark.slow
def test_the_numpy_sampler_around_the_exported_denoiser_matches_torch(digits_run: Path) -> None:
    import torch

    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.sample import SampleFile
    from udlc.trainer.run import build_models

    run = RunFolder.open(digits_run)
    compiled = run.compiled()
    models = build_models(compiled, torch.device("cpu"))
    checkpoint.load_models(models, run.final_checkpoint(compiled.spec))
    ema = models["model_ema"].eval()
    file = SampleFile(digits_run / "model.onnx")
    assert file.classes == 10 and file.latent_shape == (1, 8, 8)
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
    t = np.full((6, 1), 7.0, np.float32)
    label = np.arange(6, dtype=np.int64).reshape(6, 1)
    (onnx_eps,) = file.session.run(None, {"x": x, "t": t, "label": label})
    with torch.no_grad():
        torch_eps = ema(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(label)).numpy()
    assert np.allclose(onnx_eps, torch_eps, atol=1e-4)
    a, b = file.sample(12, seed=5, label=3), file.sample(12, seed=5, label=3)
    assert a.shape == (12, 1, 8, 8) and np.array_equal(a, b)
    low, high = file.value_range
    assert low - 1e-4 <= a.min() and a.max() <= high + 1e-4  # each x_0 is clipped to the data's range
    mixed = file.sample(20, seed=5, steps=2, sampler="ddpm")
    assert mixed.shape == (20, 1, 8, 8) and not np.allclose(mixed[:12], a)


@pytest.mark.slow
def test_udlc_sample_takes_a_class_and_refuses_what_the_model_cannot(digits_run: Path, invoke, tmp_path) -> None:
    result = invoke("sample", digits_run, "--class", "3", "-n", "5", "-o", tmp_path / "threes.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "threes.npy").shape == (5, 1, 8, 8)
    assert "classes 0 to 9" in assert_clean_failure(invoke("sample", digits_run, "--class", "12", "-o",
                                                             tmp_path / "x.npy"))
    assert "1 to 20" in assert_clean_failure(invoke("sample", digits_run, "--steps", "50", "-o", tmp_path / "x.npy"))
    assert ".png" in assert_clean_failure(invoke("sample", digits_run, "-o", tmp_path / "x.jpg"))
