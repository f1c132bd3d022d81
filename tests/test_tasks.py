"""Tasks: the registry, what each task's check refuses (at its line, without torch), and the auxiliary task
trained, resumed and exported through the one generic loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (DIGITS_MLP, assert_clean_failure, edited_spec, line_of, read_csv, refused_at, train_here,
                            write_spec)
from udlc.errors import SpecErrors
from udlc.tasks import TASKS, compile_spec

ROOT = Path(__file__).resolve().parent.parent

AUX_MODEL = {
    "input": [64],
    "layers": [{"linear": {"out_features": 32, "id": "hidden"}}, "relu", {"linear": {"out_features": 10, "id": "main"}},
               {"linear": {"out_features": 10, "from": "hidden", "id": "aux"}}],
    "outputs": ["main", "aux"],
}


def errors_of(path: Path) -> list:
    with pytest.raises(SpecErrors) as info:
        compile_spec(path)
    return info.value.errors


def one_error(path: Path):
    (error,) = errors_of(path)
    return error


def test_every_task_is_registered_with_its_own_name_and_a_description() -> None:
    assert {"supervised", "auxiliary"} <= set(TASKS)
    for name, task in TASKS.items():
        assert task.name == name and task.config.model_fields["type"].default == name
        assert task.description


def test_the_default_task_is_supervised(tmp_path: Path) -> None:
    compiled = compile_spec(write_spec(tmp_path / "s.yaml", DIGITS_MLP))
    assert compiled.task.name == "supervised" and list(compiled.graphs) == ["model"]


@pytest.mark.parametrize("form", ["auxiliary", {"type": "auxiliary", "loss_weights": {"aux": 0.5}},
                                  {"auxiliary": {"loss_weights": {"aux": 0.5}}}])
def test_a_task_is_written_as_a_name_a_mapping_or_a_one_key_mapping(tmp_path: Path, form) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "task": form, "model": AUX_MODEL})
    task = compile_spec(spec).task
    assert task.name == "auxiliary"
    assert task.weights(["main", "aux"]) == ([1.0, 1.0] if form == "auxiliary" else [1.0, 0.5])


def test_an_unknown_task_is_named_with_a_suggestion(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "task": "supervize"})
    err = one_error(spec)
    assert "unknown task 'supervize'" in err.message and "did you mean 'supervised'?" in err.hint
    assert err.span.line == line_of(spec, "task:")


def test_supervised_refuses_several_outputs_at_the_outputs_line(tmp_path: Path) -> None:
    """`train` used to die with an internal error on `outputs: [a, b]`; `check` refuses it now."""
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "model": AUX_MODEL})
    err = one_error(spec)
    assert "trains one output, but `outputs` names 2" in err.message and "auxiliary" in err.hint
    assert err.span.line == line_of(spec, "outputs:")


def test_supervised_refuses_several_inputs_and_several_networks(tmp_path: Path) -> None:
    two_inputs = {"inputs": {"a": [32], "b": [32]}, "layers": [{"concat": {"from": ["a", "b"]}}, {"linear": 10}]}
    err = one_error(write_spec(tmp_path / "a.yaml", {**DIGITS_MLP, "model": two_inputs}))
    assert "feeds the data to one input, but this model has 2: a, b" in err.message
    doc = {k: v for k, v in DIGITS_MLP.items() if k != "model"}
    spec = write_spec(tmp_path / "b.yaml", {**doc, "models": {"g": DIGITS_MLP["model"], "d": DIGITS_MLP["model"]}})
    err = one_error(spec)
    assert "trains one network, but `models` names 2: g, d" in err.message
    assert err.span.line == line_of(spec, "models:")


def test_model_and_models_are_one_or_the_other(tmp_path: Path) -> None:
    both = write_spec(tmp_path / "a.yaml", {**DIGITS_MLP, "models": {"model": DIGITS_MLP["model"]}})
    assert "either `model: {...}` (one network) or `models:" in one_error(both).message
    doc = {k: v for k, v in DIGITS_MLP.items() if k != "model"}
    compiled = compile_spec(write_spec(tmp_path / "b.yaml", {**doc, "models": {"net": DIGITS_MLP["model"]}}))
    assert list(compiled.graphs) == ["net"] and compiled.task.name == "supervised"


def test_optimizers_name_networks(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "optimizers": {"modle": {"type": "sgd", "lr": 0.1}}})
    err = one_error(spec)
    assert "no network named 'modle'" in err.message and "did you mean 'model'?" in err.hint
    ok = compile_spec(write_spec(tmp_path / "t.yaml", {**DIGITS_MLP, "optimizers": {"model": "sgd"}}))
    assert ok.spec.optimizer_of("model").type == "sgd"


def test_auxiliary_loss_weights_name_outputs(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "model": AUX_MODEL,
                                            "task": {"auxiliary": {"loss_weights": {"axu": 0.3}}}})
    err = one_error(spec)
    assert "'axu' is not an output of the model" in err.message and "did you mean 'aux'?" in err.hint
    assert err.span.line == line_of(spec, "axu:")
    single = write_spec(tmp_path / "t.yaml", {**DIGITS_MLP, "task": "auxiliary"})
    assert "trains two or more outputs" in one_error(single).message


@pytest.mark.parametrize("change,words,at", [
    ({"model": {"input": [3, 224, 224], "layers": ["flatten", {"linear": 10}]}},
     "digits gives samples of 64 values, but model.input [3, 224, 224] holds 150528", "input:"),
    ({"model": {"input": [64], "layers": [{"linear": 7}]}}, "10 classes", "linear: 7"),
])
def test_check_refuses_what_training_would_refuse_about_the_data(tmp_path: Path, change, words, at) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, **change})
    err = one_error(spec)
    assert words in err.message
    assert err.span is not None and err.span.line == line_of(spec, at)


def test_check_refuses_mse_on_text_labels_reading_only_the_csv_head(tmp_path: Path, invoke) -> None:
    rows = ["a,b,label"] + [f"{i},{i * 2},{'cat' if i % 2 else 'dog'}" for i in range(20)]
    (tmp_path / "pets.csv").write_text("\n".join(rows) + "\n")
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "data": {"source": "pets.csv"}, "loss": "mse",
                                            "metrics": [], "model": {"input": [2], "layers": [{"linear": 1}]}})
    err = assert_clean_failure(invoke("check", spec), code=2)
    assert f"s.yaml:{line_of(spec, 'loss:')}:" in err and "label" in err


def test_auxiliary_logs_the_weighted_total_and_each_outputs_loss(tmp_path: Path, one_torch_thread) -> None:
    """(Its export and resume are the contract test's, tests/test_task_contract.py.)"""
    spec = write_spec(tmp_path / "aux.yaml", {**DIGITS_MLP, "model": AUX_MODEL, "export": {},
                                              "task": {"auxiliary": {"loss_weights": {"aux": 0.3}}}},
                      train={"epochs": 2, "batch_size": 128})
    run = train_here(spec, tmp_path / "runs")
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:  # the weighted total is what the logs call the loss
        total = float(row["val_main_loss"]) + 0.3 * float(row["val_aux_loss"])
        assert float(row["val_loss"]) == pytest.approx(total, rel=1e-5)
    results = json.loads((run / "results.json").read_text())
    assert {"test_loss", "test_main_loss", "test_aux_loss", "test_accuracy"} <= set(results)


def test_run_json_tells_the_story_of_the_run(digits_run) -> None:
    info = json.loads((digits_run.run / "run.json").read_text())
    assert info["status"] == "done" and info["seed"] == 0 and info["device"] == "cpu"
    assert set(info["versions"]) == {"udlc", "python", "torch"}
    assert info["started"] <= info["ended"] and info["seconds"] > 0
    best = min(read_csv(digits_run.run / "metrics.csv"), key=lambda r: float(r["val_loss"]))
    assert info["best_epoch"] == int(best["epoch"])


def test_resume_with_more_epochs_continues_exactly(tmp_path: Path, one_torch_thread) -> None:
    """A finished 2-epoch run extended to 3 ends bitwise where a straight 3-epoch run ends."""
    from safetensors.torch import load_file

    from udlc.trainer.run import resume_run

    doc = {**DIGITS_MLP, "export": {}}
    straight = train_here(write_spec(tmp_path / "a.yaml", doc, train={"epochs": 3, "batch_size": 128}),
                          tmp_path / "a")
    short = train_here(write_spec(tmp_path / "b.yaml", doc, train={"epochs": 2, "batch_size": 128}), tmp_path / "b")
    resume_run(short, ["train.epochs=3"], quiet=True)
    assert [int(r["epoch"]) for r in read_csv(short / "metrics.csv")] == [1, 2, 3]
    assert "epochs: 3" in (short / "spec.yaml").read_text()
    a = load_file(str(straight / "checkpoints" / "last.safetensors"))
    b = load_file(str(short / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_resume_refuses_other_overrides(invoke, digits_run) -> None:
    err = assert_clean_failure(invoke("train", "--resume", digits_run.run, "--set", "optimizer.lr=0.5"))
    assert "only --set train.epochs" in err


def test_init_from_loads_matching_tensors_and_names_the_rest(tmp_path: Path, digits_run, one_torch_thread) -> None:
    import torch

    from udlc.compiler.lower import lower
    from udlc.runs import RunFolder, checkpoint
    from udlc.trainer.starting import init_weights

    wider = {"input": [64], "layers": [{"linear": 32}, "relu", {"linear": 16}, "relu", {"linear": 10}]}
    compiled = compile_spec(write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "model": wider}))
    model = lower(compiled.graph, seed=0)
    note = init_weights({"model": model}, RunFolder(digits_run.run))
    source = RunFolder(digits_run.run)
    theirs = checkpoint.load(source.final_checkpoint(source.compiled().spec))["models"]["model"]
    assert torch.equal(model.state_dict()["linear.weight"], theirs["linear.weight"])
    assert "loaded 2 of 6 tensors" in note and "linear_1.weight (10, 32)→(16, 32)" in note


def test_init_from_with_nothing_in_common_is_an_error(tmp_path: Path, digits_run, invoke) -> None:
    conv = {"input": [1, 8, 8], "layers": [{"conv2d": {"out_channels": 4, "kernel_size": 3, "id": "c"}},
                                           "global_avgpool", {"linear": {"out_features": 10, "id": "head"}}]}
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "model": conv})
    err = assert_clean_failure(invoke("train", spec, "--init-from", digits_run.run, "--out", tmp_path / "runs"))
    assert "none of the file's tensor names is a tensor of network model" in err
    assert not (tmp_path / "runs").exists()  # a run that cannot start leaves no folder behind


