"""Fitting `model: {gradient_boosting: ...}`: scikit-learn's HistGradientBoosting on the rows a network of the same
spec would train on (the task's load_data: the same split, standardization and `fraction`), into a run folder like
any run's: spec.yaml and run.json, one metrics row per logged iteration (train_loss, val_loss and the spec's
metrics, by the same loss and metric implementations as a network's), results.json with the test split's.

A fitted ensemble is kept as its ONNX tree ensemble (checkpoints/trees.onnx, converted by skl2onnx and checked
against scikit-learn's own predictions on every split before it is written), never pickled: `udlc export` turns
it into model.onnx (udlc.exporter.trees) as it turns a network's safetensors into one.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, TYPE_CHECKING

import numpy as np

from udlc.errors import UdlcError
from udlc.runs import RunFolder

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled

LOGGED_ROWS = 50  # metrics rows at most: iterations spread over the fit (each row scores every split once)
ML_OPSET = 3  # ai.onnx.ml's opset for the tree ensemble (the default domain's is export.onnx.opset)
TINY = float(np.finfo(np.float32).tiny)  # the least probability a log is taken of: log(0) would be -inf


def train_trees(compiled: Compiled, out: Path, resume: RunFolder | None, quiet: bool, init_from: Path | None,
                on_epoch: Callable[[dict[str, Any]], None] | None, ending: Any) -> Path:
    """Fit the spec's trees into a new run folder under `out`; returns the folder. `ending` (trainer.run.Ending)
    records a failure in run.json as for a network's run; spec.yaml and run.json are written as for any run."""
    from udlc.tasks.boosting import info
    from udlc.trainer.starting import write_run_files

    spec, task = compiled.spec, compiled.task
    if resume is not None:
        raise UdlcError(f"{resume} fitted its trees in one go: there is nothing to resume — train the spec again")
    if init_from is not None:
        raise UdlcError("--init-from starts a network from another run's weights; gradient_boosting has none to "
                        "start from — leave --init-from out")
    data = task.load_data(compiled)
    x = {split: np.asarray(getattr(data, f"x_{split}"), np.float32).reshape(len(getattr(data, f"x_{split}")), -1)
         for split in ("train", "val", "test")}
    y = {split: np.asarray(getattr(data, f"y_{split}")).reshape(-1) for split in ("train", "val", "test")}
    run = RunFolder.create(out, spec.name)
    write_run_files(run, compiled, info(compiled, data))
    ending.run, ending.started = run, time.time()
    import sklearn

    run.update_info(status="running", device="cpu", started=_now(ending.started), ended=None, error=None,
                    versions={**run.info["versions"], "scikit-learn": sklearn.__version__})
    model = estimator(compiled, data.task)
    with_val = bool(len(x["val"]))
    stop = spec.model.gradient_boosting.early_stopping
    model.fit(x["train"], y["train"], **({"X_val": x["val"], "y_val": y["val"]} if stop else {}))
    fitted = time.time() - ending.started
    rows = log_rows(compiled, run, model, data, x, y, with_val, on_epoch)
    results = {"checkpoint": "trees"}
    if len(x["test"]):
        results.update({f"test_{k}": v for k, v in scores(compiled, data, predictions(model, x["test"]),
                                                          y["test"]).items()})
    worst = write_checkpoint(compiled, run, model, x)
    run.write_results(results)
    ended = time.time()
    run.update_info(status="done", ended=_now(ended), seconds=round(ended - ending.started, 3), epochs_done=None,
                    best_epoch=None, iterations=int(model.n_iter_), fit_seconds=round(fitted, 3),
                    checkpoint_parity=worst, diagnosis=None)
    if not quiet:
        print(f"run {run} · gradient_boosting · {model.n_iter_} iterations"
              f"{' (early stopping)' if stop and model.n_iter_ < model.max_iter else ''} in {fitted:.2f}s · "
              f"{len(x['train'])}/{len(x['val'])}/{len(x['test'])} train/val/test samples", flush=True)
        if rows:
            print("last: " + "  ".join(f"{k} {v:.4f}" for k, v in rows[-1].items() if k != "epoch"), flush=True)
        print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items() if isinstance(v, float)), flush=True)
    return run.path


