"""The `udlc` command: argument parsing only; the practitioner's commands (plot, runs, baseline, …) are in
udlc.cli.guide. Each command imports what it needs when it runs, so `udlc --help` and `udlc check` never
import torch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from udlc.errors import SpecErrors, UdlcError
from udlc.trainer.distributed import is_main_process, launched_processes, leave  # torch-free


def _fail(message: str, exit_code: int, partner_gone: bool = False) -> None:
    from udlc.trainer.launch import report

    if not report(message, exit_code, partner_gone):  # a process of `--devices N`: its launcher tells
        click.echo(message, err=True)
    leave(exit_code)


def _partner_gone(err: Exception) -> bool:
    """Whether `err` is what a process of a run on several meets when another process has gone: torch.distributed's
    own errors, or gloo's and NCCL's lost connections."""
    names = {c.__name__ for c in type(err).__mro__}
    return bool(names & {"DistBackendError", "DistNetworkError", "DistStoreError"}) or (
        launched_processes() > 1 and any(w in str(err) for w in ("gloo", "NCCL", "Connection")))


class _Group(click.Group):
    """Turns every UdlcError into its message and exit code: users never see a traceback for them.
    Anything else is a bug in udlc: one line says so (UDLC_TRACEBACK=1 shows the traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            if launched_processes() > 1:  # a process of a run on several: see udlc.trainer.distributed.leave
                leave(0)
            return result
        except UdlcError as err:
            _fail(err.render(), err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:
            if os.environ.get("UDLC_TRACEBACK"):
                raise
            if _partner_gone(err):
                _fail(f"error: process {os.environ.get('RANK', '?')} stopped: another process of the run failed or "
                      f"was stopped ({str(err).splitlines()[0][:200]})", 1, partner_gone=True)
            _fail(f"udlc: internal error: {type(err).__name__}: {err} — this is a bug in udlc; UDLC_TRACEBACK=1 "
                  "shows where", 70)


# This process is ours: skip pydantic's scan of installed packages for plugins (~30 ms of `udlc check`).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="udlc")
def main() -> None:
    """udlc — write a network and its training in YAML; check, train, export to ONNX, predict."""


_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a spec value, e.g. --set train.epochs=3 (validated like the file).")


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@click.option("--only-udlc", is_flag=True,
              help="Skip files without a top-level `udlc:` key (pre-commit hands the hook every YAML file).")
@_set
def check(specs: tuple[str, ...], fmt: str, only_udlc: bool, overrides: tuple[str, ...]) -> None:
    """Validate specs, infer their shapes and check them against their task and data (no torch).
    Exit 2 if any has errors."""
    from udlc.spec.loader import is_udlc_spec
    from udlc.tasks import compile_spec
    from udlc.tasks.check import data_listing

    if only_udlc:
        specs = tuple(path for path in specs if is_udlc_spec(path))

    results, failed = [], False
    for path in specs:
        if str(path).endswith(".map.yaml"):  # a weight mapping (udlc.weights): its rules, not a spec
            from udlc.weights import Mapping

            try:
                rules = len(Mapping.load(path).rules)
            except UdlcError as e:
                failed = True
                results.append({"file": path, "ok": False,
                                "errors": e.to_json() if isinstance(e, SpecErrors) else [e.to_json()]})
                if fmt == "text":
                    click.echo(e.render(), err=True)
            else:
                results.append({"file": path, "ok": True, "mapping": True, "rules": rules})
                if fmt == "text":
                    click.echo(f"OK {path}  (weight mapping: {rules} rules)")
            continue
        try:
            compiled = compile_spec(path, overrides)
        except UdlcError as e:
            failed = True
            errors = e.to_json() if isinstance(e, SpecErrors) else [e.to_json()]
            results.append({"file": path, "ok": False, "errors": errors})
            if fmt == "text":
                click.echo(e.render(), err=True)
        else:
            graphs = compiled.graphs.values()
            layers, params = sum(len(g.nodes) for g in graphs), sum(g.total_params for g in graphs)
            listing = data_listing(compiled)  # sound clips' classes, counts and lengths; a picture folder's classes
            trees = _trees(compiled)  # a gradient_boosting model: no layers, its settings instead
            results.append({"file": path, "ok": True, "name": compiled.spec.name, "task": compiled.task.name,
                            "model": "gradient_boosting" if trees else "network",
                            **({"gradient_boosting": trees[1]} if trees else {}), "layers": layers, "params": params, "flops": sum(g.total_flops for g in graphs),
                            "networks": {name: {"output_shapes": [list(s or ()) for s in g.output_shapes]}
                                         for name, g in compiled.graphs.items()},
                            "output_shapes": [list(s or ()) for g in graphs for s in g.output_shapes],
                            "listing": listing})
            if fmt == "text":
                what = trees[0] if trees else f"{layers} layers, {params:,} parameters"
                click.echo(f"OK {path}  ({compiled.spec.name}: {what})")
                if listing:
                    click.echo(f"  {listing}")
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    sys.exit(2 if failed else 0)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--torch", "with_torch", is_flag=True, help="Also build the model and check the shapes by a forward pass.")
@_set
def summary(spec: str, with_torch: bool, overrides: tuple[str, ...]) -> None:
    """A table of layers: output shape, parameters, FLOPs."""
    from udlc.summary import print_summary
    from udlc.tasks import compile_spec

    compiled = compile_spec(spec, overrides)
    trees = _trees(compiled)
    if trees:  # no layers to tabulate: what is fitted, with every setting (the written ones and the defaults)
        click.echo(f"{compiled.spec.name}: {trees[0]}\nsettings: "
                   + ", ".join(f"{k} {json.dumps(v)}" for k, v in trees[1].items())
                   + "\nno layers: the trees are grown by `udlc train` (run.json's `iterations` counts them)")
        return
    print_summary(compiled)
    if with_torch:
        from udlc.compiler.lower import cross_check

        for name, graph in compiled.graphs.items():
            click.echo((f"{name}: " if len(compiled.graphs) > 1 else "") + cross_check(graph))


def _trees(compiled) -> tuple[str, dict] | None:
    """A gradient_boosting model in words ("gradient-boosted trees (classes, log_loss): max_iter 10") and all its
    settings; None for a network. Check time: no torch, no scikit-learn."""
    from udlc.spec.model import tree_model
    from udlc.tasks.boosting import TREE_LOSSES

    settings = tree_model(compiled.spec)
    if settings is None:
        return None
    loss = compiled.spec.loss.type
    kind = "classes" if loss == "cross_entropy" else "values"
    written = ", ".join(f"{k} {json.dumps(getattr(settings, k))}" for k in type(settings).model_fields
                        if k in settings.model_fields_set)
    return (f"gradient-boosted trees ({kind}, {TREE_LOSSES[loss]}){': ' + written if written else ''}",
            settings.model_dump())


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec language (what editors use to complete specs)."""
    from udlc.compiler.schema import schema_json
    from udlc.tasks import TASKS

    click.echo(schema_json(TASKS))


@main.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Root folder for run folders (runs/<name>/<run-id>/).")
@click.option("--resume", type=click.Path(),
              help="Continue a stopped or killed run from its last checkpoint (--set train.epochs=N extends it).")
@click.option("--init-from", type=click.Path(),
              help="Start from weights: a udlc run, a .safetensors file, a torch state dict or a Hugging Face "
                   "folder (the spec's `init.from`); without --map, where tensor name and shape match.")
@click.option("--map", "map_", metavar="NAME|FILE",
              help="With --init-from: the mapping of its tensor names to the network's (a shipped mapping's name, "
                   "e.g. gpt2, or a .map.yaml file).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the run folder.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train N runs with seeds seed, seed+1, … and print each result's mean ± std over them.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train on N processes (torchrun's launcher; a GPU each on CUDA) with DDP, or FSDP under "
                   "train.strategy: fsdp. train.batch_size stays the global batch.")
@_set
def train(spec: str | None, out: str, resume: str | None, init_from: str | None, map_: str | None, quiet: bool,
          seeds: int, devices: int, overrides: tuple[str, ...]) -> None:
    """Train a spec (and export it when the spec has export.onnx); prints the run folder at the end."""
    if map_ and not init_from:
        raise UdlcError("--map says how --init-from's tensors map to the network: give --init-from too")
    if devices > 1:
        if launched_processes() > 1:
            raise UdlcError("--devices starts processes itself: give it without torchrun, or torchrun without it")
        from udlc.tasks import compile_spec
        from udlc.trainer.launch import launch

        if spec and not resume:  # a mistake in the spec is told once, before any process starts
            compile_spec(spec, overrides)
        options = [("--out", out), ("--resume", resume), ("--init-from", init_from), ("--map", map_),
                   ("--seeds", str(seeds))]
        launch(devices, ["train", *([spec] if spec else []), *(x for o, v in options if v for x in (o, v)),
                         *(["-q"] if quiet else []), *(x for o in overrides for x in ("--set", o))])
        return

    def finish(run_dir: Path) -> None:
        """Export (when the spec asks), draw curves.png, print the run folder: the main process's part."""
        from udlc.runs import RunFolder

        if not is_main_process():
            return
        if RunFolder.open(run_dir).compiled().spec.export.onnx is not None:
            from udlc.exporter.onnx import export_run

            path = export_run(run_dir)
            if not quiet:
                click.echo(f"exported {path}")
        from udlc.runs.plot import plot_runs

        curves = plot_runs([run_dir], run_dir / "curves.png")
        if not quiet:
            click.echo(f"curves {curves}")
        click.echo(str(run_dir))

    if resume:
        if spec or init_from or seeds > 1:
            raise UdlcError("--resume continues a run as it was: give no SPEC, --init-from or --seeds with it")
        from udlc.trainer.run import resume_run

        finish(resume_run(Path(resume), overrides, quiet=quiet))
        return
    if not spec:
        raise UdlcError("give a SPEC file to train, or --resume RUN")
    from udlc.tasks import compile_spec

    if init_from:  # as the spec's `init:`, so it is checked as the file's would be and the run's spec.yaml says it
        from udlc.compiler.pipeline import Override

        where = {"from": (str(Path(init_from).resolve()), "--init-from", init_from),
                 "map": (map_ if not map_ or Path(map_).name == map_ and not map_.endswith((".yaml", ".yml"))
                         else str(Path(map_).resolve()), "--map", map_ or "")}
        overrides = (*overrides, *(Override(f"init.{key}={json.dumps(value)}", option, typed)
                                   for key, (value, option, typed) in where.items()))
    compiled = compile_spec(spec, overrides)  # before importing torch: a mistake is told at once
    from udlc.trainer.run import train_spec

    if seeds == 1:
        finish(train_spec(compiled, out=Path(out), quiet=quiet))
        return
    from udlc.guide.seeds import seed_overrides, seed_summary

    runs = []
    for seed in seed_overrides(compiled.spec.init_seed, seeds):  # the first run is the spec's own
        run = train_spec(compile_spec(spec, (*overrides, seed)), out=Path(out), quiet=quiet)
        finish(run)
        runs.append(run)
    if is_main_process():
        click.echo("\n".join(seed_summary(runs)))


@main.command()
@click.argument("run", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default RUN/model.onnx).")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="Also write an int8 model (model.int8.onnx), scored and timed beside the float one.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="With --quantize: the most test accuracy the int8 model may lose (for a regression: the "
                   "relative increase of its test MSE); more, and it is not written.")
@click.option("--triton", "triton", metavar="REPO", type=click.Path(),
              help="Instead, write a Triton model repository: REPO/<name>/1/model.onnx and REPO/<name>/config.pbtxt "
                   "for each file the run exports (exported first if need be); Triton and KServe serve it.")
@click.option("--max-batch", type=click.IntRange(min=0),
              help="With --triton: max_batch_size, the largest batch Triton's dynamic batcher forms (default 64; "
                   "0: no batching).")
@click.option("--overwrite", is_flag=True, help="With --triton: replace the run's models already in REPO.")
@_set
def export(run: str, output: str | None, quantize: str | None, max_drop: float, triton: str | None,
           max_batch: int | None, overwrite: bool, overrides: tuple[str, ...]) -> None:
    """Export a run's model to ONNX, checked against torch in onnxruntime (or, with --triton, into a Triton
    model repository). RUN may also be a spec (.yaml): exported as initialized, with the weights its `init:` loads
    and nothing trained (default output SPEC.onnx), e.g. a spec written by `udlc import`."""
    if Path(run).suffix in (".yaml", ".yml"):
        if quantize or triton or overwrite or max_batch is not None:
            raise UdlcError("a spec is exported as initialized: --quantize and --triton take a run folder (they "
                            "score on its test split or copy its files) — train it, or drop them")
        from udlc.exporter.initialized import export_spec

        path, notes = export_spec(Path(run), Path(output) if output else None, overrides)
        for note in notes:
            click.echo(note, err=True)
        click.echo(str(path))
        return
    if overrides:
        raise UdlcError("--set changes a spec: a run folder is exported as it was trained — drop --set")
    if triton:
        from udlc.exporter.triton import MAX_BATCH, export_triton

        if output or quantize:
            raise UdlcError("--triton copies the run's own files (RUN/*.onnx) into REPO: -o and --quantize do not "
                            "apply — drop them")
        for folder in export_triton(Path(run), Path(triton), MAX_BATCH if max_batch is None else max_batch, overwrite):
            click.echo(str(folder))
        return
    if overwrite or max_batch is not None:
        raise UdlcError("--max-batch and --overwrite are options of --triton REPO — add it, or drop them")
    from udlc.exporter.onnx import export_run

    path = export_run(Path(run), Path(output) if output else None)
    click.echo(str(path))
    if quantize:
        from udlc.exporter.quantize import quantize_run

        click.echo("\n".join(quantize_run(Path(run), path, max_drop)))


@main.command(name="eval")
@click.argument("run", type=click.Path())
def eval_(run: str) -> None:
    """Recompute a run's test metrics from its best checkpoint."""
    from udlc.trainer.evaluate import evaluate_run

    for key, value in evaluate_run(Path(run)).items():
        click.echo(f"{key} {value:.4f}")


from udlc.cli import guide, serving, weights  # noqa: E402,F401  (they register their commands on `main`)
