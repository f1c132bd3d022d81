"""Metrics: each registered once with its config, the name it is logged under, whether higher is better and
what outputs it measures. Their implementations are in udlc.objectives.metrics, under the same names."""

import re
import string
from dataclasses import dataclass
from typing import Any, Literal, Optional

from pydantic import PositiveFloat, PositiveInt

from udlc.errors import UdlcError, did_you_mean, one_of
from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class MetricEntry(Entry):
    higher_is_better: bool
    task: Literal["classification", "regression"]  # what the outputs must be: class scores, or values
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


def _default_name(entry: MetricEntry) -> str:
    try:
        return entry.logged_name(entry.config())
    except ValueError:  # a required field: no default config to name
        return entry.name


# ---- classification: outputs are class scores ---------------------------------------------------


class Accuracy(StrictModel):
    type: Literal["accuracy"] = "accuracy"


class TopK(StrictModel):
    type: Literal["top_k"] = "top_k"
    k: PositiveInt = 5


class F1Macro(StrictModel):
    type: Literal["f1_macro"] = "f1_macro"


METRICS.register(MetricEntry(config=Accuracy, higher_is_better=True, task="classification"))
METRICS.register(MetricEntry(config=TopK, main_arg="k", higher_is_better=True, task="classification",
                             logged="top{k}_accuracy", examples=("top_k", {"top_k": 2})))
METRICS.register(MetricEntry(config=F1Macro, higher_is_better=True, task="classification"))


# Dense prediction (task segmentation): class scores on axis 1 — (B, C) or (B, C, H, W) against (B,) or (B, H, W)
# labels — every pixel one sample.

class PixelAccuracy(StrictModel):
    type: Literal["pixel_accuracy"] = "pixel_accuracy"


class MeanIoU(StrictModel):
    """The mean over classes of |predicted ∩ true| / |predicted ∪ true|, over every pixel of the split; a class
    absent from both the targets and the predictions is left out (scikit-learn's jaccard_score, average='macro')."""

    type: Literal["mean_iou"] = "mean_iou"


METRICS.register(MetricEntry(config=PixelAccuracy, higher_is_better=True, task="classification"))
METRICS.register(MetricEntry(config=MeanIoU, higher_is_better=True, task="classification"))

# ---- regression: outputs are values, one column per target -------------------------------------


class MAEMetric(StrictModel):
    type: Literal["mae"] = "mae"


class RMSE(StrictModel):
    type: Literal["rmse"] = "rmse"


class R2(StrictModel):
    type: Literal["r2"] = "r2"


METRICS.register(MetricEntry(config=MAEMetric, higher_is_better=False, task="regression"))
METRICS.register(MetricEntry(config=RMSE, higher_is_better=False, task="regression"))
METRICS.register(MetricEntry(config=R2, higher_is_better=True, task="regression"))


class PSNR(StrictModel):
    """Peak signal-to-noise ratio in dB, 10·log10(range² / MSE) with one MSE over every value of the split (task
    image_to_image's pictures); `data_range` is the targets' span (16 for digits' 0..16), by default the span
    max − min of the split's own targets."""

    type: Literal["psnr"] = "psnr"
    data_range: Optional[PositiveFloat] = None


METRICS.register(MetricEntry(config=PSNR, main_arg="data_range", higher_is_better=True, task="regression",
                             examples=("psnr", {"psnr": 16})))

Metric = METRICS.union()
