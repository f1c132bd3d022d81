"""`udlc runs [DIR]`: the run folders under DIR with their status and key results, each spec's runs best first
(lowest test loss; runs without results last)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.tasks.served import task_and_target


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One row per run folder below `root` (runs/<name>/<run-id>/run.json); a `root` that is not there is an
    error (a mistyped folder must not read as a folder without runs)."""
    if not Path(root).is_dir():
        raise UdlcError(f"no folder {root} — give the folder `udlc train --out` wrote the runs to (default: runs)")
    rows = []
    for info_file in sorted(Path(root).glob("*/*/run.json")):
        folder = info_file.parent
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            continue  # a folder being written, or not a run: nothing to list
        results_file = folder / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
        tests = {k: v for k, v in results.items() if k.startswith("test_") and isinstance(v, float)}
        rows.append({"run": f"{folder.parent.name}/{folder.name}", "status": info.get("status", "?"),
                     "task": task_and_target(info)[0] or "?", "target": task_and_target(info)[1],
                     "epochs": info.get("epochs_done"),
                     "verdict": (info.get("diagnosis") or {}).get("verdict", ""), "tests": tests,
                     "error": info.get("error") if info.get("status") == "failed" else None})
    loss = float("inf")
    return sorted(rows, key=lambda r: (r["run"].split("/")[0], r["tests"].get("test_loss", loss)))


ERROR_WIDTH = 100


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def format_runs(rows: list[dict[str, Any]], root: Path | None = None) -> str:
    if not rows:
        return f"no runs under {root} (it holds no <name>/<run-id>/run.json)" if root is not None else "no runs"
    lines = []
    width = max(len(r["run"]) for r in rows) + 2
    for r in rows:
        tests = "  ".join(f"{k.removeprefix('test_')} {v:.4g}" for k, v in list(r["tests"].items())[:3])
        if r.get("error"):  # a failed run has no results to show: what failed it, cut to the line
            tests = shorten(r["error"], ERROR_WIDTH)
        lines.append(f"{r['run'].ljust(width)}{r['status']:<9}{str(r['epochs'] or '-'):>5} epochs  "
                     f"{r['verdict']:<17}{tests}")
    return "\n".join(lines)
