"""`udlc plot RUN [RUN…] -o curves.png`: the training and validation curves of one or several runs on one figure
(matplotlib, headless): a panel per logged value that train and val share (the loss, and each task's own), a
colour per run, training solid and validation dashed; each run's diagnosis (udlc.runs.diagnosis) in the legend."""

from __future__ import annotations

from pathlib import Path

from udlc.errors import UdlcError
from udlc.runs.diagnosis import diagnose
from udlc.runs.folder import RunFolder


def plot_runs(runs: list[Path], output: Path) -> Path:
    try:  # no pyplot: no display, no global state, and a second less to import
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - installed with udlc[train]
        raise UdlcError("plotting needs matplotlib: pip install 'udlc[train]'") from None

    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UdlcError(f"-o {output}: write the figure to a .png, .svg or .pdf")
    folders = [RunFolder.open(r) for r in runs]
    tables = [(f, f.metrics_rows()) for f in folders]
    empty = [str(f) for f, rows in tables if not rows]
    if empty:
        raise UdlcError(f"{', '.join(empty)}: no epoch has ended yet (metrics.csv is empty)")
    names = [k[len("train_"):] for k in tables[0][1][0] if k.startswith("train_")]
    panels = [n for n in names if all(f"train_{n}" in rows[0] for _, rows in tables)] or ["loss"]
    figure = Figure(figsize=(5.5 * len(panels), 4))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for colour, (folder, rows) in enumerate(tables):
        epochs = [int(r["epoch"]) for r in rows]
        found = folder.info.get("diagnosis")  # what training concluded; else read from the rows now
        if found is None and (fresh := diagnose(rows)) is not None:
            found = fresh.to_json()
        label = f"{folder.path.parent.name}/{folder.path.name}" + (f": {found['verdict']}" if found else "")
        for ax, name in zip(axes[0], panels):
            for split, style in (("train", "-"), ("val", "--")):
                values = [float(r[f"{split}_{name}"]) for r in rows if r.get(f"{split}_{name}") not in (None, "")]
                if len(values) == len(epochs):
                    ax.plot(epochs, values, style, color=f"C{colour}", label=f"{label} ({split})")
    for ax, name in zip(axes[0], panels):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    return output
