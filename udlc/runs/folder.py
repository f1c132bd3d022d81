"""RunFolder: the one place that knows a run folder's layout. Trainer, exporter and evaluator all go
through it, so none of them needs another.

    runs/<name>/<run-id>/
        spec.yaml          the spec as trained (overrides applied, data paths absolute)
        run.json           what export and predict need (task, classes, normalization) and the run's story
                           (status, times, versions, seed, device, best epoch)
        metrics.csv  metrics.jsonl
        checkpoints/last.safetensors (+ .json)   checkpoints/best.safetensors (+ .json)
        results.json       test metrics
        model.onnx         when the spec has export.onnx (or after `udlc export`); a task that serves several
                           networks writes the others beside it (a VAE's encoder.onnx)
        samples.png        a generative task's samples at the end of training (samples/epoch-<N>.png
                           every `samples_every` epochs)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError


def udlc_version() -> str:
    """The installed udlc's version, for run.json and model metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("udlc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    # ---- creating and opening ----------------------------------------------------------------

    @classmethod
    def create(cls, out: Path, name: str) -> RunFolder:
        """A new, empty folder runs/<name>/<timestamp>[-n]."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            path = Path(out) / name / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir(parents=True)
                return cls(path)
            except FileExistsError:
                continue
        raise UdlcError(f"cannot create a run folder under {Path(out) / name}")

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder; a clear error for anything else."""
        run = cls(path)
        if not run.path.is_dir():
            raise UdlcError(f"no run folder at {run.path}")
        if not run.info_file.is_file() or not run.spec_file.is_file():
            raise UdlcError(f"{run.path} is not a udlc run folder (no run.json and spec.yaml) — "
                            "give the folder `udlc train` printed")
        return run

    # ---- files ---------------------------------------------------------------------------------

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def onnx_file(self) -> Path:
        return self.path / "model.onnx"

    def served_file(self, stem: str) -> Path:
        """The ONNX file of one served network: model.onnx, or <stem>.onnx beside it."""
        return self.path / f"{stem}.onnx"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    def metrics_rows(self) -> list[dict[str, str]]:
        """metrics.csv's rows, one per epoch (none before the first epoch ends)."""
        import csv

        if not self.metrics_file.is_file():
            return []
        with self.metrics_file.open(newline="") as f:
            return list(csv.DictReader(f))

    @property
    def samples_file(self) -> Path:
        return self.path / "samples.png"

    def samples_at(self, epoch: int) -> Path:
        return self.path / "samples" / f"epoch-{epoch:04d}.png"

    def checkpoint(self, which: str) -> Path:
        """checkpoints/<which> without suffix: the checkpoint module adds .safetensors and .json."""
        return self.path / "checkpoints" / which

    def has_checkpoint(self, which: str) -> bool:
        return self.checkpoint(which).with_suffix(".safetensors").is_file()

    def final_checkpoint(self, spec: Any) -> Path:
        """The weights a run ends with: the best epoch's, unless early stopping says not to restore them."""
        stop = spec.train.early_stopping
        if (stop is None or stop.restore_best) and self.has_checkpoint("best"):
            return self.checkpoint("best")
        return self.checkpoint("last")

    def compiled(self) -> Any:
        """The run's spec.yaml, compiled again (to the task check); data files are not required."""
        from udlc.tasks import compile_spec

        return compile_spec(self.spec_file, check_files=False)

    # ---- run.json ------------------------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        return json.loads(self.info_file.read_text())

    def write_info(self, info: dict[str, Any]) -> None:
        _write_atomic(self.info_file, json.dumps(info, indent=2) + "\n")

    def update_info(self, **fields: Any) -> None:
        self.write_info({**self.info, **fields})

    def set_status(self, status: str) -> None:
        self.update_info(status=status)

    def write_results(self, results: dict[str, Any]) -> None:
        _write_atomic(self.results_file, json.dumps(results, indent=2) + "\n")

    def write_spec(self, text: str) -> None:
        _write_atomic(self.spec_file, text)


def _write_atomic(path: Path, text: str) -> None:
    """A reader (or a run killed mid-write) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
