"""The task contract, over every registered task (udlc.tasks.TASKS), each from the small example spec it
registers (`Task.example`, under tests/specs/contract/): `check` accepts it; it trains; a run stopped after its
first epoch (all a kill leaves is the checkpoint on disk) and resumed ends bitwise where an uninterrupted run
ends; it exports (the exporter's parity gate runs onnxruntime against torch on every file); each exported file
answers through its command (predict, generate or sample, as its served kind says); and `udlc doctor` runs
through. A new task gets all of it by registering its example."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_csv
from tests.fast_export import fast_exporter  # noqa: F401  (a fixture: pytest finds it by name)
from udlc.tasks import TASKS, compile_spec

CONTRACT = Path(__file__).parent / "specs" / "contract"
TIMING = ("seconds", "samples_per_s")  # the metrics.csv columns that differ between two runs alike


class Killed(Exception):
    """Ends a run after an epoch, as a kill would: what survives is the checkpoint on disk."""


def example(name: str) -> Path:
    task = TASKS[name]
    assert task.example, f"task {name} registers no example spec (Task.example): the contract test needs one"
    path = CONTRACT / task.example
    assert path.is_file(), f"task {name}'s example {path} does not exist"
    return path


def test_every_registered_task_has_an_example_of_its_own() -> None:
    """Each task's example trains that task (a subclass does not inherit its parent's by mistake)."""
    for name in TASKS:
        assert compile_spec(example(name)).task.name == name


@pytest.mark.usefixtures("fast_exporter")
@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_task_trains_resumes_exactly_exports_answers_and_is_doctored(name: str, tmp_path: Path, invoke,
                                                                      one_torch_thread, monkeypatch) -> None:
    from safetensors.torch import load_file

    import udlc.guide.doctor
    from udlc.exporter.onnx import export_run
    from udlc.trainer.run import resume_run, train_spec

    spec = example(name)
    compiled = compile_spec(spec)  # check
    epochs = compiled.spec.train.epochs
    assert epochs >= 2 and compiled.spec.train.checkpoint_seconds == 0  # a checkpoint after each epoch
    straight = train_spec(compiled, out=tmp_path / "straight", quiet=True)

    def kill(row: dict) -> None:
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train_spec(compile_spec(spec), out=tmp_path / "killed", quiet=True, on_epoch=kill)
    (killed,) = (tmp_path / "killed").glob("*/*")
    assert json.loads((killed / "run.json").read_text())["status"] == "stopped"
    resume_run(killed, quiet=True)
    for checkpoint in ("best", "last"):
        a, b = (load_file(str(run / "checkpoints" / f"{checkpoint}.safetensors")) for run in (straight, killed))
        assert a.keys() == b.keys()
        assert [k for k in a if not a[k].equal(b[k])] == [], f"{checkpoint}: the resumed run ends elsewhere"
    assert json.loads((killed / "results.json").read_text()) == json.loads((straight / "results.json").read_text())
    for shadow in compiled.task.shadows(compiled):  # a moving average is checkpointed, and resumed, too
        assert any(k.startswith(f"models.{shadow}.") for k in a), shadow
    rows = [[{k: v for k, v in row.items() if k not in TIMING} for row in read_csv(run / "metrics.csv")]
            for run in (straight, killed)]
    assert rows[0] == rows[1] and len(rows[0]) == epochs

    export_run(straight)  # raises where onnxruntime and torch differ on any file (the parity gate)
    info = json.loads((straight / "run.json").read_text())
    served = compiled.task.served(compiled)
    assert served
    for entry in served:
        file = straight / f"{entry.file}.onnx"
        assert file.is_file()
        answers(entry.kind, file, info, tmp_path, invoke)

    # Doctor's every item runs; a few steps each are enough to show it (its full budgets are for real models).
    monkeypatch.setattr(udlc.guide.doctor, "OVERFIT_STEPS", 10)
    monkeypatch.setattr(udlc.guide.doctor, "LR_STEPS", 10)
    findings = udlc.guide.doctor.doctor(compiled)
    assert findings and all(f.status in ("ok", "warn", "fail", "skip") for f in findings)
    assert [f.item for f in findings] == ["data", "initial loss", "overfit one batch", "gradient flow", "learning rate"]
    # Checked, trained, exported and doctored, the task still holds its options only: a run's state is its RunState.
    assert set(vars(compiled.task)) == {"options", "where"}


# ---- each served kind's answer ---------------------------------------------------------------------------------
# What each command is asked of a file, by the kind it serves (udlc.tasks.served), and how many answers come back.
# A new served kind fails here (KeyError) until it says how its file is asked.

def answers(kind: str, file: Path, info: dict, tmp_path: Path, invoke) -> None:
    from udlc.tasks.served import KINDS

    verb = KINDS[kind].verb
    if verb == "sample":
        out = tmp_path / f"{file.stem}-samples.npy"
        result = invoke("sample", file, "-n", "4", "-o", out)
        assert result.returncode == 0, result.stderr
        samples = np.load(out)
        assert len(samples) == 4 and np.isfinite(samples).all()
        return
    if verb == "generate":
        result = invoke("generate", file, "--prompt", prompt(info), "--max-new-tokens", "3", "--temperature", "0")
        assert result.returncode == 0 and result.stdout.strip(), result.stderr
        return
    inputs, count = PREDICT_INPUTS[kind](info, tmp_path / f"{file.stem}-inputs")
    result = invoke("predict", file, inputs)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout.strip())))
    assert len(rows) == 1 + count, result.stdout  # a header, then one row per sample, node, graph or pair
    values = [float(v) for row in rows[1:] for v in row if _number(v)]
    assert values and np.isfinite(values).all()


def prompt(info: dict) -> str:
    """A few of the vocabulary's one-character tokens (a generated sequence set), or plain text."""
    letters = [t for t in info.get("vocabulary") or [] if len(t) == 1]
    return "".join(letters[:4]) if letters else "def "


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _samples(info: dict, path: Path) -> tuple[Path, int]:
    """Three samples shaped as training read them, in an .npy."""
    shape = info.get("sample_shapes", info["input_shapes"])[0]
    np.save(path.with_suffix(".npy"), np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32))
    return path.with_suffix(".npy"), 3


