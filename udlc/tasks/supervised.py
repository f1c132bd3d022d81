"""task: supervised (the default): one network learns inputs → targets with the spec's `loss`.

Also the base of tasks that train one network on the data's targets with several outputs (auxiliary).
Regression targets arrive standardized (udlc.data); every loss and metric this task reports, and
every prediction the exported model makes, is in the targets' own units.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal, TYPE_CHECKING

from udlc.errors import SpecError, SpecErrors, UdlcError
from udlc.spec.base import StrictModel
from udlc.spec.augments import MIXING_AUGMENTS
from udlc.spec.data import IMAGE_AUGMENTS
from udlc.spec.model import tree_model
from udlc.spec.sources import SOURCES, PictureSet
from udlc.spec.training import CLASSIFICATION_LOSSES, metric_name
from udlc.tasks.checks import check_sections, check_subsets, located
from udlc.tasks.registry import RunState, Served, Task, register
from udlc.tasks.served import CLASSES, VALUES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


class SupervisedOptions(StrictModel):
    type: Literal["supervised"] = "supervised"


@dataclass
class SupervisedState(RunState):
    net: str  # the network the data feeds
    input: str  # its one input, as batches name it
    ids: list[str]  # the trained outputs, as the user named them
    loss_weights: list[float]  # each output's weight in the total loss
    loss_fn: Callable[[Any, Any], Any]
    target_norm: tuple[Any, Any] | None  # (shift, scale) tensors bringing standardized values back in their units
    mix: Callable[[Any, Any, Any], tuple[Any, Any]] | None  # mixup/cutmix of a batch's inputs and targets


@register
class Supervised(Task):
    name = "supervised"
    example = "supervised.yaml"  # tests/specs/contract/: what the contract test trains
    config = SupervisedOptions
    description = "one network learns inputs → targets with `loss` (the default)"
    mixes_targets = True
    splits_evaluation = True  # evaluate below gathers every process's share of the split
    draws_subsets = True  # and so do autoencoder, auxiliary and forecasting (segmentation's pairs do not)

    # ---- what is trained: the graph's outputs, each with a weight in the total loss -------------------

    def output_ids(self, spec: Any, graph: Any) -> list[str]:
        """The trained outputs by the names a user wrote (model.outputs), or the last layer's name."""
        model = next(iter(spec.networks.values()))
        return list(model.outputs) if model.outputs else list(graph.outputs)

    def weights(self, ids: list[str]) -> list[float]:
        """Each output's weight in the total loss."""
        return [1.0] * len(ids)

    def network(self, compiled: Compiled) -> str:
        return next(iter(compiled.graphs), "model")  # `model:` names no graph when it is a tree ensemble

    def graph(self, compiled: Compiled) -> Any:
        return next(iter(compiled.graphs.values()))

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        if tree_model(spec) is not None:  # no network: gradient-boosted trees (udlc.tasks.boosting)
            from udlc.tasks.boosting import check_boosting

            return check_boosting(compiled, check_files) + check_subsets(compiled, self)  # a fixed set's limit
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
        errors += check_sections(compiled, self)
        errors += image_augments(compiled, graph)
        if spec.data.text is not None:
            errors.append(SpecError(f"task {self.name} reads numbers; a text column is read by task "
                                    "sequence_classification", path="data.text", span=doc.span(("data", "text"), key=True),
                                    hint="write `task: sequence_classification`, or drop `text`"))
        dense = isinstance(SOURCES.find(spec.data.source), PictureSet)  # pictures with picture-shaped targets
        if spec.data.targets is not None or dense:
            where = ("data", "source") if dense else ("data", "targets")
            errors.append(SpecError(f"{'`targets` pairs' if not dense else spec.data.source + ' pairs'} each picture "
                                    f"with a picture-shaped target, and task {self.name} learns a class or values per "
                                    "sample", path=".".join(where), span=doc.span(where, key=not dense),
                                    hint="write `task: segmentation` for masks or `task: image_to_image` for target "
                                         "pictures" + ("" if dense else ", or drop `targets` and sort the pictures "
                                                                        "into class folders")))
        if SOURCES.is_text(spec.data.source):
            errors.append(SpecError(f"{spec.data.source} is text, and task {self.name} learns from samples",
                                    path="data.source", span=doc.span(("data", "source")),
                                    hint="train a next-token model with `task: language_model`"))
        if not errors and (check_files or not spec.data.is_file()):
            errors += self.check_data(compiled, base)
        return errors

    def check_outputs(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        graph = self.graph(compiled)
        if len(graph.outputs) == 1:
            return []
        return [SpecError(f"task {self.name} trains one output, but `outputs` names {len(graph.outputs)}",
                          path=".".join(base + ("outputs",)), span=compiled.doc.span(base + ("outputs",), key=True),
                          hint="name one output, or train several with "
                               "`task: {auxiliary: {loss_weights: {main: 1.0, aux: 0.3}}}`")]

    def check_data(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        """The data's header against the model's input and outputs and the loss, as training would find them."""
        from udlc.compiler.infer import steps as infer_steps
        from udlc.data.file_kinds import peek
        from udlc.data.peek import mismatches

        spec, doc, graph = compiled.spec, compiled.doc, self.graph(compiled)
        try:
            signature = peek(spec.data, compiled.base_dir)
        except SpecError as e:
            return [located(e, doc)]
        compiled.listing = signature.listing  # what `udlc check` prints of the data, read once
        (shape,) = graph.inputs.values()
        errors = []
        for output in graph.outputs:
            for m in mismatches(signature, shape, graph.shape_of(output), spec.loss.type, spec.data.task,
                                infer_steps(s for node in graph.nodes.values() for s in node.shapes)):
                if m.where == "input":
                    path = base + ("input",)
                    span = doc.span(path, key=True)
                elif m.where == "output":
                    node = graph.nodes[output]
                    path, span = tuple(node.path.split(".")), node.span
                    m = flat_targets(m, graph.shape_of(output), signature.target_width)
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

    def served(self, compiled: Compiled) -> list[Served]:
        from udlc.spec.losses import LOSSES

        answers = LOSSES[compiled.spec.loss.type].answers  # a classification loss's softmax or sigmoid
        return [Served(self.network(compiled), 0, VALUES if answers == "identity" else CLASSES, answers)]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        """The spec's data, split and normalized; a data mistake becomes a SpecError at its place in the spec."""
        from udlc.data import prepare

        spec = compiled.spec
        if tree_model(spec) is not None:  # rows as the data has them: a tree ensemble declares no input
            from udlc.tasks.boosting import load_rows

            return load_rows(compiled)
        # A classification loss makes the task classification; otherwise the source's own task stands.
        kind = spec.data.task or ("classification" if spec.loss.type in CLASSIFICATION_LOSSES else None)
        (shape,) = self.graph(compiled).inputs.values()
        try:
            data = prepare(spec.data, shape, compiled.base_dir, spec.seed, kind)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        self.check_loaded(compiled, data)
        return data

    def check_loaded(self, compiled: Compiled, data: Any) -> None:
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

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        """What run.json records for export and predict."""
        graph, data = self.graph(compiled), state.data
        target_norm = data.target_normalization
        return {
            "task": self.name,
            "target": data.task,  # classification or regression (udlc.tasks.served.task_and_target reads old runs)
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

    def sizes(self, state: Any) -> str:
        data = state.data
        return f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}"

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """A split's batches of named tensors: the model's input by its name, and `target`."""
        from udlc.data import make_batches

        x, y = getattr(state.data, f"x_{split}"), getattr(state.data, f"y_{split}")
        if not len(x):
            return None
        return make_batches({state.input: x, "target": y}, batch_size=batch_size, shuffle=shuffle, device=device)

    def start(self, compiled: Compiled, data: Any, device: Any) -> SupervisedState:
        """The network the data feeds, the loss, the outputs' weights and the target scale for this run."""
        import torch

        if tree_model(compiled.spec) is not None:  # what steps through batches (doctor, lr-find, eval) has no network
            raise UdlcError("this spec's model is gradient_boosting, which has no network to step through: train it "
                            "with `udlc train`, compare it with `udlc baseline`, and read its run's results.json")

        from udlc.objectives.losses import make_loss

        spec, net = compiled.spec, self.network(compiled)
        ids = self.output_ids(spec, compiled.graphs[net])
        norm = data.target_normalization
        mixing = [aug for aug in spec.data.augment if aug.type in MIXING_AUGMENTS]
        return SupervisedState(
            data, net=net, input=next(iter(self.graph(compiled).inputs)), ids=ids, loss_weights=self.weights(ids),
            loss_fn=make_loss(spec.loss, device),
            target_norm=None if norm is None else tuple(
                torch.as_tensor(a.reshape(-1), device=device) for a in (norm.shift, norm.scale)),
            mix=partial(mixed, mixing, data.n_classes if spec.loss.type == "cross_entropy" else None)
            if mixing else None)

    def forward(self, s: Any, x: Any) -> tuple[Any, ...]:
        """The trained outputs for a batch of inputs."""
        outs = s.models[s.run_state.net](x)
        return outs if isinstance(outs, tuple) else (outs,)

    def test_outputs(self, s: Any, batch: Any) -> Any:
        return self.forward(s, batch[s.run_state.input])[0]

    def trained(self, state: SupervisedState) -> str | tuple[str, ...]:
        """The network (or networks) the loss trains."""
        return state.net

    def corrupted(self, s: Any, x: Any) -> Any:
        """A training batch's inputs as the network reads them: augmented (data.augment) where the spec says."""
        return s.augment(x, s.generator) if s.augment is not None else x

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        st: SupervisedState = s.run_state
        xb, yb = self.corrupted(s, batch[st.input]), batch["target"]
        if st.mix is not None:
            xb, yb = st.mix(xb, yb, s.generator)
        with s.autocast():
            outs = self.forward(s, xb)
            loss = self.total(st, [st.loss_fn(out, yb) for out in outs])
        value = s.update(self.trained(st), loss, (xb, yb))
        if st.target_norm is not None:  # report in the targets' units, not the standardized ones
            value = self.total(st, [st.loss_fn(raw(st, o.detach()), raw(st, yb)) for o in outs]).item()
        return {"loss": value}, len(xb)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        from udlc.spec.losses import LOSSES
        from udlc.objectives.metrics import compute_metrics

        st: SupervisedState = s.run_state
        trained = self.trained(st)
        models = [s.models[n] for n in ((trained,) if isinstance(trained, str) else trained)]
        was_training = models[0].training
        for model in models:
            model.eval()
        columns: list[list[Any]] = []
        ys = []
        with torch.no_grad():
            for batch in batches.epoch_batches(None):
                xb, yb = batch[st.input], batch["target"]
                with s.autocast():
                    outs = self.forward(s, xb)
                rows = s.counted(batches, len(yb))
                columns.append([o[:rows].float() for o in outs])
                ys.append(yb[:rows])
        for model in models:
            model.train(was_training)
        outs = [torch.cat(col) for col in zip(*columns)]
        y = torch.cat(ys)
        *outs, y = s.gather(batches, [*outs, y])  # a process's share: the whole split, in each
        if st.target_norm is not None:
            outs, y = [raw(st, o) for o in outs], raw(st, y)
        losses = [st.loss_fn(o, y) for o in outs]
        row = {"loss": self.total(st, losses).item()}
        if len(outs) > 1:
            row.update({f"{name}_loss": l.item() for name, l in zip(st.ids, losses)})
        row.update(compute_metrics(s.spec.metrics, outs[0], y, LOSSES[s.spec.loss.type].answers))
        return row

    def total(self, state: SupervisedState, losses: list[Any]) -> Any:
        return losses[0] if len(losses) == 1 else sum(w * l for w, l in zip(state.loss_weights, losses))


def flat_targets(m: Any, out: tuple | None, width: int | None) -> Any:
    """An output that is still a picture against this task's targets, which are read flat (one row of `width`
    values per sample): the fix is a `flatten` (no `linear` of that many values), or a dense task."""
    import math

    from udlc.data.peek import Mismatch

    if out is None or len(out) < 2 or width is None:
        return m
    same = math.prod(d for d in out if isinstance(d, int)) == width
    ending = "`flatten`" if same else f"`flatten`, `linear: {width}`"
    return Mismatch(m.where, m.message, f"this task reads targets flat ({width} values): end the model with {ending}; "
                                        "to learn picture-shaped targets as pictures, write `task: image_to_image` "
                                        "(or `task: segmentation` for class masks)")


def raw(state: SupervisedState, values: Any) -> Any:
    """Standardized regression values (outputs or targets) back in the targets' units."""
    shift, scale = state.target_norm
    return values * scale + shift


def mixed(augments: list, classes: int | None, x: Any, y: Any, generator: Any) -> tuple[Any, Any]:
    """mixup/cutmix on a batch: class indices become one-hot rows so that they mix (cross_entropy takes the
    mixed rows as class probabilities); values mix as they are."""
    import torch.nn.functional as F

    from udlc.data import mix_batch

    target = F.one_hot(y.long(), classes).to(x.dtype) if classes else y.to(x.dtype)
    return mix_batch(x, target, augments, generator)


def image_augments(compiled: Compiled, graph: Any) -> list[SpecError]:
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


def pictures(data: Any) -> dict[str, Any] | None:
    """How a folder source decodes its pictures (what `udlc predict` does to a picture file); None for others."""
    from udlc.spec.sources import is_folder

    if not is_folder(data.source) or data.sound:  # a folder of sound clips: udlc.data.audio.settings says how
        return None
    size = [data.image_size] * 2 if isinstance(data.image_size, int) else list(data.image_size)
    return {"size": size, "channels": data.channels, "resize": data.resize}