def test_check_only_udlc_skips_yaml_that_is_not_a_spec(tmp_path: Path, invoke) -> None:
    (tmp_path / "workflow.yml").write_text("on: push\njobs: {}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("udlc: 1\nname: x\n")
    result = invoke("check", "--only-udlc", "--format", "json", tmp_path / "workflow.yml", bad)
    assert result.returncode == 2
    assert [r["file"] for r in json.loads(result.stdout)] == [str(bad)]
    ok = invoke("check", "--only-udlc", tmp_path / "workflow.yml", ROOT / "examples" / "digits-mlp.yaml")
    assert ok.returncode == 0 and ok.stdout.count("OK ") == 1


def test_the_demo_names_a_udlc_command_that_exists() -> None:
    import shutil

    from udlc.demo import udlc_command

    command = udlc_command()
    assert shutil.which(command) or Path(command).is_file()


def test_a_csv_with_text_labels_has_its_classes_counted_by_check_and_train_alike(tmp_path: Path, invoke) -> None:
    """`check` reads a small CSV whole, so it counts the classes (and the one-hot widths) as `train` does: both
    refuse `linear: 5` for 3 classes at that layer, exit 2."""
    rows = ["a,b,label"] + [f"{i},{i % 7},{'abc'[i % 3]}" for i in range(30)]
    (tmp_path / "three.csv").write_text("\n".join(rows) + "\n")
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "data": {"source": "three.csv"}, "export": {},
                                            "model": {"input": [2], "layers": [{"linear": 5}]}})
    for command in (("check", spec), ("train", spec, "--out", tmp_path / "runs")):
        err = assert_clean_failure(invoke(*command), code=2)
        assert f"s.yaml:{line_of(spec, 'linear: 5')}:" in err and "3 classes" in err, err


