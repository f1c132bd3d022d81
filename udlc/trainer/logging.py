"""Per-epoch records (metrics.csv, metrics.jsonl, TensorBoard events) and what the terminal shows while
training."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any


class EpochLog:
    """Appends one row per epoch to metrics.jsonl, metrics.csv and the TensorBoard events; a rich progress
    bar on a terminal, plain lines otherwise, each with the time the run has left."""

    def __init__(self, run_dir: Path, epochs: int, quiet: bool = False):
        self.run_dir = run_dir
        self.jsonl, self.csv = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
        self.epochs, self.quiet = epochs, quiet
        self.rows: list[dict[str, Any]] = []
        self.fields: list[str] = []  # metrics.csv's columns as written
        self.board: Any = None  # the TensorBoard writer, opened with the first row (or graph)
        self.durations: list[float] = []  # this process's epochs, wall time (validation and checkpoints in)
        self.epoch_started = time.monotonic()
        self.progress = None
        if not quiet and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[left]}"), transient=True)
            self.task = self.progress.add_task("train", total=None, epoch=1, left="")
            self.progress.start()

    def resume(self, last_epoch: int) -> None:
        """Keep the rows a resumed run continues from; drop those written after its checkpoint."""
        if self.jsonl.is_file():
            rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]
            self.rows = [r for r in rows if r["epoch"] <= last_epoch]
        self._rewrite()

    def start(self) -> None:
        """Training starts now: the first epoch's time is counted from here, not from the setup."""
        self.epoch_started = time.monotonic()

    def tensorboard(self) -> Any:
        if self.board is None:
            from udlc.trainer.board import Board

            self.board = Board(self.run_dir, purge_step=self.rows[-1]["epoch"] + 1 if self.rows else None)
        return self.board

    def left(self, epoch: int) -> str:
        """The run's time left: the epochs still to train × this process's mean epoch time."""
        if not self.durations or epoch >= self.epochs:
            return ""
        seconds = max(1, round(sum(self.durations) / len(self.durations) * (self.epochs - epoch)))
        minutes, seconds = divmod(seconds, 60)
        return f"~{minutes}m{seconds:02d}s left" if minutes else f"~{seconds}s left"

    def batch(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)

    def epoch(self, row: dict[str, Any]) -> None:
        now = time.monotonic()
        self.durations.append(now - self.epoch_started)
        self.epoch_started = now
        self.tensorboard().epoch(row)
        self.rows.append(row)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.fields == list(row):  # the usual case: one more line (rewriting grows with the epochs)
            with self.csv.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(row)
        else:
            self._write_csv()
        left = self.left(row["epoch"])
        line = f"epoch {row['epoch']}/{self.epochs}  " + "  ".join(
            _fmt(k, v) for k, v in row.items() if k != "epoch") + (f"  ({left})" if left else "")
        if self.progress is not None:
            self.progress.update(self.task, epoch=min(row["epoch"] + 1, self.epochs), left=left)
            self.progress.console.print(line, highlight=False)
        elif not self.quiet:
            print(line, flush=True)

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        elif not self.quiet:
            print(text, flush=True)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None
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
    if key.startswith("grad_norm"):
        return f"{key} {v:.3g}"
    if isinstance(v, float):
        return f"{key} {v:.4f}"
    return f"{key} {v}"


class QuietLog(EpochLog):
    """The log of a process other than the main one of a run on several: it writes and shows nothing (the main
    process logs the epoch's values, summed over all)."""

    def __init__(self, run_dir: Path, epochs: int):
        super().__init__(run_dir, epochs, quiet=True)

    def resume(self, last_epoch: int) -> None:
        pass

    def epoch(self, row: dict[str, Any]) -> None:
        pass
