"""task: forecasting — one network reads the past values of a series and predicts its next `horizon` values
(regression over future steps), judged against the last-value baseline.

    task: forecasting
    data: {source: sine_mixture}         # x: the past 32 values (32, 1); y: the next 8
    model:
      input: [T, 1]                      # any context length; one value per step
      layers: [{lstm: {hidden_size: 64, id: enc}}, {seq_pool: {mode: last, from: enc.out}}, {linear: 8}]
    loss: mse

The data is a series set (`series: true` in spec/sources.py), or a file whose samples are windows already
cut: an .npz of x (N, context[, 1]) and y (N, horizon), or a CSV / .npy whose feature columns are the past
values in time order and whose target is the next one. The model's output width is the horizon.

Every evaluated split also reports `baseline_loss`, the spec's loss for the last observed value repeated
over the horizon (in the targets' units, as `loss` is), and `relative_loss` = loss / baseline_loss: below 1
the model beats persistence. Both are minimized, so early stopping and plateau may watch them.

Normalization: the input and the target are the same series, so both are scaled with one shift and one
scale fitted on the training inputs — not per time step, and not the targets apart. The network then sees
past and future on one scale: a level it reads is the level it writes, persistence is a plain copy in its
own units, and a symbolic context length (T) needs no per-step statistics (there are none for unseen steps).

Feedback (`task: {forecasting: {feedback: true}}`): the network predicts the next value at every step, its
output shaped as its input ([T, 1] in, (T, 1) out: cells, one-way recurrent layers, a linear per step), and
the horizon is made by feeding each prediction back as the next input (udlc.tasks.feedback), in training
(the loss is on the fed-back predictions) and in the exported file alike:

    task: {forecasting: {feedback: true}}
    model:
      input: [T, 1]
      layers: [{lstm_cell: {hidden_size: 51, id: c1}}, {lstm_cell: {hidden_size: 51, from: c1.out, id: c2}},
               {linear: {out_features: 1, from: c2.out}}]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.spec.sources import SOURCES, BuiltinSet
from udlc.spec.training import CLASSIFICATION_LOSSES
from udlc.tasks.checks import located
from udlc.tasks.registry import register
from udlc.tasks.supervised import Supervised, SupervisedState, raw

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

SERIES_HINT = "use a series set (sine_mixture), or a file of windows: an .npz of x (N, context, 1) and y (N, horizon)"


class ForecastingOptions(StrictModel):
    type: Literal["forecasting"] = "forecasting"
    feedback: bool = Field(False, description="the network predicts the next value at every step (output shaped "
                           "as the input); the horizon is made by feeding each prediction back as the next input")


@dataclass
class ForecastingState(SupervisedState):
    input_norm: tuple[Any, Any]  # (shift, scale) tensors of the inputs: the baseline's last values in their units
    horizon: int  # values per target: with feedback, how many predictions are fed back


@register
class Forecasting(Supervised):
    name = "forecasting"
    example = "forecasting.yaml"  # tests/specs/contract/: what the contract test trains
    mixes_targets = False  # a series' windows and their next values: nothing to blend them with yet
    config = ForecastingOptions
    description = "one network predicts a series' next values from its past ones; reports the last-value baseline"

    # ---- check time -----------------------------------------------------------------------------------

    def check_data(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        # What makes a spec a forecast comes first; the data's header is read only for one that is.
        errors = self.check_series(compiled, base)
        if errors or not self.options.feedback:
            return errors or super().check_data(compiled, base)
        return self.check_feedback_data(compiled, base)

    def check_outputs(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        """A fed-back network predicts one value per step, shaped as its input: its last step is the next input."""
        errors = super().check_outputs(compiled, base)
        graph = self.graph(compiled)
        if errors or not self.options.feedback or len(graph.inputs) != 1:
            return errors
        (shape,), out = graph.inputs.values(), graph.shape_of(graph.outputs[0])
        if out is not None and tuple(out) == tuple(shape):
            return []
        node = graph.nodes[graph.outputs[0].partition(".")[0]]
        got = f"({', '.join(map(str, out))})" if out is not None else "no tensor"
        return [SpecError(f"with feedback the network predicts the next value at every step, so its output is "
                          f"shaped as its input ({', '.join(map(str, shape))}); this one gives {got}",
                          path=node.path, span=node.span,
                          hint="keep the steps to the end and finish with one value per step: `linear: 1` "
                               "(no seq_pool); or drop `feedback` and predict the horizon at once")]

    def check_feedback_data(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        """The data's header against the input and the loss; the output is the series' own shape (above)."""
        from udlc.data.file_kinds import peek
        from udlc.data.peek import mismatches

        spec, doc = compiled.spec, compiled.doc
        try:
            signature = peek(spec.data, compiled.base_dir)
        except SpecError as e:
            return [located(e, doc)]
        (shape,) = self.graph(compiled).inputs.values()
        return [SpecError(m.message, path=".".join(base + ("input",)) if m.where == "input" else "loss",
                          span=doc.span(base + ("input",), key=True) if m.where == "input" else doc.span(("loss",)),
                          hint=m.hint)
                for m in mismatches(signature, shape, None, spec.loss.type, spec.data.task)]

    def check_series(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        errors = []
        if spec.loss.type in CLASSIFICATION_LOSSES:
            errors.append(SpecError(f"task forecasting regresses future values; {spec.loss.type} is a classification "
                                    "loss", path="loss", span=doc.span(("loss",)), hint="use mse, mae or huber"))
        if spec.data.task == "classification":
            errors.append(SpecError("task forecasting regresses future values, but data.task is classification",
                                    path="data.task", span=doc.span(("data", "task")),
                                    hint="drop data.task, or set it to regression"))
        entry = SOURCES.find(spec.data.source)
        if isinstance(entry, BuiltinSet) and not entry.series:
            errors.append(SpecError(f"{entry.name} is not a series: task forecasting reads windows of one series' "
                                    "past values", path="data.source", span=doc.span(("data", "source")),
                                    hint=SERIES_HINT))
        (shape,) = self.graph(compiled).inputs.values()
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            errors.append(SpecError(f"task forecasting reads one value per step, but model.input is "
                                    f"[{', '.join(map(str, shape))}]", path=".".join(base + ("input",)),
                                    span=doc.span(base + ("input",), key=True),
                                    hint="give the past values as input: [T, 1] (or [context, 1])"))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        names = super().logged(spec, has_val)
        return names + ["val_baseline_loss", "val_relative_loss"] if has_val else names

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        """The windows, split, then scaled with one shift and scale for inputs and targets alike."""
        from udlc.data import prepare

        spec = compiled.spec
        (shape,) = self.graph(compiled).inputs.values()
        try:
            data = prepare(spec.data.model_copy(update={"normalize": "none"}), shape, compiled.base_dir, spec.seed,
                           "regression")
        except SpecError as e:
            raise located(e, compiled.doc) from None
        share_normalization(data, spec.data.normalize)
        if not self.options.feedback:  # a fed-back network's output is the series' shape, checked at check time
            self.check_loaded(compiled, data)
        return data

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        """run.json's record; `feedback`: the horizon the exported file feeds back (None: predicted at once)."""
        return {**super().info(compiled, state), "feedback": state.horizon if self.options.feedback else None}

    def forward(self, s: Any, x: Any) -> tuple[Any, ...]:
        if not self.options.feedback:
            return super().forward(s, x)
        from udlc.tasks.feedback import feed_back

        return (feed_back(s.models[s.run_state.net], x, s.run_state.horizon),)

    def start(self, compiled: Compiled, data: Any, device: Any) -> ForecastingState:
        import torch

        norm = data.normalization  # the baseline's last values, back in the series' units
        return ForecastingState(**vars(super().start(compiled, data, device)), input_norm=tuple(
            torch.as_tensor(a.reshape(-1), device=device) for a in (norm.shift, norm.scale)),
            horizon=int(data.y_train.shape[1]) if len(data.y_train.shape) > 1 else 1)

    splits_evaluation = False  # its baseline reads the whole split itself

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        row = super().evaluate(s, batches)
        baseline = self.baseline_loss(s.run_state, batches)
        # a baseline of 0 (a constant series) cannot be beaten: the ratio is then undefined
        row.update(baseline_loss=baseline, relative_loss=row["loss"] / baseline if baseline > 0 else float("nan"))
        return row

    def baseline_loss(self, st: ForecastingState, batches: Any) -> float:
        """The spec's loss, in the targets' units, of repeating each window's last value over the horizon."""
        import torch

        lasts, ys = [], []
        for batch in batches.epoch_batches(None):
            xb = batch[st.input]
            lasts.append(xb.reshape(len(xb), -1)[:, -1:].float())
            ys.append(batch["target"])
        shift, scale = st.input_norm
        last, y = torch.cat(lasts) * scale + shift, torch.cat(ys)
        if st.target_norm is not None:
            y = raw(st, y)
        return st.loss_fn(last.expand_as(y), y).item()


def share_normalization(data: Any, kind: str) -> None:
    """Scale a Dataset prepared without normalization: one shift and scale, fitted on the training inputs,
    for every input and target value (see the module's docstring)."""
    import numpy as np

    from udlc.data import Normalization
    from udlc.data.arrays import LazyRows

    def chunks(x: Any) -> Any:
        return (c for _, c in x.chunks()) if isinstance(x, LazyRows) else [x]

    norm = Normalization.fit_chunks(kind, chunks(data.x_train), tuple(data.x_train.shape[1:]), axis=None)
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        x = x.subset(np.arange(len(x)), norm.apply_normalization) if isinstance(x, LazyRows) \
            else norm.apply_normalization(x)
        setattr(data, f"x_{split}", x)
        setattr(data, f"y_{split}", norm.apply_normalization(y) if kind != "none" else y)
    data.normalization = norm
    # the same numbers shaped for a (horizon,) target; regression values are un-scaled with it everywhere
    data.target_normalization = None if kind == "none" else \
        Normalization(kind, norm.shift.reshape(1), norm.scale.reshape(1))
