"""Shared fixtures: a spec writer, small runs trained once per session, and helpers of the training tests.
The `udlc` command in a subprocess and the early CLI jobs are tests/processes.py's.

Nothing here imports torch at collection time: other test files check that `udlc check` never needs it.
"""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.fast_export import cache_torchlib_registry
from tests.processes import (  # noqa: F401  (the three hooks: pytest finds them here, by name)
    CLI_TIMEOUT, cli, describe, early_job, job_results, pytest_collection_finish, pytest_configure,
    pytest_sessionfinish, run_folder,
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Once a test has imported torch, every later ONNX export in this process reuses one torchlib registry
    (tests/fast_export.py). Not before: importing the exporter would import torch."""
    if sys.modules.get("torch") is not None:
        cache_torchlib_registry()


def write_spec(path: Path, doc: dict[str, Any], **sections: Any) -> Path:
    """Write a spec: `doc` updated section by section with `sections` (train={...} replaces train)."""
    doc = {**doc, **sections}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# A tiny MLP on the 8x8 digits read as 64 features: trains in well under a second.
DIGITS_MLP: dict[str, Any] = {
    "udlc": 1,
    "name": "tiny-digits",
    "seed": 0,
    "data": {"source": "digits", "split": [0.8, 0.1, 0.1]},
    "model": {"input": [64], "layers": [{"linear": 32}, "relu", {"linear": 10}]},
    "loss": "cross_entropy",
    "metrics": ["accuracy"],
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 3, "batch_size": 64},
    "export": {"onnx": {"opset": 18}},
}

# A tiny regression on generated sine data. With an lr of 1e-12 nothing moves, so early stopping
# (patience 1, min_delta above float noise) must stop it after its second epoch.
SINE_PLATEAU: dict[str, Any] = {
    "udlc": 1,
    "name": "tiny-sine",
    "seed": 0,
    "data": {"source": "sine", "samples": 200},
    "model": {"input": [1], "layers": [{"linear": 8}, "tanh", {"linear": 1}]},
    "loss": "mse",
    "metrics": ["mae"],
    "optimizer": {"type": "adam", "lr": 1e-12},
    "train": {"epochs": 20, "batch_size": 32,
              "early_stopping": {"monitor": "val_loss", "patience": 1, "min_delta": 1e-6}},
    "export": {"onnx": {"opset": 18}},
}


@dataclass
class TrainedRun:
    spec: Path  # the spec file trained
    run: Path  # the run folder `udlc train` printed
    result: subprocess.CompletedProcess  # the `udlc train` call

    def read_json(self, name: str) -> Any:
        return json.loads((self.run / name).read_text())


@early_job("trained")
def _trained_job(root: Path) -> dict[str, tuple]:
    write_spec(root / "digits.yaml", DIGITS_MLP)
    write_spec(root / "sine.yaml", SINE_PLATEAU)
    return {"digits": ("train", "digits.yaml", "--out", "runs", "--set", "train.epochs=2"),
            "sine": ("train", "sine.yaml", "--out", "runs")}


@pytest.fixture(scope="session")
def trained() -> dict[str, TrainedRun]:
    """Two small runs trained once per session, side by side: `digits` (classification, trained with
    --set train.epochs=2 over the file's 3) and `sine` (regression that plateaus and stops early).
    Both export model.onnx. Tests must not modify these folders: copy them first."""
    root, results = job_results("trained")
    return {k: TrainedRun(root / f"{k}.yaml", run_folder(r, root), r) for k, r in results.items()}


@pytest.fixture(scope="session")
def digits_run(trained: dict[str, TrainedRun]) -> TrainedRun:
    return trained["digits"]


@pytest.fixture(scope="session")
def sine_run(trained: dict[str, TrainedRun]) -> TrainedRun:
    return trained["sine"]


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """`run_cli("train", "spec.yaml")`: the udlc command in a subprocess with cwd=tmp_path."""

    def run(*args: Any, cwd: Path | None = None, timeout: float = CLI_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return cli(*args, cwd=cwd or tmp_path, timeout=timeout, env=env)

    return run


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread
           ) -> Callable[..., subprocess.CompletedProcess]:
    """`invoke("train", "spec.yaml")`: the udlc command in this process (cwd=tmp_path), for tests of what a
    command prints and writes once torch is loaded; `run_cli` is for what a fresh process does (start-up,
    imports, tracebacks)."""
    from click.testing import CliRunner

    from udlc.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: Any) -> subprocess.CompletedProcess:
        result = CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)
        return subprocess.CompletedProcess(list(map(str, args)), result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def one_torch_thread():
    """In-process torch on one thread for the test (see CHILD_ENV); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- helpers shared by the training tests ---------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read by hand: 8 bytes of length, then JSON."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def assert_clean_failure(result, *, code: int | None = None) -> str:
    """A user error: non-zero exit, a message on stderr, never a traceback. Returns stderr."""
    assert result.returncode != 0, describe(result)
    if code is not None:
        assert result.returncode == code, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert "internal error" not in result.stderr, describe(result)  # the CLI's catch-all for crashes
    assert result.stderr.strip(), describe(result)
    return result.stderr


def train_here(spec: Path, out: Path) -> Path:
    """Train in this process (no interpreter start-up): what `udlc train -q` does."""
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    return train_spec(compile_spec(spec), out=out, quiet=True)


def line_of(path: Path, text: str) -> int:
    """The first line of a spec file that holds `text` (where an error should point)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def refused_at(spec: Path, marker: str, words: str) -> None:
    """check refuses `spec` with one error, at the first line holding `marker`, whose message or hint says `words`."""
    from udlc.errors import SpecErrors
    from udlc.tasks import compile_spec

    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, marker), (e.message, e.span.line)
    assert words in e.message + " " + (e.hint or ""), e.message


def edited_spec(path: Path, example: Path, changes: dict[str, Any]) -> Path:
    """An example spec with dotted keys changed (as `edited`), written to `path` with flow-style lists, so that
    a list written as `[2]` can be found by line_of."""
    import yaml

    path.write_text(yaml.safe_dump(edited(yaml.safe_load(example.read_text()), changes), sort_keys=False,
                                   default_flow_style=None))
    return path


def edited(doc: dict, changes: dict[str, Any]) -> dict:
    """A deep copy of a spec document with dotted keys set: {"model.input": [16], "loss": "mse"}."""
    doc = json.loads(json.dumps(doc))
    for key, value in changes.items():
        *head, last = key.split(".")
        node = doc
        for k in head:
            node = node[k]
        node[last] = value
    return doc


def trained_network(run_dir: Path) -> Any:
    """A run's network with its final weights, in eval mode (the `model` network of a one-network task)."""
    from udlc.compiler.lower import lower
    from udlc.runs import RunFolder, checkpoint

    run = RunFolder.open(run_dir)
    compiled = run.compiled()
    network = lower(compiled.graph)
    checkpoint.load_models({"model": network}, run.final_checkpoint(compiled.spec))
    return network.eval()


# ---- a classifier trained on a CSV: named columns, a categorical one, empty cells ------------------------

CSV_SPEC = {
    "udlc": 1,
    "name": "tiny-csv",
    "seed": 0,
    # the target stands between features, so a file with it read by name must skip it
    "data": {"source": "data.csv", "target": "label", "categorical": ["color"], "missing": "mean"},
    "model": {"input": [5], "layers": [{"linear": 8}, "relu", {"linear": 2}]},  # 3 one-hot columns + a + b
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32},
    "export": {"onnx": {"opset": 18}},
}
CSV_HEADER = ["color", "a", "label", "b"]


def csv_rows(n: int = 120) -> list[list[str]]:
    """color (categorical), a (numeric, every 17th cell empty), label (the target), b (numeric)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(50, 10, n), rng.normal(-3, 2, n)
    color = rng.choice(["red", "green", "blue"], n)
    label = np.where(a + 5 * (color == "red") > 52, "yes", "no")
    return [[color[i], "" if i % 17 == 3 else f"{a[i]:.3f}", label[i], f"{b[i]:.3f}"] for i in range(n)]


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerows(([header] if header else []) + rows)
    return path


@early_job("csv_run")
def _csv_job(root: Path) -> dict[str, tuple]:
    write_csv(root / "data.csv", CSV_HEADER, csv_rows())
    write_spec(root / "csv.yaml", CSV_SPEC)
    return {"csv": ("train", "csv.yaml", "--out", "runs")}


@pytest.fixture(scope="session")
def csv_run() -> TrainedRun:
    """tiny-csv, trained once per session."""
    root, results = job_results("csv_run")
    return TrainedRun(root / "csv.yaml", run_folder(results["csv"], root), results["csv"])
