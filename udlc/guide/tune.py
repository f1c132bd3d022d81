"""`udlc tune SPEC --trials N`: an Optuna study over the spec's `tune.space` (udlc.spec.tuning).

Each trial is the spec with the trial's values applied as --set overrides, trained by `train_spec` into the tune
folder's trials/, its metric reported every epoch so that a MedianPruner can stop a hopeless trial early:

    <out>/<name>/tune-<timestamp>/
        spec.yaml        the spec tuned (overrides applied, data paths absolute): what --resume reads
        study.db         the Optuna study (SQLite): --resume continues it
        trials/<name>/<run-id>/   each trial's run folder ("stopped" when pruned)
        best.yaml        the spec with the best trial's values written in, for `udlc train`
        history.png  importances.png
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, TYPE_CHECKING

import yaml

from udlc.errors import UdlcError
from udlc.spec.extends import load_spec
from udlc.spec.loader import Document
from udlc.spec.tuning import Distribution, copy_doc, fill_tuple, override, parse_path, settable, tune_metric

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

STUDY = "udlc"  # one study per tune folder


def tune(spec: Path | None, trials: int, timeout: float | None = None, out: Path = Path("runs"),
         resume: Path | None = None, overrides: tuple[str, ...] = (), say: Callable[[str], None] = print) -> Path:
    """Run `trials` more trials (or until `timeout` seconds) and write best.yaml and the plots; returns the folder."""
    try:
        import optuna
    except ImportError:
        raise UdlcError("tuning needs optuna: pip install 'udlc[train]'") from None
    from udlc.compiler.pipeline import apply_overrides
    from udlc.tasks import compile_doc

    if resume is not None:
        folder = Path(resume)
        if not (folder / "study.db").is_file():
            raise UdlcError(f"--resume {folder}: no study.db there — give the folder `udlc tune` printed")
        spec = spec or folder / "spec.yaml"
    elif spec is None:
        raise UdlcError("give a SPEC file to tune, or --resume TUNE_DIR")
    doc = load_spec(spec)
    apply_overrides(doc, overrides)
    compiled = compile_doc(doc)  # checks the tune section too
    if not compiled.graphs:  # model: gradient_boosting — no epochs to prune, no lr to search
        raise UdlcError(f"{spec}: udlc tune trains networks epoch by epoch; try gradient_boosting's settings with "
                        "`udlc train --set model.gradient_boosting.learning_rate=0.05` and compare the runs "
                        "(`udlc runs`, `udlc baseline`)")
    whole = absolute_paths(doc, compiled)
    base = settable(whole, compiled.spec)  # what each trial starts from
    space = dict(compiled.spec.tune.space) if compiled.spec.tune and compiled.spec.tune.space else {}
    space = space or default_space(compiled)
    for key in space:
        fill_tuple(base.data, parse_path(key), compiled.spec)
    metric = tune_metric(compiled, compiled.task)
    maximize = compiled.task.higher_is_better(metric)
    if resume is None:
        folder = new_folder(Path(out) / compiled.spec.name)
        (folder / "spec.yaml").write_text(yaml.safe_dump(whole.data, sort_keys=False, default_flow_style=None))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / 'study.db').resolve()}")
    study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True,
                                direction="maximize" if maximize else "minimize")
    done = len(study.trials)
    # Seeded, and on by the trials already run: a resumed study draws new values, not the first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=compiled.spec.seed + done)
    epochs = compiled.spec.train.epochs
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2 if epochs > 2 else 0)
    if done == 0:
        start = starting_point(base.data, space, compiled.spec)
        if start is not None:  # the spec as written is trial 0: the tune can only improve on it
            study.enqueue_trial(start)
    say(f"tuning {metric} ({'max' if maximize else 'min'}imize) over {', '.join(space)}: "
        f"{trials} trials{f' or {timeout:g} s' if timeout else ''} into {folder}")

    def objective(trial: Any) -> float:
        values = {key: suggest(trial, key, entry) for key, entry in space.items()}
        trial.set_user_attr("values", values)  # as the spec takes them: a tuple as a list, not its JSON text
        trial_doc = settable(base, compiled.spec)
        apply_overrides(trial_doc, [override(k, v) for k, v in values.items()])
        return train_trial(trial, compile_doc(trial_doc), folder / "trials", metric, maximize)

    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=(UdlcError,),
                       callbacks=[lambda _, t: say(trial_line(t, metric))])
    except KeyboardInterrupt:
        raise UdlcError(f"interrupted; the finished trials are kept — continue with: udlc tune --resume {folder} "
                        f"--trials N") from None
    finish(study, folder, whole, compiled.spec, metric, maximize, say)
    return folder


def default_space(compiled: Compiled) -> dict[str, Distribution]:
    """The textbook's order: learning rate (a decade either side), batch size (half, same, double), then weight
    decay (a decade either side, or a few values from 0 when the spec has none)."""
    spec, space = compiled.spec, {}
    for network in compiled.graphs:
        where = f"optimizers.{network}" if network in (spec.optimizers or {}) else "optimizer"
        lr = spec.optimizer_of(network).lr
        space[f"{where}.lr"] = Distribution.model_validate({"log_uniform": [lr / 10, lr * 10]})
    size = spec.train.batch_size
    space["train.batch_size"] = Distribution.model_validate(sorted({max(size // 2, 1), size, size * 2}))
    for network in compiled.graphs:
        where = f"optimizers.{network}" if network in (spec.optimizers or {}) else "optimizer"
        decay = getattr(spec.optimizer_of(network), "weight_decay", None)
        if decay is None:  # L-BFGS has no weight decay to tune
            continue
        space[f"{where}.weight_decay"] = Distribution.model_validate(
            {"log_uniform": [decay / 10, decay * 10]} if decay > 0 else [0.0, 1e-4, 1e-3, 1e-2])
    return space


def suggest(trial: Any, key: str, entry: Distribution) -> Any:
    if entry.choices is not None:
        if any(isinstance(c, list) for c in entry.choices):  # optuna's choices are scalars: a tuple as its JSON
            return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in entry.choices]))
        return trial.suggest_categorical(key, entry.choices)
    low, high = entry.bounds
    if entry.kind == "int":
        return trial.suggest_int(key, low, high, step=int(entry.step or 1))
    return trial.suggest_float(key, low, high, log=entry.kind == "log_uniform", step=entry.step)


def starting_point(data: dict, space: dict[str, Distribution], spec: Any) -> dict[str, Any] | None:
    """The spec's own values of the space's paths, when every one is inside its range. A key the file leaves out
    (`optimizer.weight_decay`) has the validated `spec`'s default."""
    start = {}
    for key, entry in space.items():
        node: Any = data
        path = parse_path(key)
        for i, part in enumerate(path):
            if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) \
                    and part < len(node):
                node = node[part]
            elif i == len(path) - 1 and isinstance(node, dict) and isinstance(part, str):
                node = getattr(spec_section(spec, path[:-1]), part, None)
            else:
                return None
        node = list(node) if isinstance(node, tuple) else node  # a default tuple, as the file would write it
        if entry.choices is not None:
            inside = node in entry.choices
        else:
            number = isinstance(node, (int, float)) and not isinstance(node, bool)
            inside = number and entry.bounds[0] <= node <= entry.bounds[1]
        if not inside:
            return None
        start[key] = json.dumps(node) if isinstance(node, list) else node  # a tuple is a choice by its JSON
    return start


