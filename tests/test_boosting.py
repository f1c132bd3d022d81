"""`model: {gradient_boosting: ...}`: a tree run scores what scikit-learn's own HistGradientBoosting scores on the
same split, its model.onnx answers as scikit-learn does from raw rows (and through `udlc predict`, with the class
names), every mistake is refused by `check` at its line, and every command a user runs on a tree spec or run
answers (check, summary, eval, report, train --seeds) or refuses clearly (draw, doctor, lr-find, --quantize).
data.fraction and limit: tests/test_data_subsets.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import udlc
from udlc.errors import SpecErrors, UdlcError
from udlc.tasks import compile_text

SETTINGS = {"max_iter": 15, "learning_rate": 0.2, "max_leaf_nodes": 7, "min_samples_leaf": 5}


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP thread: on a shared machine scikit-learn's threads wait on each other for seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def spec_text(data: str, loss: str = "cross_entropy", extra: str = "", settings: dict | None = None) -> str:
    return (f"udlc: 1\nname: trees\nseed: 3\ndata: {data}\nmodel:\n  gradient_boosting: "
            f"{json.dumps(settings or SETTINGS)}\nloss: {loss}\n{extra}")


def reference(compiled, x_train, y_train):
    """scikit-learn's model with the spec's settings, fitted on the same (standardized) training rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if compiled.spec.loss.type == "cross_entropy" else HistGradientBoostingRegressor
    return cls(**SETTINGS, early_stopping=False, random_state=compiled.spec.init_seed).fit(x_train, y_train)


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory) -> Path:
    """iris as a CSV with named columns and species names for labels."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    path = tmp_path_factory.mktemp("iris") / "iris.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        w.writerows([*map(float, row), bunch.target_names[t]] for row, t in zip(bunch.data, bunch.target))
    return path


@pytest.fixture(scope="module")
def iris_run(iris_csv, tmp_path_factory):
    """A tree run on the CSV, exported: (compiled spec, run folder)."""
    folder = iris_csv.parent
    spec = folder / "trees.yaml"
    spec.write_text(spec_text("{source: iris.csv, target: species}", extra="metrics: [accuracy, f1_macro]\n"
                              "export: {onnx: {}}\n"))
    compiled = udlc.load_spec(spec)
    return compiled, udlc.train(compiled, out=tmp_path_factory.mktemp("runs"), quiet=True)


def test_metrics_are_scikit_learns_on_the_same_split(iris_run):
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    compiled, run = iris_run
    data = compiled.task.load_data(compiled)
    model = reference(compiled, data.x_train, data.y_train)
    proba = model.predict_proba(data.x_test)
    results = json.loads((run / "results.json").read_text())
    assert results["test_accuracy"] == pytest.approx(accuracy_score(data.y_test, proba.argmax(1)))
    assert results["test_f1_macro"] == pytest.approx(f1_score(data.y_test, proba.argmax(1), average="macro"))
    assert results["test_loss"] == pytest.approx(log_loss(data.y_test, proba, labels=[0, 1, 2]), rel=1e-5)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "done" and info["iterations"] == SETTINGS["max_iter"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == SETTINGS["max_iter"] and {"train_loss", "val_loss", "val_accuracy"} <= set(rows[-1])


def test_onnx_answers_as_scikit_learn_from_raw_rows(iris_run):
    import onnx
    import onnxruntime as ort

    compiled, run = iris_run
    data = compiled.task.load_data(compiled)
    model = reference(compiled, data.x_train, data.y_train)
    rng = np.random.default_rng(5)
    raw = (rng.standard_normal((40, 4)) * data.normalization.scale + data.normalization.shift).astype(np.float32)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, proba = session.run(["logits", "probabilities"], {"x": raw})
    expected = model.predict_proba(data.normalization.apply_normalization(raw))
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), proba, atol=1e-6)
    proto = onnx.load(str(run / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["served"] == "classes" and json.loads(meta["classes"]) == ["setosa", "versicolor", "virginica"]
    assert json.loads(meta["feature_columns"]) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 18


def test_predict_gives_scikit_learns_probabilities_and_the_class_names(iris_run, iris_csv, tmp_path):
    from udlc.runtime.readers import open_reader

    compiled, run = iris_run
    rows = list(csv.reader(iris_csv.open()))[1:8]
    given = tmp_path / "rows.csv"  # the columns in another order, the target left out
    with given.open("w", newline="") as f:
        csv.writer(f).writerows([["petal_width", "petal_length", "sepal_width", "sepal_length"]]
                                + [r[3::-1] for r in rows])
    answers = list(csv.DictReader(open_reader(run / "model.onnx", "predict").answer_file(given).splitlines()))
    data = compiled.task.load_data(compiled)
    model = reference(compiled, data.x_train, data.y_train)
    expected = model.predict_proba(data.normalization.apply_normalization(np.array([r[:4] for r in rows], float)))
    got = np.array([[float(a[f"p_{c}"]) for c in data.classes] for a in answers])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert [a["prediction"] for a in answers] == [data.classes[i] for i in expected.argmax(1)]


def test_serve_answers_as_predict(iris_run, iris_csv):
    from starlette.testclient import TestClient

    from udlc.runtime.http.app import build_app
    from udlc.runtime.http.limits import Limits

    compiled, run = iris_run
    header, *rows = list(csv.reader(iris_csv.open()))[:6]
    objects = [dict(zip(header[:4], map(float, r[:4]))) for r in rows]
    expected = list(csv.DictReader(open_reader_answers(run, iris_csv).splitlines()))[:5]
    with TestClient(build_app([run / "model.onnx"], Limits(body_bytes=64 * 1024, rows=100, pixels=400, seconds=10),
                              max_batch=1)) as client:
        answers = client.post("/v1/predict/trees", json={"rows": objects}).json()["answers"]
    for got, want in zip(answers, expected, strict=True):
        assert got["prediction"] == want["prediction"]
        assert all(abs(p - float(want[f"p_{name}"])) <= 5e-7 for name, p in got["probabilities"].items())


def open_reader_answers(run: Path, rows: Path) -> str:
    from udlc.runtime.readers import open_reader

    return open_reader(run / "model.onnx", "predict").answer_file(rows)


def test_regression_scores_in_the_targets_units(tmp_path):
    from sklearn.metrics import mean_absolute_error, r2_score

    spec = tmp_path / "reg.yaml"
    spec.write_text(spec_text("{source: diabetes, fraction: 0.5}", loss="mse", extra="metrics: [mae, r2]\n"))
    compiled = udlc.load_spec(spec)
    run = udlc.train(compiled, out=tmp_path / "runs", quiet=True)
    udlc.export(run)
    data = compiled.task.load_data(compiled)
    model = reference(compiled, data.x_train, data.y_train.reshape(-1))
    raw = data.target_normalization.invert
    predicted, y = raw(model.predict(data.x_test).reshape(-1, 1)), raw(data.y_test)
    results = json.loads((run / "results.json").read_text())
    assert results["test_mae"] == pytest.approx(mean_absolute_error(y, predicted), rel=1e-4)
    assert results["test_r2"] == pytest.approx(r2_score(y, predicted), rel=1e-4)
    from udlc.trainer.evaluate import evaluate_run

    again = evaluate_run(run)  # `udlc eval`: the ONNX checkpoint's standardized values, back in the targets' units
    assert again["test_mae"] == pytest.approx(results["test_mae"], rel=1e-5)
    assert again["test_r2"] == pytest.approx(results["test_r2"], rel=1e-5)
    import onnxruntime as ort

    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    x_raw = data.normalization.invert(data.x_test)
    np.testing.assert_allclose(session.run(["prediction"], {"x": x_raw})[0], predicted, rtol=1e-4, atol=1e-3)


def test_early_stopping_watches_the_validation_split(iris_csv, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    settings = {**SETTINGS, "max_iter": 200, "learning_rate": 0.5, "early_stopping": True, "n_iter_no_change": 3}
    spec = iris_csv.parent / "stopping.yaml"
    spec.write_text(spec_text("{source: iris.csv, target: species}", settings=settings))
    compiled = udlc.load_spec(spec)
    run = udlc.train(compiled, out=tmp_path, quiet=True)
    data = compiled.task.load_data(compiled)
    model = HistGradientBoostingClassifier(**settings, random_state=compiled.spec.init_seed).fit(
        data.x_train, data.y_train, X_val=data.x_val, y_val=data.y_val)
    assert json.loads((run / "run.json").read_text())["iterations"] == model.n_iter_ < 200



# ---- check: each mistake at its line --------------------------------------------------------------------

CHECKS = [  # (spec text, path, line, words in the message)
    (spec_text("{source: wine, fraction: 0}"), "data.fraction", 4, "must be > 0"),
    (spec_text("{source: wine, fraction: 1.5}"), "data.fraction", 4, "must be <= 1"),
    (spec_text("{source: moons, samples: 100, limit: 90}"), "data.limit", 4, "more than the training split's 80"),
    (spec_text("{source: stdlib, limit: 9}"), "data.limit", 4, "split its own way"),
    (spec_text("{source: wine, limit: 143}"), "data.limit", 4, "more than the training split's 142 samples"),
    (spec_text("{source: wine, fraction: 0.5, limit: 9}"), "data.limit", 4, "not both"),
    (spec_text("{source: digits_2x}"), "data.source", 4, "rows of numeric features"),
    (spec_text("{source: sine_mixture}", loss="mse"), "data.source", 4, "series"),
    (spec_text("{source: karate}"), "data.source", 4, "graphs"),
    (spec_text("{source: wine}", loss="bce"), "loss", 7, "not bce"),
    (spec_text("{source: wine}", loss="mse"), "loss", 7, "text labels"),
    (spec_text("{source: diabetes}"), "loss", 7, "regression set"),
    (spec_text("{source: wine}", loss="{type: cross_entropy, label_smoothing: 0.1}"), "loss.label_smoothing", 7,
     "takes none"),
    (spec_text("{source: wine, augment: [{noise: 0.1}]}"), "data.augment", 4, "not used by gradient_boosting"),
    (spec_text("{source: wine}", extra="optimizer: {type: adam, lr: 0.01}\n"), "optimizer", 8, "gradient steps"),
    (spec_text("{source: wine}", extra="schedule: {type: cosine}\n"), "schedule", 8, "gradient steps"),
    (spec_text("{source: wine}", extra="train: {seed: 1, epochs: 3}\n"), "train.epochs", 8, "max_iter"),
    (spec_text("{source: wine, split: [0.9, 0.0, 0.1]}", settings={"early_stopping": True}),
     "model.gradient_boosting.early_stopping", 6, "validation split"),
    (spec_text("{source: wine}", settings={"max_iter": 0}), "model.gradient_boosting.max_iter", 6, "must be > 0"),
    (spec_text("{source: wine}", extra="task: autoencoder\n"), "model", 6, "task supervised"),
    (spec_text("{source: wine}").replace("  gradient_boosting:", "  layers: [{linear: 3}]\n  gradient_boosting:"),
     "model.layers", 6, "unknown key 'layers'"),
]


@pytest.mark.parametrize("text, path, line, words", CHECKS, ids=[c[1] + ":" + c[3] for c in CHECKS])
def test_check_refuses_at_the_line(text, path, line, words):
    with pytest.raises(SpecErrors) as e:
        compile_text(text, "spec.yaml")
    (error,) = [err for err in e.value.errors if err.path == path]
    assert words in error.headline() and error.span is not None and error.span.line == line, error.headline()
    assert error.hint or "—" in error.message or "must be" in error.message  # the fix, in the hint or inline



def test_check_accepts_trees_and_stays_torch_free():
    import subprocess
    import sys

    code = ("import sys; from udlc.tasks import compile_text; compile_text(" + repr(spec_text(
        "{source: wine, fraction: 0.5}", extra="train: {seed: 4}\nexport: {onnx: {}}\n")) + "); "
            "bad = [m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- every command on a tree spec and its run: exit codes and messages, never a traceback ------------------


def cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from udlc.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def test_check_and_summary_say_what_the_model_is(iris_run):
    compiled, _ = iris_run
    spec = compiled.base_dir / "trees.yaml"
    code, out = cli("check", spec)
    assert code == 0 and "(trees: gradient-boosted trees (classes, log_loss): max_iter 15, learning_rate 0.2, " \
                          "max_leaf_nodes 7, min_samples_leaf 5)" in out and "layers" not in out, out
    code, out = cli("check", "--format", "json", spec)
    (entry,) = json.loads(out)
    assert code == 0 and entry["model"] == "gradient_boosting" and entry["networks"] == {}
    assert entry["gradient_boosting"] == compiled.spec.model.gradient_boosting.model_dump() | SETTINGS
    code, out = cli("summary", spec)
    assert code == 0 and "gradient-boosted trees" in out and "max_bins 255" in out and "early_stopping false" in out
    assert "params" not in out and "FLOPs" not in out, out  # no empty table of layers
    code, out = cli("check", "--format", "json", Path(__file__).parents[1] / "examples" / "cancer-mlp.yaml")
    assert code == 0 and json.loads(out)[0]["model"] == "network"


def test_commands_without_a_network_refuse_clearly(iris_run, tmp_path):
    compiled, run = iris_run
    spec = compiled.base_dir / "trees.yaml"
    for args, words in ((("draw", spec, "-o", tmp_path / "t.svg"), "no network to draw"),
                        (("draw", run, "-o", tmp_path / "t.svg"), "no network to draw"),
                        (("doctor", spec), "no network to step through"),
                        (("lr-find", spec), "no network to step through")):
        code, out = cli(*args)
        assert code == 1 and out.startswith("error: ") and words in out, (args, out)
    assert not (tmp_path / "t.svg").exists()
    with pytest.raises(UdlcError, match="no network to build"):
        udlc.build(compiled)


def test_eval_scores_the_fitted_trees_as_training_did(iris_run):
    from udlc.trainer.evaluate import evaluate_run

    _, run = iris_run
    results = json.loads((run / "results.json").read_text())
    metrics = evaluate_run(run)
    assert set(metrics) == {"test_loss", "test_accuracy", "test_f1_macro"}
    for key, value in metrics.items():
        assert value == pytest.approx(results[key], rel=1e-5, abs=1e-6), key  # float32 ONNX vs scikit-learn's
    code, out = cli("eval", run)
    assert code == 0 and f"test_accuracy {results['test_accuracy']:.4f}" in out, out


def test_report_shows_the_trees_curves_and_scikit_learns_confusion_matrix(iris_run):
    from sklearn.metrics import confusion_matrix, f1_score

    from udlc.guide.report import build_report

    compiled, run = iris_run
    report = build_report(run)
    data = compiled.task.load_data(compiled)
    predicted = reference(compiled, data.x_train, data.y_train).predict(data.x_test)
    c = report.classification
    assert c is not None, report.classification_note
    assert c.matrix == confusion_matrix(data.y_test, predicted, labels=[0, 1, 2]).tolist()
    assert c.f1 == pytest.approx(f1_score(data.y_test, predicted, average=None).tolist())
    assert c.classes == ["setosa", "versicolor", "virginica"] and c.checkpoint == "trees"
    assert report.curves_svg and report.drawing_svg is None and report.networks == []
    assert "gradient-boosted trees" in report.networks_note and f"{SETTINGS['max_iter']} boosting" in report.networks_note
    code, out = cli("report", run)
    page = (run / "report.html").read_text()
    assert code == 0 and "predicted with the trees checkpoint" in page and "No network: gradient-boosted" in page
    assert "test_f1_macro" in page and page.count("<svg") == 1  # the curves; no drawing of layers


def test_quantize_is_refused_without_a_traceback(iris_run):
    _, run = iris_run
    code, out = cli("export", run, "--quantize", "int8")
    assert code == 1 and "have none" in out and "error: " in out, out
    assert not (run / "model.int8.onnx").exists()


def test_train_seeds_runs_each_seed(iris_csv, tmp_path):
    """`udlc train --seeds 3`: three fits, each seeding the trees' random state (here max_features < 1, so they
    differ), and their mean ± std."""
    spec = iris_csv.parent / "seeds.yaml"
    spec.write_text(spec_text("{source: iris.csv, target: species}", settings={**SETTINGS, "max_features": 0.5}))
    code, out = cli("train", spec, "--out", tmp_path, "--seeds", "3", "-q")
    assert code == 0 and "over 3 seeds (mean ± std)" in out, out
    runs = sorted((tmp_path / "trees").iterdir())
    assert len(runs) == 3
    assert [json.loads((r / "run.json").read_text())["status"] for r in runs] == ["done"] * 3
    losses = {json.loads((r / "results.json").read_text())["test_loss"] for r in runs}
    assert len(losses) == 3  # three random states, three ensembles


def test_seeds_say_when_the_trees_draw_nothing_at_random(iris_csv, tmp_path):
    """With every feature considered at every split, scikit-learn's fit is the same for any seed: the summary says
    so rather than show a spread of zero as if it were measured."""
    from udlc.guide.seeds import seed_summary

    spec = iris_csv.parent / "all-features.yaml"
    spec.write_text(spec_text("{source: iris.csv, target: species}", settings=SETTINGS))
    code, out = cli("train", spec, "--out", tmp_path, "--seeds", "2", "-q")
    assert code == 0, out
    lines = seed_summary(sorted((tmp_path / "trees").iterdir()))
    assert any("draws nothing at random" in line for line in lines), lines
