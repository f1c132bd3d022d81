"""Per-epoch records (metrics.csv, metrics.jsonl) and what the terminal shows while training."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any


class EpochLog:
    """Appends one row per epoch to metrics.jsonl and metrics.csv; a rich progress bar on a terminal,
    plain lines otherwise."""

    def __init__(self, run_dir: Path, epochs: int, quiet: bool = False):
        self.jsonl, self.csv = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
        self.epochs, self.quiet = epochs, quiet
        self.rows: list[dict[str, Any]] = []
        self.fields: list[str] = []  # metrics.csv's columns as written
        self.progress = None
        if not quiet and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=True)
            self.task = self.progress.add_task("train", total=None, epoch=1)
            self.progress.start()

    def resume(self, last_epoch: int) -> None:
        """Keep the rows a resumed run continues from; drop those written after its checkpoint."""
        if self.jsonl.is_file():
            rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]
            self.rows = [r for r in rows if r["epoch"] <= last_epoch]
        self._rewrite()

    def batch(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)

    def epoch(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.fields == list(row):  # the usual case: one more line (rewriting grows with the epochs)
            with self.csv.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(row)
        else:
            self._write_csv()
        line = f"epoch {row['epoch']}/{self.epochs}  " + "  ".join(
            _fmt(k, v) for k, v in row.items() if k != "epoch")
        if self.progress is not None:
            self.progress.update(self.task, epoch=min(row["epoch"] + 1, self.epochs))
            self.progress.console.print(line, highlight=False)
        elif not self.quiet:
            print(line, flush=True)

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        elif not self.quiet:
            print(text, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _rewrite(self) -> None:
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        fields: list[str] = []
        for r in self.rows:
            fields += [k for k in r if k not in fields]
        self.fields = fields
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)


def _fmt(key: str, v: Any) -> str:
    if key == "seconds":
        return f"{v:.2f}s"
    if key == "samples_per_s":
        return f"{v:,.0f} samples/s"
    if key == "lr":
        return f"lr {v:.2e}"
    if isinstance(v, float):
        return f"{key} {v:.4f}"
    return f"{key} {v}"