def estimator(compiled: Compiled, target: str) -> Any:
    """The scikit-learn model the spec's settings and loss describe, seeded by the run's seed."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from udlc.tasks.boosting import TREE_LOSSES

    spec = compiled.spec
    settings = spec.model.gradient_boosting.model_dump()
    stop = settings.pop("early_stopping")
    cls = HistGradientBoostingClassifier if target == "classification" else HistGradientBoostingRegressor
    # early_stopping False, not scikit-learn's 'auto' (which holds out its own part of the training rows past
    # 10,000): the trees see the same training split as a network, and stop on the spec's validation split.
    return cls(loss=TREE_LOSSES[spec.loss.type], early_stopping=stop, random_state=spec.init_seed, **settings)


def predictions(model: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C), or standardized values (N, 1)."""
    return model.predict_proba(x) if hasattr(model, "predict_proba") else model.predict(x).reshape(-1, 1)


def scores(compiled: Compiled, data: Any, predicted: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The spec's loss and metrics of predictions, by the implementations a network is scored with: the log of a
    probability is a logit (softmax gives it back), and values are scored in the targets' units."""
    import torch

    from udlc.objectives.losses import make_loss
    from udlc.objectives.metrics import compute_metrics
    from udlc.spec.losses import LOSSES

    spec = compiled.spec
    if data.task == "classification":
        out, target = torch.from_numpy(np.log(np.maximum(predicted, TINY))).float(), torch.from_numpy(y).long()
    else:
        norm = data.target_normalization
        raw = (lambda v: norm.invert(v.reshape(-1, 1))) if norm is not None else (lambda v: v.reshape(-1, 1))
        out, target = torch.from_numpy(raw(predicted)).float(), torch.from_numpy(raw(y)).float()
    loss = make_loss(spec.loss, torch.device("cpu"))
    return {"loss": float(loss(out, target).item()),
            **compute_metrics(spec.metrics, out, target, LOSSES[spec.loss.type].answers)}


def log_rows(compiled: Compiled, run: RunFolder, model: Any, data: Any, x: dict, y: dict, with_val: bool,
             on_epoch: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """metrics.csv and metrics.jsonl: the fit after some of its iterations (its `epoch` column counts them), from
    the ensemble's staged predictions; what a network logs per epoch."""
    from udlc.trainer.logging import EpochLog

    n = int(model.n_iter_)
    at = set(np.unique(np.linspace(1, n, min(n, LOGGED_ROWS)).round().astype(int)).tolist())
    staged = "staged_predict_proba" if hasattr(model, "predict_proba") else "staged_predict"
    streams = {s: getattr(model, staged)(x[s]) for s in (("train", "val") if with_val else ("train",))}
    log = EpochLog(run.path, n, quiet=True)
    rows = []
    try:
        for i in range(1, n + 1):
            now = {s: next(stream) for s, stream in streams.items()}
            if i not in at:
                continue
            row: dict[str, Any] = {"epoch": i, "train_loss": scores(compiled, data, _columns(now["train"]),
                                                                     y["train"])["loss"]}
            if with_val:
                row.update({f"val_{k}": v for k, v in scores(compiled, data, _columns(now["val"]), y["val"]).items()})
            log.epoch(row)
            rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
    finally:
        log.close()
    return rows


def _columns(values: np.ndarray) -> np.ndarray:
    return values if values.ndim == 2 else values.reshape(-1, 1)


def write_checkpoint(compiled: Compiled, run: RunFolder, model: Any, x: dict) -> float:
    """The ensemble as ONNX (skl2onnx) in checkpoints/trees.onnx, on standardized rows: checked in onnxruntime
    against scikit-learn on every split and on rows beyond them before it is written. Returns the largest
    difference found."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    from udlc.spec.training import OnnxExport

    options = compiled.spec.export.onnx or OnnxExport()
    classify = hasattr(model, "predict_proba")
    with warnings.catch_warnings():  # skl2onnx's attributes of booleans, which onnx warns it will refuse one day
        warnings.simplefilter("ignore", DeprecationWarning)
        proto = to_onnx(model, x["train"][:1], target_opset={"": options.opset, "ai.onnx.ml": ML_OPSET},
                        options={id(model): {"zipmap": False}} if classify else None)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    rows = np.concatenate([*x.values(), 3 * rng.standard_normal((64, x["train"].shape[1]))]).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: rows})[-1].reshape(len(rows), -1)
    expected = predictions(model, rows)
    worst = float(np.abs(got - expected).max(initial=0.0))
    if not np.allclose(got, expected, atol=options.atol, rtol=options.rtol):
        raise UdlcError(f"the trees' ONNX conversion (skl2onnx) differs from scikit-learn by up to {worst:.3g} "
                        f"(atol {options.atol:g}, rtol {options.rtol:g}); nothing was written — loosen "
                        "export.onnx.atol/rtol only if the difference is expected")
    path = run.checkpoint("trees").with_suffix(".onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(proto.SerializeToString())
    tmp.replace(path)
    return worst


def _now(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
