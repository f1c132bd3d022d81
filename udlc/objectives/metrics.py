"""The metrics' implementations, by the names udlc.spec.metrics registers. They follow scikit-learn's definitions
(tests compare them on random data); they take torch tensors and import torch only when they run."""

from __future__ import annotations

import math
from typing import Any, Callable

from udlc.objectives import implements
from udlc.spec.metrics import METRICS

# (cfg, outputs (B, C) float, targets, how the loss turns outputs into answers) -> the value
Compute = Callable[[Any, Any, Any, str], float]


def compute_metrics(metrics: list, out: Any, y: Any, answers: str) -> dict[str, float]:
    """Each of the spec's metrics over a whole split's outputs, under its logged name. `answers` is the loss's
    (udlc.spec.losses): how outputs become classes or values."""
    out = out.float()
    return {METRICS[m.type].logged_name(m): COMPUTE[m.type](m, out, y, answers) for m in metrics}


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


# ---- dense classification: class scores on axis 1, each pixel one sample ----------------------------


def _pixels(out: Any, y: Any) -> tuple[Any, Any]:
    """(predicted, true) class of every pixel, flat: the argmax over axis 1 of (B, C, ...) scores."""
    return out.argmax(dim=1).reshape(-1), y.reshape(-1).long()


def _pixel_accuracy(cfg: Any, out: Any, y: Any, answers: str) -> float:
    pred, true = _pixels(class_scores(out, answers) if out.ndim == 2 else out, y)
    return (pred == true).double().mean().item()


def _mean_iou(cfg: Any, out: Any, y: Any, answers: str) -> float:
    """IoU of each class that occurs in the targets or the predictions, averaged (sklearn's jaccard_score
    with average='macro' over the flattened pixels)."""
    pred, true = _pixels(class_scores(out, answers) if out.ndim == 2 else out, y)
    if not len(true):
        return math.nan
    n = int(max(pred.max().item(), true.max().item())) + 1
    confusion = (true * n + pred).bincount(minlength=n * n).reshape(n, n).double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean().item()


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


def _psnr(cfg: Any, out: Any, y: Any, answers: str) -> float:
    out, y = _columns(out, y)
    span = cfg.data_range if cfg.data_range is not None else (y.max() - y.min()).item()
    mse = (out - y).pow(2).mean().item()
    if mse == 0:
        return math.inf
    return 10 * math.log10(span**2 / mse) if span > 0 else math.nan


COMPUTE: dict[str, Compute] = dict(implements(METRICS, {
    "accuracy": _accuracy,
    "top_k": _top_k,
    "f1_macro": _f1_macro,
    "pixel_accuracy": _pixel_accuracy,
    "mean_iou": _mean_iou,
    "mae": _mae,
    "rmse": _rmse,
    "r2": _r2,
    "psnr": _psnr,
}))
