"""The practitioner's commands: see training (plot, runs, report), debug it (doctor, lr-find), tune it, and
what a network must beat (baseline). Argument parsing only, as in udlc.cli."""

from __future__ import annotations

import json
from pathlib import Path

import click

from udlc.cli import _set, main


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="curves.png", show_default=True,
              help="The figure: .png, .svg or .pdf.")
def plot(runs: tuple[str, ...], output: str) -> None:
    """Training and validation curves of one or several runs on one figure, each run's diagnosis in the legend."""
    from udlc.runs.plot import plot_runs

    click.echo(str(plot_runs([Path(r) for r in runs], Path(output))))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--run", "run", type=click.Path(file_okay=False), help="A run of the spec to show beside them.")
@_set
def baseline(spec: str, run: str | None, overrides: tuple[str, ...]) -> None:
    """What a network must beat: the majority class (or mean target) and gradient boosting, fitted on the spec's
    training split and scored on its test split."""
    from udlc.tasks import compile_spec
    from udlc.guide.baseline import baselines

    rows = baselines(compile_spec(spec, overrides))
    if run:
        from udlc.runs import RunFolder

        results = json.loads(RunFolder.open(Path(run)).results_file.read_text())
        rows[f"udlc run {Path(run).name}"] = {k: v for k, v in results.items() if isinstance(v, float)}
    names = list(next(iter(rows.values())))
    width = max(len(n) for n in rows) + 2
    click.echo("".ljust(width) + "  ".join(n.ljust(14) for n in names))
    for label, values in rows.items():
        click.echo(label.ljust(width) + "  ".join((f"{values[n]:.4f}" if n in values else "-").ljust(14)
                                                   for n in names))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@_set
def doctor(spec: str, fmt: str, overrides: tuple[str, ...]) -> None:
    """The debugging checklist on a spec, in under a minute: the data, the output layer and initial loss, whether
    the model overfits one batch, the gradient flow per layer, a learning-rate range test. Exit 1 if an item
    fails."""
    from udlc.tasks import compile_spec
    from udlc.guide.doctor import doctor as run_checklist

    findings = run_checklist(compile_spec(spec, overrides))
    if fmt == "json":
        click.echo(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        marks = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
        width = max(len(f.item) for f in findings)
        for f in findings:
            click.echo(f"{marks[f.status]:<5} {f.item:<{width}}  {f.summary}")
            for line in f.details:
                click.echo(f"{'':<{width + 7}}· {line}")
    raise SystemExit(1 if any(f.status == "fail" for f in findings) else 0)


@main.command(name="lr-find")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Plot the sweep here (.png, .svg or .pdf).")
@click.option("--start", type=click.FloatRange(min=0, min_open=True), default=1e-7, show_default=True)
@click.option("--end", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=10), default=100, show_default=True)
@_set
def lr_find(spec: str, output: str | None, start: float, end: float, steps: int, overrides: tuple[str, ...]) -> None:
    """The learning-rate range test: train from the spec's init while the lr grows exponentially each step, and
    suggest the lr where the smoothed loss falls fastest before it diverges."""
    from udlc.tasks import compile_spec
    from udlc.guide.lr_find import check_figure, lr_find as sweep_lr, plot_sweep

    if output:  # a wrong suffix is refused before the sweep, not after
        check_figure(Path(output))
    compiled = compile_spec(spec, overrides)
    sweep = sweep_lr(compiled, start=start, end=end, steps=steps)
    click.echo(sweep.summary())
    if output:
        click.echo(str(plot_sweep(sweep, Path(output))))


@main.command()
@click.argument("root", required=False, default="runs", type=click.Path(file_okay=False))
def runs(root: str) -> None:
    """The runs under ROOT (default runs/): status, epochs, diagnosis and test results, each spec's best first."""
    from udlc.runs.listing import format_runs, list_runs

    click.echo(format_runs(list_runs(Path(root)), Path(root)))


@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="The HTML file to write (default RUN/report.html).")
def report(run: str, output: str | None) -> None:
    """One self-contained HTML page about a run: its story, diagnosis, spec, layers, curves, test results, a
    classifier's confusion matrix and per-class scores, and the environment."""
    from udlc.guide.report import write_report

    click.echo(str(write_report(Path(run), Path(output) if output else None)))


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="model.svg", show_default=True,
              help="The drawing: .svg, or .png (matplotlib).")
@click.option("--expand", multiple=True, help="Draw this block or stage call open (repeatable); `all` opens every "
                                                "one. By default a network past 40 boxes is drawn with its calls "
                                                "collapsed.")
@click.option("--network", help="Draw only this network of a spec with several.")
@_set
def draw(source: str, output: str, expand: tuple[str, ...], network: str | None, overrides: tuple[str, ...]) -> None:
    """Draw SOURCE's networks (a spec, or a run folder) as a diagram: each layer with its output shape and parameter
    count, blocks and stages framed or collapsed, branches side by side, skips as arcs. No torch."""
    from udlc.guide.draw import check_request, write
    from udlc.tasks import compile_spec

    if Path(source).is_dir():
        from udlc.runs import RunFolder

        compiled = RunFolder.open(source).compiled()
    else:
        compiled = compile_spec(source, overrides)
    opened = "all" if "all" in expand else (expand or None)
    check_request(compiled, opened, network, Path(output))
    click.echo(str(write(compiled, Path(output), opened, network)))


@main.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="Trials to run (more, on --resume).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Stop starting trials after this many seconds.")
@click.option("--out", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="The tune folder goes to OUT/<name>/tune-<time>/.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the study in this tune folder.")
@_set
def tune(spec: str | None, trials: int, timeout: float | None, out: str, resume: str | None,
         overrides: tuple[str, ...]) -> None:
    """Search the spec's `tune.space` with Optuna (default: lr, batch size, weight decay around the spec's), each
    trial a run pruned early when hopeless; writes best.yaml and prints the tune folder last."""
    from udlc.guide.tune import tune as run_tune

    run_tune(Path(spec) if spec else None, trials, timeout, Path(out), Path(resume) if resume else None, overrides,
             say=click.echo)
