"""`udlc baseline SPEC`: what a network must beat on tabular and array data — the majority class (or the mean
target) and scikit-learn's HistGradientBoosting, fitted on the spec's own training split (same data, split,
seed and normalization) and scored on its test split in the targets' units, beside a run's result if given.
The model-selection advice for tables: gradient boosting first, then a network."""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

import numpy as np

from udlc.errors import UdlcError

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def baselines(compiled: Compiled) -> dict[str, dict[str, float]]:
    """Each baseline's test metrics: accuracy and f1_macro for classes; mse, mae and r2 for values."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from udlc.tasks.served import CLASSES, VALUES
    from udlc.tasks.supervised import Supervised

    task = compiled.task
    # a network of samples and targets: its model.onnx answers classes or values for samples (udlc.tasks.served)
    if not isinstance(task, Supervised) or task.served(compiled)[0].kind not in (CLASSES, VALUES):
        raise UdlcError(f"udlc baseline compares a network with baselines on samples and targets (task "
                        f"supervised); this spec's task is {task.name}")
    data = task.load_data(compiled)
    if not len(data.x_test):
        raise UdlcError("this spec's data has no test split (data.split's third fraction is 0)")
    x_train, x_test = (np.asarray(a, dtype=np.float32).reshape(len(a), -1) for a in (data.x_train, data.x_test))
    classify = data.task == "classification"
    y_train, y_test = (np.asarray(y) for y in (data.y_train, data.y_test))
    if classify:
        y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
        models = {"majority class": DummyClassifier(strategy="most_frequent"),
                  "hist gradient boosting": HistGradientBoostingClassifier(random_state=compiled.spec.seed)}
    else:
        if y_train.reshape(len(y_train), -1).shape[1] != 1:
            raise UdlcError("udlc baseline fits one target column; this data has several")
        y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
        models = {"mean target": DummyRegressor(strategy="mean"),
                  "hist gradient boosting": HistGradientBoostingRegressor(random_state=compiled.spec.seed)}
    norm = data.target_normalization
    out = {}
    for name, model in models.items():
        predicted = model.fit(x_train, y_train).predict(x_test)
        out[name] = scores(predicted, y_test, classify, norm)
    return out


def scores(predicted: np.ndarray, y: np.ndarray, classify: bool, norm: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score

    if classify:
        return {"test_accuracy": float(accuracy_score(y, predicted)),
                "test_f1_macro": float(f1_score(y, predicted, average="macro"))}
    if norm is not None:  # back in the targets' units, as udlc reports its own metrics
        predicted, y = (norm.invert(v.reshape(-1, 1)).reshape(-1) for v in (predicted, y))
    return {"test_mse": float(mean_squared_error(y, predicted)), "test_mae": float(mean_absolute_error(y, predicted)),
            "test_r2": float(r2_score(y, predicted))}