def test_regression_on_raw_prices_learns_and_reports_in_price_units(tmp_path: Path, one_torch_thread) -> None:
    """A 300-row house-price CSV trained with mse at lr 1e-2: with raw targets this ended at train_loss 3e10
    and val_r2 -4.1; standardized targets fit, and every reported number is in dollars again."""
    rng = np.random.default_rng(0)
    sqft, rooms, age = rng.uniform(500, 4000, 300), rng.integers(1, 7, 300), rng.uniform(0, 80, 300)
    price = 150 * sqft + 10_000 * rooms - 1_000 * age + rng.normal(0, 20_000, 300)
    lines = ["sqft,rooms,age,price"] + [f"{a:.0f},{b},{c:.1f},{d:.0f}" for a, b, c, d in zip(sqft, rooms, age, price)]
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path / "s.yaml", {
        "udlc": 1, "name": "houses", "seed": 0, "data": {"source": "houses.csv", "split": [0.7, 0.15, 0.15]},
        "model": {"input": [3], "layers": [{"linear": 32}, "relu", {"linear": 1}]}, "loss": "mse",
        "metrics": ["r2", "mae"], "optimizer": {"type": "adam", "lr": 1e-2}, "train": {"epochs": 15, "batch_size": 32}})
    run = train_here(spec, tmp_path / "runs")
    results = json.loads((run / "results.json").read_text())
    assert results["test_r2"] > 0.9
    assert 5_000 < results["test_mae"] < 40_000  # dollars: the noise is 20k
    assert results["test_loss"] > 1e7  # mse in dollars squared, not in standardized units


