"""task: vae — the loss terms against closed forms and torch.distributions, what check refuses at its line,
a tiny run (logged values, resume, samples.png, two exported files) and `udlc sample` through onnxruntime."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from tests.conftest import edited_spec, read_csv, refused_at, train_here
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "vae-digits.yaml"


def small(tmp_path: Path, changes: dict | None = None, name: str = "vae.yaml") -> Path:
    return edited_spec(tmp_path / name, EXAMPLE, {"train.epochs": 3, **(changes or {})})


def test_the_example_checks() -> None:
    assert compile_spec(EXAMPLE).task.name == "vae"


# an encoder of 32 values, which digits (64 values) do not fill
ENCODER_32 = {"input": [32], "layers": [{"linear": {"out_features": 4, "id": "mu"}},
                                        {"linear": {"out_features": 4, "id": "logvar", "from": "x"}}],
              "outputs": ["mu", "logvar"]}


@pytest.mark.parametrize("changes, marker, words", [
    ({"models.critic": {"input": [2], "layers": [{"linear": 1}]}}, "critic:", "no network 'critic'"),
    ({"models.encoder.outputs": ["mu"]}, "outputs:", "must be mu and logvar"),
    ({"models.decoder.input": [4]}, "input: [4]", "reads the latent"),
    ({"models.decoder.layers": [{"linear": 64}]}, "linear: 64", "gives back the encoder's input"),
    ({"data.normalize": "standard"}, "normalize: standard", "minmax"),
    ({"loss": "cross_entropy"}, "loss: cross_entropy", "bce"),
    ({"metrics": ["r2"]}, "metrics:", "own values"),
    ({"data.augment": [{"random_crop": 1}]}, "augment:", "not augmented"),
    ({"models.encoder": ENCODER_32, "models.decoder": {"input": [4], "layers": [{"linear": 32}]}},
     "input: [32]", "64"),
    ({"train.early_stopping": {"monitor": "val_acuracy", "patience": 2}}, "monitor: val_acuracy", "val_elbo"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, changes, marker, words) -> None:
    refused_at(small(tmp_path, changes), marker, words)


def test_one_network_is_refused_with_the_two_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"udlc": 1, "name": "x", "task": "vae", "data": {"source": "digits"},
                                    "model": {"input": [64], "layers": [{"linear": 64}]}, "loss": "mse"}))
    with pytest.raises(SpecErrors) as info:
        compile_spec(path)
    assert "encoder, decoder" in info.value.errors[0].message


def terms_of(loss: str, mu, logvar, out, x):
    """VAE.terms on fixed encoder and decoder outputs."""
    import torch

    from udlc.tasks.vae import VAE, VAEOptions, VAEState

    task = VAE(VAEOptions())
    state = VAEState(None, input="x", latent_shape=(3,), eval_generator=None, mu_first=True, bernoulli=loss == "bce")
    models = {"encoder": lambda x_: (mu, logvar), "decoder": lambda z: out}
    s = SimpleNamespace(models=models, autocast=nullcontext, run_state=state)
    return task.terms(s, x, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_the_terms_are_the_gaussian_kl_and_the_decoders_negative_log_likelihood(loss: str) -> None:
    import torch
    from torch.distributions import Bernoulli, Normal, kl_divergence

    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    out, x = torch.randn(5, 1, 2, 2, generator=g), torch.rand(5, 1, 2, 2, generator=g)
    nll, kl, _, z = terms_of(loss, mu, logvar, out, x)
    q, prior = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(kl, kl_divergence(q, prior).sum(1), atol=1e-5)
    decoder = Bernoulli(logits=out, validate_args=False) if loss == "bce" else Normal(out, 1.0)
    assert torch.allclose(nll, -decoder.log_prob(x).flatten(1).sum(1), atol=1e-5)
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z, mu + (0.5 * logvar).exp() * noise)


def test_beta_rises_linearly_over_the_warmup_then_stays() -> None:
    from udlc.tasks.vae import VAE, VAEOptions

    task = VAE(VAEOptions(beta=0.5, kl_warmup_steps=100))
    assert [task.beta(s) for s in (0, 50, 100, 400)] == [0.0, 0.25, 0.5, 0.5]
    assert VAE(VAEOptions()).beta(0) == 1.0


def test_the_reparameterize_layer_draws_in_training_and_gives_mu_in_evaluation() -> None:
    import torch

    from udlc.layers.modules.generative import ReparameterizeModule

    layer = ReparameterizeModule()
    mu, logvar = torch.full((20000, 2), 3.0), torch.log(torch.full((20000, 2), 4.0))
    torch.manual_seed(0)
    z = layer(mu, logvar)
    assert abs(z.mean().item() - 3.0) < 0.05 and abs(z.std().item() - 2.0) < 0.05
    assert torch.equal(layer.eval()(mu, logvar), mu)


def test_a_nan_names_the_network_it_arose_in() -> None:
    import torch

    from udlc.compiler.lower import lower
    from udlc.trainer.debug import nonfinite_report

    compiled = compile_spec(EXAMPLE)
    models = {n: lower(g) for n, g in compiled.graphs.items()}
    with torch.no_grad():
        next(models["decoder"].parameters()).fill_(float("nan"))
    s = SimpleNamespace(module=models.__getitem__, graphs=compiled.graphs, written_epoch=0)
    x, z = torch.rand(4, 1, 8, 8), torch.randn(4, 8)
    report = str(nonfinite_report(s, {"encoder": (x, None), "decoder": (z, x)}, torch.tensor(float("nan")), 1, 7))
    assert "network 'decoder'" in report and "non-finite" in report and "vae-digits.yaml" in report


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    from udlc.exporter.onnx import export_run

    root = tmp_path_factory.mktemp("vae")
    # early stopping on the ELBO, which the task maximizes (patience beyond the run: it picks the best epoch)
    run = train_here(small(root, {"train.early_stopping": {"monitor": "val_elbo", "patience": 10}}), root / "runs")
    export_run(run)
    return run


@pytest.mark.slow
def test_a_run_logs_its_terms_and_leaves_a_picture_of_samples(vae_run: Path) -> None:
    from PIL import Image

    rows = read_csv(vae_run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for r in rows:
        assert float(r["val_elbo"]) == pytest.approx(-(float(r["val_reconstruction"]) + float(r["val_kl"])))
        assert float(r["val_kl"]) > 0 and float(r["train_reconstruction"]) > 0
    # the reconstruction improves from the first epoch to the last
    assert float(rows[-1]["val_reconstruction"]) < float(rows[0]["val_reconstruction"])
    results = json.loads((vae_run / "results.json").read_text())
    assert results["test_elbo"] < 0
    best = max(rows, key=lambda r: float(r["val_elbo"]))  # the highest ELBO is the best epoch
    assert json.loads((vae_run / "run.json").read_text())["best_epoch"] == int(best["epoch"])
    picture = Image.open(vae_run / "samples.png")
    assert picture.size[0] >= 8 * 32 and picture.mode == "L"


@pytest.mark.slow
def test_the_exported_decoder_and_encoder_answer_as_the_networks_do(vae_run: Path) -> None:
    import onnxruntime as ort
    import torch
    from sklearn.datasets import load_digits

    from udlc.compiler.lower import lower
    from udlc.runs import RunFolder, checkpoint

    run = RunFolder.open(vae_run)
    compiled = run.compiled()
    nets = {n: lower(g).eval() for n, g in compiled.graphs.items()}
    checkpoint.load_models(nets, run.final_checkpoint(compiled.spec))
    x = load_digits().data.astype(np.float32).reshape(-1, 1, 8, 8)[:50]
    z = np.random.default_rng(0).standard_normal((50, 8), dtype=np.float32)
    decoder = ort.InferenceSession(str(vae_run / "model.onnx"))
    encoder = ort.InferenceSession(str(vae_run / "encoder.onnx"))
    (samples,) = decoder.run(None, {decoder.get_inputs()[0].name: z})
    (latent,) = encoder.run(None, {encoder.get_inputs()[0].name: x})
    with torch.no_grad():
        expected = torch.sigmoid(nets["decoder"](torch.from_numpy(z))).numpy() * 16.0  # minmax of 0..16
        mu, _ = nets["encoder"](torch.from_numpy(x / 16.0))
    assert samples.shape == (50, 1, 8, 8) and np.allclose(samples, expected, atol=1e-4)
    assert np.allclose(latent, mu.numpy(), atol=1e-4)
    meta = decoder.get_modelmeta().custom_metadata_map
    assert meta["served"] == "samples" and meta["task"] == "vae" and json.loads(meta["latent_shape"]) == [8]
    assert encoder.get_modelmeta().custom_metadata_map["served"] == "latents"
    assert json.loads(meta["value_range"]) == [0.0, 16.0]


@pytest.mark.slow
def test_udlc_sample_draws_from_the_prior_through_onnxruntime(vae_run: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from udlc.runtime.sample import SampleFile, write_samples

    sampler = SampleFile(vae_run / "model.onnx")
    a, b, c = sampler.sample(70, seed=3), sampler.sample(70, seed=3), sampler.sample(70, seed=4)
    assert a.shape == (70, 1, 8, 8) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 16.0  # Bernoulli means in the pixels' range
    session = ort.InferenceSession(str(vae_run / "model.onnx"))
    z = np.random.default_rng(3).standard_normal((70, 8), dtype=np.float32)
    assert np.array_equal(a, session.run(None, {session.get_inputs()[0].name: z})[0])
    assert np.array_equal(np.load(write_samples(a, tmp_path / "s.npy")), a)
    assert write_samples(a, tmp_path / "s.png", sampler.value_range).stat().st_size > 0


def test_sample_refuses_a_model_that_samples_nothing(invoke, digits_run, tmp_path: Path) -> None:
    from tests.conftest import assert_clean_failure

    err = assert_clean_failure(invoke("sample", digits_run.run / "model.onnx", "-o", tmp_path / "s.png"))
    assert "serves class probabilities" in err and "`udlc predict`, not `udlc sample`" in err