def spec_section(spec: Any, path: tuple) -> Any:
    """The validated spec's part at `path` (('optimizer',) -> the optimizer's config), or None."""
    node = spec
    for part in path:
        node = node[part] if isinstance(part, int) and isinstance(node, (list, tuple)) and part < len(node) else (
            node.get(part) if isinstance(node, dict) else getattr(node, str(part), None))
    return node


def train_trial(trial: Any, compiled: Compiled, out: Path, metric: str, maximize: bool) -> float:
    """Train one trial; the metric is reported each epoch (pruning raises TrialPruned from inside the loop), and
    the trial's value is its best over the epochs."""
    import optuna

    from udlc.trainer.run import TrainingInterrupted, train_spec

    seen: list[float] = []

    def on_epoch(row: dict[str, Any]) -> None:
        value = row.get(metric)
        if value is None or not math.isfinite(value):
            return
        seen.append(value)
        trial.report(value, row["epoch"])
        if trial.should_prune():
            trial.set_user_attr("pruned_at", row["epoch"])
            raise optuna.TrialPruned()

    before = set(out.glob("*/*"))
    try:
        train_spec(compiled, out=out, quiet=True, on_epoch=on_epoch)
    except TrainingInterrupted:
        raise KeyboardInterrupt from None
    except UdlcError as e:  # a diverged trial fails alone; the study goes on
        trial.set_user_attr("error", str(e))
        raise
    finally:
        new = sorted(set(out.glob("*/*")) - before)
        if new:
            trial.set_user_attr("run", str(new[-1]))
    if not seen:
        raise UdlcError(f"no epoch logged {metric}")
    return max(seen) if maximize else min(seen)