def test_check_counts_one_hot_columns_and_refuses_what_training_would(tmp_path: Path) -> None:
    """Section 6 of issue 19, as a new user met it: an `input` that leaves out the one-hot width of a
    categorical column, a target with one class, metrics of the other kind, a float32 overflow, a too-small
    generated set, a context longer than the positions table: each refused by check at its line."""
    import shutil

    good = Path(__file__).resolve().parent / "specs" / "good"
    shutil.copy(good / "shapes.csv", tmp_path / "shapes.csv")
    cases = [
        ({"model.input": [3]}, "input:", "holds 3"),
        ({"metrics": ["r2"]}, "metrics:", "r2 measures values"),
        ({"optimizer.lr": 1.0e300}, "lr:", "must fit a float32"),
    ]
    for i, (changes, marker, words) in enumerate(cases):
        refused_at(edited_spec(tmp_path / f"s{i}.yaml", good / "csv-labels.yaml", changes), marker, words)
    one = tmp_path / "one.csv"
    one.write_text("colour,width,height,kind\n" + "red,1,2,tall\nblue,2,3,tall\ngreen,1,1,tall\n" * 4)
    refused_at(edited_spec(tmp_path / "one.yaml", good / "csv-labels.yaml", {"data.source": "one.csv"}),
               "loss:", "one class")
    lm = Path(__file__).resolve().parent.parent / "examples" / "char-lm.yaml"
    refused_at(edited_spec(tmp_path / "lm.yaml", lm, {"model.layers": [
        {"embedding": {"num_embeddings": 256, "embedding_dim": 16}}, {"learned_positions": {"max_len": 64}},
        {"linear": 256}]}), "context", "holds positions for 64")


def test_a_regression_set_with_a_classification_loss_and_a_folder_without_its_slash_are_refused(
        tmp_path: Path) -> None:
    """diabetes' targets are whole numbers: cross_entropy once read them as 214 classes ('end the model with
    linear: 214'); and `source: shapes` beside a folder shapes/ was an unknown source with no word of the folder."""
    spec = edited_spec(tmp_path / "d.yaml", _mlp(tmp_path), {"data.source": "diabetes", "model.input": [10]})
    refused_at(spec, "loss:", "regression set")
    (tmp_path / "shapes" / "disc").mkdir(parents=True)
    refused_at(edited_spec(tmp_path / "f.yaml", _mlp(tmp_path), {"data.source": "shapes"}), "source:",
               "write `source: shapes/`")


def _mlp(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "mlp.yaml", {**DIGITS_MLP, "data": {"source": "digits"}})


@pytest.mark.parametrize("name", sorted(__import__("udlc.tasks", fromlist=["TASKS"]).TASKS))
def test_every_task_implements_what_the_loop_calls_on_the_base(name: str) -> None:
    """The contract is declared on Task (udlc/tasks/registry.py); a registered task overrides every method the
    loop, export and report call that the base cannot answer for it."""
    from udlc.tasks import TASKS, Task

    required = ("check", "logged", "served", "load_data", "info", "sizes", "batches", "train_step", "evaluate")
    missing = [m for m in required if getattr(TASKS[name], m) is getattr(Task, m)]
    assert not missing, f"task {name} leaves {missing} to the base"
