"""What an exported file serves is one registry entry (udlc.tasks.served): each kind has one export wrapper and one
reader, the file's metadata names it, files and run folders from before it did are read through one compatibility
function, and nothing else in udlc branches on a task's name."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import TrainedRun, assert_clean_failure
from udlc.errors import UdlcError
from udlc.tasks.served import KINDS, served_kind, task_and_target

ROOT = Path(__file__).resolve().parents[1]
# The registry module may read the old metadata; nothing else may branch on a task's name.
ALLOWED = {ROOT / "udlc" / "tasks" / "served.py"}


def task_name_branches() -> re.Pattern:
    from udlc.tasks import TASKS

    names = "|".join(map(re.escape, TASKS))
    return re.compile(
        r"""meta(\.get\(\s*|\[\s*)["']task["']"""  # the ONNX metadata's task
        r"""|\b(info|record)(\.get\(\s*|\[\s*)["']task["']\s*[\])]?\s*(==|!=|in\b|not\s+in\b)"""  # run.json's
        r"""|\btask\.name\s*(==|!=|in\s*[(\[]|not\s+in\s*[(\[])"""  # task.name == ..., task.name in (...)
        rf"""|\.name\s*(==|!=)\s*["']({names})["']"""  # self.name == "graph_classification"
        rf"""|\.name\s+(not\s+)?in\s*[(\[]\s*["']({names})["']""")


@pytest.mark.parametrize("line", [
    'if meta.get("task") == "seq2seq":', "self.task = meta['task']", 'if task.name == "language_model":',
    'if task.name not in ("supervised", "auxiliary"):', "'a graph' if self.name == 'node_classification' else 'graphs'",
    'x = self.name != "graph_classification"', 'if info.get("task") not in ("classification", "regression"):',
])
def test_the_search_finds_each_way_of_branching_on_a_task_name(line: str) -> None:
    assert task_name_branches().search(line), line


def test_nothing_outside_the_registry_branches_on_a_task_name() -> None:
    pattern = task_name_branches()
    found = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
             for path in sorted((ROOT / "udlc").rglob("*.py")) if path not in ALLOWED
             for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "branches on a task's name (ask the served kind, udlc.tasks.served):\n" + "\n".join(found)


def test_every_kind_has_one_wrapper_and_one_reader_for_its_command() -> None:
    from udlc.exporter.wrappers import WRAPPERS
    from udlc.runtime.readers import READERS

    assert WRAPPERS.keys() == READERS.keys() == KINDS.keys()
    method = {"predict": "answer_file", "generate": "answer", "sample": "sample"}
    for name, kind in KINDS.items():
        assert callable(getattr(READERS[name], method[kind.verb], None)), (name, READERS[name])
        assert kind.outputs and kind.route == f"/v1/{kind.verb}"


def test_every_task_serves_registered_kinds() -> None:
    """Each example spec's task names kinds of the registry for its files, model.onnx first and once."""
    from udlc.tasks import compile_spec

    seen = set()
    for spec in sorted((ROOT / "examples").glob("*.yaml")):
        compiled = compile_spec(spec, check_files=False)
        served = compiled.task.served(compiled)
        files = [s.file for s in served]
        assert files[0] == "model" and len(set(files)) == len(files), spec
        seen |= {(compiled.task.name, s.kind) for s in served}
    assert all(kind in KINDS for _, kind in seen)
    assert {kind for _, kind in seen} >= {"classes", "values", "samples", "next_token", "node_classes"}


def test_served_refuses_an_unknown_kind() -> None:
    from udlc.tasks.registry import Served

    with pytest.raises(ValueError, match="unknown served kind 'softmax'"):
        Served("model", 0, "softmax")


# ---- files and run folders from before: one compatibility function each -------------------------------------


@pytest.mark.parametrize("meta,kind", [
    ({"task": "classification", "outputs": '["logits", "probabilities"]'}, "classes"),
    ({"task": "regression", "outputs": '["prediction"]'}, "values"),
    ({"task": "regression", "network": "decoder", "latent_shape": "[8]"}, "decoded"),  # an autoencoder's decoder
    ({"task": "regression", "network": "encoder", "latent_shape": "[8]"}, "latents"),  # ... and its encoder
    ({"task": "vae", "network": "encoder", "latent_shape": "[8]"}, "latents"),
    ({"task": "vae", "network": "decoder", "latent_shape": "[8]"}, "samples"),
    ({"task": "gan", "network": "generator", "latent_shape": "[2]"}, "samples"),
    ({"task": "diffusion", "network": "model", "latent_shape": "[2]"}, "denoiser"),
    ({"task": "language_model"}, "next_token"), ({"task": "seq2seq"}, "decoded_text"),
    ({"task": "token_classification"}, "token_labels"), ({"task": "sequence_classification"}, "text_classes"),
    ({"task": "node_classification"}, "node_classes"), ({"task": "graph_classification"}, "node_classes"),
    ({"task": "link_prediction"}, "edge_probabilities"),
    ({"served": "values", "task": "autoencoder", "target": "regression"}, "values"),  # the key, where there is one
])
def test_the_kind_of_a_file_from_its_metadata_old_or_new(meta: dict, kind: str) -> None:
    assert served_kind(meta, "m.onnx").name == kind


@pytest.mark.parametrize("meta,words", [({}, "was not exported by udlc"), ({"task": "supervised"}, "not exported by"),
                                        ({"served": "holograms"}, "exported by a newer udlc")])
def test_a_file_that_says_nothing_known_is_refused(meta: dict, words: str) -> None:
    with pytest.raises(UdlcError, match=words):
        served_kind(meta, "m.onnx")


@pytest.mark.parametrize("record,expected", [
    ({"task": "classification"}, (None, "classification")),  # a supervised run before `target`
    ({"task": "supervised", "target": "regression"}, ("supervised", "regression")),
    ({"task": "autoencoder", "target": "regression"}, ("autoencoder", "regression")),
    ({"task": "language_model"}, ("language_model", None)), ({}, (None, None)),
])
def test_task_and_target_of_a_run_old_or_new(record: dict, expected: tuple) -> None:
    assert task_and_target(record) == expected


def as_exported_before(source: Path, target: Path) -> Path:
    """`source` with the metadata udlc wrote before the served kind: no `served` or `target`, and a supervised
    model's target kind in `task`."""
    import onnx

    proto = onnx.load(str(source))
    meta = {p.key: p.value for p in proto.metadata_props}
    old = {k: v for k, v in meta.items() if k not in ("served", "target")}
    old["task"] = meta["target"]
    del proto.metadata_props[:]
    for key, value in old.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize("which", ["digits", "sine"])
def test_a_file_exported_before_predicts_as_it_did(trained: dict[str, TrainedRun], invoke, tmp_path: Path,
                                                   which: str) -> None:
    import numpy as np

    run = trained[which].run
    old = as_exported_before(run / "model.onnx", tmp_path / "old.onnx")
    samples = np.random.default_rng(0).uniform(0, 16, (5, 64 if which == "digits" else 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", samples)
    new_answers, old_answers = invoke("predict", run / "model.onnx", "x.npy"), invoke("predict", old, "x.npy")
    assert new_answers.returncode == old_answers.returncode == 0, old_answers.stderr
    assert old_answers.stdout == new_answers.stdout and len(old_answers.stdout.splitlines()) == 6
    assert ("p_9" in old_answers.stdout) == (which == "digits")


def test_a_run_folder_from_before_exports_with_task_and_target(digits_run: TrainedRun, tmp_path: Path) -> None:
    """run.json of a supervised run from before `target` held the target kind in `task`: the file exported from
    it names the task (from the spec), the target kind and the served kind."""
    from udlc.exporter.onnx import export_run
    from udlc.runtime.files import open_file

    run = shutil.copytree(digits_run.run, tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["task"] = info.pop("target")
    (run / "run.json").write_text(json.dumps(info))
    file = open_file(export_run(run, run / "again.onnx"))
    assert (file.meta["served"], file.meta["task"], file.meta["target"]) == ("classes", "supervised", "classification")
    assert file.kind is KINDS["classes"]


def test_each_command_refuses_a_file_another_command_reads(digits_run: TrainedRun, invoke, tmp_path: Path) -> None:
    err = assert_clean_failure(invoke("generate", digits_run.run / "model.onnx", "--prompt", "hello"))
    assert "serves class probabilities" in err and "read it with `udlc predict`, not `udlc generate`" in err


def test_the_readers_load_without_torch_or_pydantic() -> None:
    """`udlc predict` starts fast: the runtime's readers, the served kinds included, need onnxruntime and numpy only."""
    import subprocess
    import sys

    code = ("import sys\nimport udlc.runtime.readers\n"
            "print(sorted(m for m in ('torch', 'pydantic', 'udlc.compiler.pipeline') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