def _codes(info: dict, path: Path) -> tuple[Path, int]:
    """Three codes for a decoder, in an .npy."""
    codes = np.random.default_rng(0).normal(size=(3, *info["latent_shape"])).astype(np.float32)
    np.save(path.with_suffix(".npy"), codes)
    return path.with_suffix(".npy"), 3


def _graph(info: dict, path: Path) -> tuple[Path, int]:
    """Two rings of three nodes in an .npz: one answer per node, or per graph for a model that reads `batch`."""
    features = info["input_shapes"][0][1]
    ring = np.array([[0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]])
    fields = {"x": np.random.default_rng(0).random((6, features)).astype(np.float32),
              "edge_index": np.concatenate([ring, ring + 3], axis=1).astype(np.int64)}
    graphs = "batch" in info["input_names"]
    if graphs:
        fields["batch"] = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)
    np.savez(path.with_suffix(".npz"), **fields)
    return path.with_suffix(".npz"), 2 if graphs else 6


def _pairs(info: dict, path: Path) -> tuple[Path, int]:
    """A graph and three node pairs to score."""
    graph, _ = _graph({**info, "input_names": ["x", "edge_index"]}, path)
    fields = dict(np.load(graph))
    np.savez(graph, **fields, pairs=np.array([[0, 1, 3], [4, 2, 5]], dtype=np.int64))
    return graph, 3


def _texts(info: dict, path: Path) -> tuple[Path, int]:
    """Three texts in a CSV, under the column the model was trained on."""
    path = path.with_suffix(".csv")
    path.write_text(f"{info['text_column']}\nimport os\n# a comment\nreturn x\n")
    return path, 3


PREDICT_INPUTS = {"classes": _samples, "values": _samples, "latents": _samples, "decoded": _codes,
                  "node_classes": _graph, "edge_probabilities": _pairs, "text_classes": _texts,
                  "masks": _samples, "pictures": _samples}