def trial_line(trial: Any, metric: str) -> str:
    values = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    if state == "pruned":
        last = trial.last_step
        shown = f"{metric} {trial.intermediate_values[last]:.4f}  pruned at epoch {last}" if last is not None \
            else "pruned"
    elif state == "complete":
        shown = f"{metric} {trial.value:.4f}  complete"
    else:
        shown = f"failed: {trial.user_attrs.get('error', state)}"
    return f"trial {trial.number}  {values}  {shown}"


def finish(study: Any, folder: Path, whole: Document, spec: Any, metric: str, maximize: bool,
           say: Callable[[str], None]) -> None:
    """best.yaml (the spec as given, `tune:` kept, with the best values written in), the plots, the summary."""
    from udlc.compiler.pipeline import apply_overrides

    import optuna

    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if not complete:
        raise UdlcError(f"no trial completed in {folder} — see the trials above; run more with "
                        f"udlc tune --resume {folder} --trials N")
    best = study.best_trial
    best_doc = settable(whole, spec)
    values = best.user_attrs.get("values", best.params)
    apply_overrides(best_doc, [override(k, v) for k, v in values.items()])
    if "tune" in whole.data:
        best_doc.data["tune"] = whole.data["tune"]
    (folder / "best.yaml").write_text(f"# udlc tune: trial {best.number} of {folder}, {metric} {best.value:.6g}\n"
                                      + yaml.safe_dump(best_doc.data, sort_keys=False, default_flow_style=None))
    plot_history(complete, metric, maximize, folder / "history.png")
    say(f"history {folder / 'history.png'}")
    params = {k for t in complete for k in t.params}
    if len(complete) < 2 or len(params) < 2:
        say(f"importances skipped: they need 2 completed trials and 2 parameters "
            f"({len(complete)} completed, {len(params)} parameter{'s' if len(params) != 1 else ''})")
    else:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=spec.seed)
        plot_importances(optuna.importance.get_param_importances(study, evaluator=evaluator),
                         folder / "importances.png")
        say(f"importances {folder / 'importances.png'}")
    shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    say(f"best trial {best.number}: {metric} {best.value:.4f}  {shown}  run {best.user_attrs.get('run', '?')}")
    say(f"best spec {folder / 'best.yaml'}")
    say(str(folder))


def plot_history(trials: list[Any], metric: str, maximize: bool, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no display needed

    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    numbers, values = [t.number for t in trials], [t.value for t in trials]
    pick = max if maximize else min
    ax.plot(numbers, values, "o", label=metric)
    ax.step(numbers, [pick(values[: i + 1]) for i in range(len(values))], where="post", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title="optimization history (completed trials)")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_importances(importances: dict[str, float], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 1 + 0.5 * len(importances)))
    ax = figure.subplots()
    names = list(importances)[::-1]  # the most important on top
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (fANOVA)", title="parameter importances")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def absolute_paths(doc: Document, compiled: Compiled) -> Document:
    """The spec with its data file's path made absolute, so that a copy of it elsewhere still finds the data."""
    out = copy_doc(doc)
    if compiled.spec.data.is_file():
        out.data["data"]["source"] = str((compiled.base_dir / compiled.spec.data.source).resolve())
    return out


def new_folder(parent: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = parent / f"tune-{stamp}" if n == 0 else parent / f"tune-{stamp}-{n}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise UdlcError(f"cannot create a tune folder under {parent}")
