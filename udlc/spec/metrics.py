"""Metrics: each registered once with its config, the name it is logged under, whether higher is better, and
its implementation. The implementations follow scikit-learn's definitions (tests compare them on random
data); they take torch tensors and import torch only when they run, so `udlc check` stays torch-free."""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import PositiveInt

from udlc.errors import UdlcError, did_you_mean, one_of
from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class MetricEntry(Entry):
    higher_is_better: bool
    task: Literal["classification", "regression"]  # what the outputs must be: class scores, or values
    # (cfg, outputs (B, C) float, targets, how the loss turns outputs into answers) -> the value
    compute: Callable[[Any, Any, Any, str], float]
    # The logged name (after train_/val_/test_), formatted with the config's fields: "top{k}_accuracy".
    logged: str = ""

    def logged_name(self, cfg: Any) -> str:
        return (self.logged or self.name).format(**{f: getattr(cfg, f) for f in self.config.model_fields})

    def logs(self, name: str) -> bool:
        """Is `name` (without its split prefix) logged by some config of this metric?"""
        pattern = "".join(re.escape(text) + (".+" if field is not None else "")
                          for text, field, _, _ in string.Formatter().parse(self.logged or self.name))
        return re.fullmatch(pattern, name) is not None


METRICS: Registry[MetricEntry] = Registry("metric")


def metric_name(metric: Any) -> str:
    """The name a metric is logged under (and monitored by): accuracy, top5_accuracy, f1_macro, …"""
    return METRICS[metric.type].logged_name(metric)


def higher_is_better(logged: str) -> bool:
    """For a logged value (val_accuracy, val_top5_accuracy, train_loss, …): is a larger one an improvement?"""
    split, name = re.fullmatch(r"((?:train_|val_|test_)?)(.*)", logged).groups()  # type: ignore[union-attr]
    if name == "loss" or name.endswith("_loss"):  # every loss (val_aux_loss too) is minimized
        return False
    entry = next((e for e in METRICS if e.logs(name)), None)
    if entry is None:
        known = [split + n for n in ["loss", *(_default_name(e) for e in METRICS)]]
        raise UdlcError(f"'{logged}' is not a logged value — {did_you_mean(logged, known) or one_of(known)}")
    return entry.higher_is_better


def compute_metrics(metrics: list, out: Any, y: Any, answers: str) -> dict[str, float]:
    """Each of the spec's metrics over a whole split's outputs, under its logged name. `answers` is the
    loss's (udlc.spec.losses): how outputs become classes or values."""
    out = out.float()
    return {METRICS[m.type].logged_name(m): METRICS[m.type].compute(m, out, y, answers) for m in metrics}


def _default_name(entry: MetricEntry) -> str:
    try:
        return entry.logged_name(entry.config())
    except ValueError:  # a required field: no default config to name
        return entry.name


# ---- classification: outputs are class scores ---------------------------------------------------


def class_scores(out: Any, answers: str) -> Any:
    """(B, C) scores whose argmax is the predicted class. A single sigmoid logit z becomes (0, z): softmax of
    that pair is (1 - sigmoid(z), sigmoid(z)), so binary and multi-class share one code path."""
    if answers == "sigmoid" and out.shape[-1] == 1:
        import torch

        return torch.cat([torch.zeros_like(out), out], dim=-1)
    return out


def predictions(out: Any, answers: str) -> Any:
    """Class indices: the argmax of the class scores (the sign of a single binary logit)."""
    return class_scores(out, answers).argmax(dim=-1)


def _labels(y: Any) -> Any:
    return y.reshape(-1).long()


def _accuracy(cfg: Any, out: Any, y: Any, answers: str) -> float:
    return (predictions(out, answers) == _labels(y)).double().mean().item()


def _top_k(cfg: Any, out: Any, y: Any, answers: str) -> float:
    scores = class_scores(out, answers)
    k = min(cfg.k, scores.shape[-1])  # k >= classes: every answer is a hit, as in sklearn
    return (scores.topk(k, dim=-1).indices == _labels(y)[:, None]).any(-1).double().mean().item()


def _f1_macro(cfg: Any, out: Any, y: Any, answers: str) -> float:
    """The mean F1 over every class that occurs in the targets or the predictions (sklearn's labels);
    a class with no true positives scores 0 (sklearn's zero_division)."""
    pred, true = predictions(out, answers), _labels(y)
    if not len(true):
        return math.nan
    n = int(max(pred.max().item(), true.max().item())) + 1
    confusion = (true * n + pred).bincount(minlength=n * n).reshape(n, n).double()
    tp = confusion.diag()
    support = confusion.sum(0) + confusion.sum(1)  # predicted + actual: 2 tp + fp + fn
    present = support > 0
    return (2 * tp[present] / support[present]).mean().item()


class Accuracy(StrictModel):
    type: Literal["accuracy"] = "accuracy"


class TopK(StrictModel):
    type: Literal["top_k"] = "top_k"
    k: PositiveInt = 5


class F1Macro(StrictModel):
    type: Literal["f1_macro"] = "f1_macro"


METRICS.register(MetricEntry(config=Accuracy, higher_is_better=True, task="classification", compute=_accuracy))
METRICS.register(MetricEntry(config=TopK, main_arg="k", higher_is_better=True, task="classification",
                             compute=_top_k, logged="top{k}_accuracy", examples=("top_k", {"top_k": 2})))
METRICS.register(MetricEntry(config=F1Macro, higher_is_better=True, task="classification", compute=_f1_macro))

# ---- regression: outputs are values, one column per target -------------------------------------
# Multi-output values are averaged over columns with equal weight (sklearn's 'uniform_average'), so a
# column with a large scale does not dominate. Sums run in float64, as sklearn's do.


def _columns(out: Any, y: Any) -> tuple[Any, Any]:
    out = out.double().reshape(len(out), -1)
    return out, y.double().reshape(len(out), -1)


def _mae(cfg: Any, out: Any, y: Any, answers: str) -> float:
    out, y = _columns(out, y)
    return (out - y).abs().mean(0).mean().item()


def _rmse(cfg: Any, out: Any, y: Any, answers: str) -> float:
    out, y = _columns(out, y)
    return (out - y).pow(2).mean(0).sqrt().mean().item()


def _r2(cfg: Any, out: Any, y: Any, answers: str) -> float:
    out, y = _columns(out, y)
    if len(y) < 2:
        return math.nan  # undefined for one sample (sklearn warns and returns nan)
    residual = (y - out).pow(2).sum(0)
    total = (y - y.mean(0)).pow(2).sum(0)
    # A constant target column scores 1 when predicted exactly, else 0 (sklearn's force_finite).
    per_column = (1 - residual / total.clamp_min(1e-300)).where(total > 0, (residual == 0).double())
    return per_column.mean().item()


class MAEMetric(StrictModel):
    type: Literal["mae"] = "mae"


class RMSE(StrictModel):
    type: Literal["rmse"] = "rmse"


class R2(StrictModel):
    type: Literal["r2"] = "r2"


METRICS.register(MetricEntry(config=MAEMetric, higher_is_better=False, task="regression", compute=_mae))
METRICS.register(MetricEntry(config=RMSE, higher_is_better=False, task="regression", compute=_rmse))
METRICS.register(MetricEntry(config=R2, higher_is_better=True, task="regression", compute=_r2))

Metric = METRICS.union()
