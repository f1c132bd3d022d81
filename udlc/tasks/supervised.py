"""task: supervised (the default): one network learns inputs → targets with the spec's `loss`.

Also the base of tasks that train one network on the data's targets with several outputs (auxiliary).
Regression targets arrive standardized (udlc.data); every loss and metric this task reports, and
every prediction the exported model makes, is in the targets' own units.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from udlc.errors import SpecError, SpecErrors, did_you_mean, one_of
from udlc.spec.base import StrictModel
from udlc.spec.augments import MIXING_AUGMENTS
from udlc.spec.data import IMAGE_AUGMENTS
from udlc.spec.sources import SOURCES
from udlc.spec.training import CLASSIFICATION_LOSSES, metric_name
from udlc.tasks.registry import Served, Task, register


class SupervisedOptions(StrictModel):
    type: Literal["supervised"] = "supervised"


@register
class Supervised(Task):
    name = "supervised"
    config = SupervisedOptions
    description = "one network learns inputs → targets with `loss` (the default)"
    mixes_targets = True
    splits_evaluation = True  # evaluate below gathers every process's share of the split

    # ---- what is trained: the graph's outputs, each with a weight in the total loss -------------------

    def output_ids(self, spec: Any, graph: Any) -> list[str]:
        """The trained outputs by the names a user wrote (model.outputs), or the last layer's name."""
        model = next(iter(spec.networks.values()))
        return list(model.outputs) if model.outputs else list(graph.outputs)

    def weights(self, ids: list[str]) -> list[float]:
        """Each output's weight in the total loss."""
        return [1.0] * len(ids)

    def network(self, compiled: Any) -> str:
        return next(iter(compiled.graphs))

    def graph(self, compiled: Any) -> Any:
        return next(iter(compiled.graphs.values()))

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Any, check_files: bool) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        networks = list(compiled.graphs)
        if len(networks) != 1:
            return [SpecError(f"task {self.name} trains one network, but `models` names {len(networks)}: "
                              f"{', '.join(networks)}", path="models", span=doc.span(("models",), key=True),
                              hint="give one network under `model:`")]
        base = ("model",) if spec.model is not None else ("models", networks[0])
        graph = self.graph(compiled)
        errors = self.check_outputs(compiled, base)
        if len(graph.inputs) != 1:
            errors.append(SpecError(
                f"task {self.name} feeds the data to one input, but this model has {len(graph.inputs)}: "
                f"{', '.join(graph.inputs)}", path=".".join(base + ("inputs",)), span=doc.span(base + ("inputs",), key=True),
                hint="give one `input: [shape]`"))
        errors += check_network_keys(compiled)
        errors += image_augments(compiled, graph)
        errors += check_monitors(compiled, self.logged(spec, spec.data.split[1] > 0))
        if spec.data.text is not None:
            errors.append(SpecError(f"task {self.name} reads numbers; a text column is read by task "
                                    "sequence_classification", path="data.text", span=doc.span(("data", "text"), key=True),
                                    hint="write `task: sequence_classification`, or drop `text`"))
        if SOURCES.is_text(spec.data.source):
            errors.append(SpecError(f"{spec.data.source} is text, and task {self.name} learns from samples",
                                    path="data.source", span=doc.span(("data", "source")),
                                    hint="train a next-token model with `task: language_model`"))
        if not errors and (check_files or not spec.data.is_file()):
            errors += self.check_data(compiled, base)
        return errors

    def check_outputs(self, compiled: Any, base: tuple) -> list[SpecError]:
        graph = self.graph(compiled)
        if len(graph.outputs) == 1:
            return []
        return [SpecError(f"task {self.name} trains one output, but `outputs` names {len(graph.outputs)}",
                          path=".".join(base + ("outputs",)), span=compiled.doc.span(base + ("outputs",), key=True),
                          hint="name one output, or train several with "
                               "`task: {auxiliary: {loss_weights: {main: 1.0, aux: 0.3}}}`")]

    def check_data(self, compiled: Any, base: tuple) -> list[SpecError]:
        """The data's header against the model's input and outputs and the loss, as training would find them."""
        from udlc.data.peek import mismatches, peek

        spec, doc, graph = compiled.spec, compiled.doc, self.graph(compiled)
        try:
            signature = peek(spec.data, compiled.base_dir)
        except SpecError as e:
            return [located(e, doc)]
        (shape,) = graph.inputs.values()
        errors = []
        for output in graph.outputs:
            for m in mismatches(signature, shape, graph.shape_of(output), spec.loss.type, spec.data.task):
                if m.where == "input":
                    path = base + ("input",)
                    span = doc.span(path, key=True)
                elif m.where == "output":
                    node = graph.nodes[output]
                    path, span = tuple(node.path.split(".")), node.span
                else:
                    path = ("loss",)
                    span = doc.span(path)
                errors.append(SpecError(m.message, path=".".join(str(p) for p in path), span=span, hint=m.hint))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        names = ["train_loss"]
        if has_val:
            names += ["val_loss"] + [f"val_{metric_name(m)}" for m in spec.metrics]
        return names

    def served(self, compiled: Any) -> list[Served]:
        from udlc.spec.losses import LOSSES

        return [Served(self.network(compiled), 0, LOSSES[compiled.spec.loss.type].answers)]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Any) -> Any:
        """The spec's data, split and normalized; a data mistake becomes a SpecError at its place in the spec."""
        from udlc.data import prepare

        spec = compiled.spec
        # A classification loss makes the task classification; otherwise the source's own task stands.
        kind = spec.data.task or ("classification" if spec.loss.type in CLASSIFICATION_LOSSES else None)
        graph = self.graph(compiled)
        self.net = self.network(compiled)  # batches and steps feed this network's one input
        ((self.input, shape),) = graph.inputs.items()
        try:
            data = prepare(spec.data, shape, compiled.base_dir, spec.seed, kind)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        self.check_loaded(compiled, data)
        return data

    def check_loaded(self, compiled: Any, data: Any) -> None:
        """What the data's header could not tell `check` (a CSV's classes): each output against the loaded data."""
        from udlc.spec.losses import LOSSES

        loss, graph = compiled.spec.loss, self.graph(compiled)
        errors = []
        for output in graph.outputs:
            m = LOSSES[loss.type].check(loss, graph.shape_of(output) or (), data.task, data.n_classes,
                                        tuple(data.y_train.shape[1:]))
            if m is not None:
                node = graph.nodes[output]
                path, span = (node.path, node.span) if m.at == "output" else ("loss", compiled.doc.span(("loss",)))
                errors.append(SpecError(m.message, path=path, span=span, hint=m.hint))
        if errors:
            raise SpecErrors(errors)

    def info(self, compiled: Any, data: Any) -> dict[str, Any]:
        """What run.json records for export and predict."""
        graph = self.graph(compiled)
        target_norm = data.target_normalization
        return {
            "task": data.task,
            "classes": data.classes,
            "input_names": list(graph.inputs),
            "input_shapes": [list(s) for s in graph.inputs.values()],  # as declared: symbols (T) included
            "sample_shapes": [list(data.input_shape)],  # as the data had them: the symbols' sizes in training
            "feature_columns": data.feature_columns,
            "target_column": data.target_column,
            "categories": data.categories,
            "fill_values": data.fill_values,
            "normalization": data.normalization.to_json(),
            "target_normalization": target_norm.to_json() if target_norm is not None else None,
            "pictures": pictures(compiled.spec.data),
        }

    def sizes(self, data: Any) -> str:
        return f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}"

    def batches(self, data: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """A split's batches of named tensors: the model's input by its name, and `target`."""
        from udlc.data import make_batches

        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if not len(x):
            return None
        return make_batches({self.input: x, "target": y}, batch_size=batch_size, shuffle=shuffle, device=device)

    def setup(self, s: Any, data: Any) -> None:
        """Bind the loss, the metrics and the target scale for this run."""
        import torch

        from udlc.spec.losses import LOSSES

        self.ids = self.output_ids(s.spec, s.graphs[self.net])
        self.loss_weights = self.weights(self.ids)
        self.loss_fn = LOSSES[s.spec.loss.type].build(s.spec.loss, s.device)
        norm = data.target_normalization
        self.target_norm = None if norm is None else tuple(
            torch.as_tensor(a.reshape(-1), device=s.device) for a in (norm.shift, norm.scale))
        mixing = [aug for aug in s.spec.data.augment if aug.type in MIXING_AUGMENTS]
        self.mix = partial(mixed, mixing, data.n_classes if s.spec.loss.type == "cross_entropy" else None) \
            if mixing else None

    def forward(self, s: Any, x: Any) -> tuple[Any, ...]:
        """The trained outputs for a batch of inputs."""
        outs = s.models[self.net](x)
        return outs if isinstance(outs, tuple) else (outs,)

    def test_outputs(self, s: Any, batch: Any) -> Any:
        return self.forward(s, batch[self.input])[0]

    def trained(self) -> str | tuple[str, ...]:
        """The network (or networks) the loss trains."""
        return self.net

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        xb, yb = batch[self.input], batch["target"]
        if s.augment is not None:
            xb = s.augment(xb, s.generator)
        if self.mix is not None:
            xb, yb = self.mix(xb, yb, s.generator)
        with s.autocast():
            outs = self.forward(s, xb)
            loss = self.total([self.loss_fn(out, yb) for out in outs])
        value = s.update(self.trained(), loss, (xb, yb))
        if self.target_norm is not None:  # report in the targets' units, not the standardized ones
            value = self.total([self.loss_fn(self.raw(o.detach()), self.raw(yb)) for o in outs]).item()
        return {"loss": value}, len(xb)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        from udlc.spec.losses import LOSSES
        from udlc.spec.metrics import compute_metrics

        trained = self.trained()
        models = [s.models[n] for n in ((trained,) if isinstance(trained, str) else trained)]
        was_training = models[0].training
        for model in models:
            model.eval()
        columns: list[list[Any]] = []
        ys = []
        with torch.no_grad():
            for batch in batches.epoch_batches(None):
                xb, yb = batch[self.input], batch["target"]
                with s.autocast():
                    outs = self.forward(s, xb)
                rows = len(yb) if getattr(batches, "weight", 1.0) > 0 else 0  # a Shard's stand-in row: none
                columns.append([o[:rows].float() for o in outs])
                ys.append(yb[:rows])
        for model in models:
            model.train(was_training)
        outs = [torch.cat(col) for col in zip(*columns)]
        y = torch.cat(ys)
        if getattr(batches, "processes", None) is not None:  # this process's share: the whole split, in each
            *outs, y = batches.processes.concat([*outs, y])
        if self.target_norm is not None:
            outs, y = [self.raw(o) for o in outs], self.raw(y)
        losses = [self.loss_fn(o, y) for o in outs]
        row = {"loss": self.total(losses).item()}
        if len(outs) > 1:
            row.update({f"{name}_loss": l.item() for name, l in zip(self.ids, losses)})
        row.update(compute_metrics(s.spec.metrics, outs[0], y, LOSSES[s.spec.loss.type].answers))
        return row

    def total(self, losses: list[Any]) -> Any:
        return losses[0] if len(losses) == 1 else sum(w * l for w, l in zip(self.loss_weights, losses))

    def raw(self, values: Any) -> Any:
        """Standardized regression values (outputs or targets) back in the targets' units."""
        shift, scale = self.target_norm
        return values * scale + shift


def mixed(augments: list, classes: int | None, x: Any, y: Any, generator: Any) -> tuple[Any, Any]:
    """mixup/cutmix on a batch: class indices become one-hot rows so that they mix (cross_entropy takes the
    mixed rows as class probabilities); values mix as they are."""
    import torch.nn.functional as F

    from udlc.data import mix_batch

    target = F.one_hot(y.long(), classes).to(x.dtype) if classes else y.to(x.dtype)
    return mix_batch(x, target, augments, generator)


def located(e: SpecError, doc: Any) -> SpecError:
    """A data error carries the spec path it is about (data.source, model.input); point it at that line."""
    if e.span is None and e.path:
        e.span = doc.span(tuple(int(p) if p.isdigit() else p for p in e.path.split(".")))
    return e


def check_network_keys(compiled: Any) -> list[SpecError]:
    """`optimizers:` and `schedules:` are keyed by network name."""
    errors = []
    for section in ("optimizers", "schedules"):
        for key in getattr(compiled.spec, section) or {}:
            if key not in compiled.graphs:
                errors.append(SpecError(f"no network named '{key}'", path=f"{section}.{key}",
                                        span=compiled.doc.span((section, key), key=True),
                                        hint=did_you_mean(key, compiled.graphs) or one_of(compiled.graphs)))
    return errors


def image_augments(compiled: Any, graph: Any) -> list[SpecError]:
    spec, doc = compiled.spec, compiled.doc
    errors = []
    shapes = list(graph.inputs.values())
    for i, aug in enumerate(spec.data.augment):
        if aug.type in IMAGE_AUGMENTS and (len(shapes) != 1 or len(shapes[0]) != 3):
            given = ", ".join(str(list(s)) for s in shapes)
            errors.append(SpecError(f"'{aug.type}' augments images, but the model's input is {given}",
                                    path=f"data.augment[{i}]", span=doc.span(("data", "augment", i)),
                                    hint="give model.input as [channels, height, width], or drop this augmentation"))
        elif aug.type == "random_crop" and aug.size is not None and (aug.size,) * 2 != shapes[0][1:]:
            errors.append(SpecError(f"random_crop size {aug.size} differs from the image size {list(shapes[0][1:])}",
                                    path=f"data.augment[{i}]", span=doc.span(("data", "augment", i)),
                                    hint="crops keep the image size so the model's input shape holds; "
                                         "drop `size` or set it to the image size"))
    return errors


def check_monitors(compiled: Any, logged: list[str]) -> list[SpecError]:
    """Early stopping and plateau watch a logged value."""
    spec, doc = compiled.spec, compiled.doc
    has_val = spec.data.split[1] > 0
    watchers = []
    if spec.train.early_stopping is not None:
        watchers.append((("train", "early_stopping", "monitor"), spec.train.early_stopping.monitor))
    for network in compiled.graphs:
        schedule = spec.schedule_of(network)
        if schedule.type == "plateau":
            where = ("schedules", network, "monitor") if network in (spec.schedules or {}) else ("schedule", "monitor")
            watchers.append((where, schedule.monitor))
    errors = []
    for path, name in dict.fromkeys(watchers):
        if name in logged:
            continue
        if name.startswith("val_") and not has_val:
            hint = "data.split has no validation part: give it one, or monitor train_loss"
        else:
            hint = did_you_mean(name, logged) or one_of(logged)
        errors.append(SpecError(f"'{name}' is not logged", path=".".join(path), span=doc.span(path), hint=hint))
    return errors


def pictures(data: Any) -> dict[str, Any] | None:
    """How a folder source decodes its pictures (what `udlc predict` does to a picture file); None for others."""
    from udlc.spec.sources import is_folder

    if not is_folder(data.source):
        return None
    size = [data.image_size] * 2 if isinstance(data.image_size, int) else list(data.image_size)
    return {"size": size, "channels": data.channels, "resize": data.resize}
