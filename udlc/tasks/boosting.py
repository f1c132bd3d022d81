"""`model: {gradient_boosting: {...}}` under task supervised: gradient-boosted trees on rows of features.

Check time (no torch, numpy or scikit-learn): what a tree ensemble takes, each refusal at its line. Trees read
flat rows of numbers with one target (classes, or one value), so pictures, texts, graphs and series are refused,
and so is every section that trains a network (optimizer, schedule, train's epochs and batches, augmentation,
weights to start from): what check accepts, the trainer (udlc.trainer.trees) fits, with nothing ignored. The
loss names what the trees minimize, as it does for a network. The data is loaded as for a network (split,
standardized on the training split, `fraction`/`limit` applied), so a tree run and a network run of the same
data see the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from udlc.errors import SpecError, SpecErrors
from udlc.spec.sources import SOURCES, BuiltinSet, FileKind
from udlc.spec.training import CLASSIFICATION_LOSSES
from udlc.tasks.checks import located

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled

# The spec's loss → scikit-learn's: what the trees minimize (cross_entropy: log loss over the classes).
TREE_LOSSES = {"cross_entropy": "log_loss", "mse": "squared_error", "mae": "absolute_error"}
# Sections a tree ensemble has no use for, with what to write instead.
UNUSED = {
    "optimizer": "trees are not trained by gradient steps; gradient_boosting.learning_rate shrinks each tree",
    "optimizers": "trees are not trained by gradient steps",
    "schedule": "trees are not trained by gradient steps; gradient_boosting.learning_rate shrinks each tree",
    "schedules": "trees are not trained by gradient steps",
    "init": "a tree ensemble starts from no weights",
    "lora": "adapters are layers of a network",
    "tune": "udlc tune trains networks epoch by epoch; try gradient_boosting's settings with --set",
}
TRAIN_HINTS = {"epochs": "gradient_boosting.max_iter counts the trees",
               "early_stopping": "write gradient_boosting.early_stopping: true"}


def check_boosting(compiled: Compiled, check_files: bool) -> list[SpecError]:
    """Everything `udlc train` would refuse of a gradient_boosting spec, found without loading the data."""
    spec, doc = compiled.spec, compiled.doc
    errors = [SpecError(f"not used by gradient_boosting: {why}", path=key,
                        span=doc.span((key,), key=True), hint=f"drop `{key}`")
              for key, why in UNUSED.items() if key in doc.data]
    written_train = doc.data.get("train") if isinstance(doc.data.get("train"), dict) else {}
    errors += [SpecError("not used by gradient_boosting, which fits its trees in one go",
                         path=f"train.{key}", span=doc.span(("train", key), key=True),
                         hint=f"drop it; {TRAIN_HINTS[key]}" if key in TRAIN_HINTS else
                         "drop it (train.seed is the one setting trees take: their random state)")
               for key in written_train if key != "seed"]
    if spec.data.augment:
        errors.append(SpecError("not used by gradient_boosting: trees see each row as it is",
                                path="data.augment", span=doc.span(("data", "augment"), key=True),
                                hint="drop `augment`"))
    errors += check_loss(compiled) + check_source(compiled)
    settings = spec.model.gradient_boosting
    if settings.early_stopping and spec.data.split[1] == 0:
        where = ("model", "gradient_boosting", "early_stopping")
        errors.append(SpecError("early_stopping watches the validation split's loss, and data.split has none",
                                path=".".join(where), span=doc.span(where),
                                hint="give data.split a validation fraction, e.g. [0.8, 0.1, 0.1]"))
    if not errors and (check_files or not spec.data.is_file()):
        errors += check_rows(compiled)
    return errors


def check_loss(compiled: Compiled) -> list[SpecError]:
    loss, doc = compiled.spec.loss, compiled.doc
    if loss.type not in TREE_LOSSES:
        hint = ("write `loss: cross_entropy`: log loss over the classes, two included" if loss.type == "bce" else
                "write `loss: mse` (squared error) or `loss: mae` (absolute error)")
        return [SpecError(f"gradient_boosting minimizes {', '.join(TREE_LOSSES)}; not {loss.type}", path="loss",
                          span=doc.span(("loss",)), hint=hint)]
    options = {k: v for k, v in loss.model_dump().items() if k != "type" and v != type(loss).model_fields[k].default}
    if options:
        key = next(iter(options))
        return [SpecError(f"a network's loss option: gradient_boosting's {loss.type} takes none",
                          path=f"loss.{key}", span=doc.span(("loss", key)), hint=f"drop `{key}`")]
    return []


def check_source(compiled: Compiled) -> list[SpecError]:
    """Rows of features: a built-in table (not a series), or a CSV, NPZ or NPY file (not a text column or a graph)."""
    data, doc = compiled.spec.data, compiled.doc
    entry = SOURCES.find(data.source)
    for key, what in (("text", "a text column"), ("nodes", "a graph's nodes"), ("targets", "target pictures"),
                      ("audio", "sound clips")):
        if getattr(data, key, None) is not None:
            return [SpecError(f"gradient_boosting reads rows of numeric features, and data.{key} names {what}",
                              path=f"data.{key}", span=doc.span(("data", key), key=True),
                              hint="drop it, or give the model `layers` (a network)")]
    rows = (isinstance(entry, BuiltinSet) and not entry.series) or (
        isinstance(entry, FileKind) and not entry.text and not entry.folder)
    if rows:
        return []
    return [SpecError(f"gradient_boosting reads rows of numeric features; {data.source} is "
                      f"{describe(entry)}", path="data.source", span=doc.span(("data", "source")),
                      hint="give a table (a CSV, NPZ or NPY file, or iris, wine, breast_cancer, diabetes, digits, "
                           "…), or give the model `layers` (a network)")]


def describe(entry: Any) -> str:
    if isinstance(entry, FileKind):
        return "a folder of pictures or sound clips" if entry.folder else "text"
    if isinstance(entry, BuiltinSet):
        return "a series of windows (task forecasting)"
    kind = type(entry).__name__
    return {"TextSet": "text", "SequenceSet": "a set of sequences", "PictureSet": "a set of pictures"}.get(
        kind, "a set of graphs")


def check_rows(compiled: Compiled) -> list[SpecError]:
    """The data's header against the loss: classes for cross_entropy, one column of values for mse and mae."""
    from udlc.data.file_kinds import peek
    from udlc.data.peek import mismatches

    spec, doc = compiled.spec, compiled.doc
    try:
        signature = peek(spec.data, compiled.base_dir)
    except SpecError as e:
        return [located(e, doc)]
    shape = (signature.sample_size,) if signature.sample_size is not None else ("F",)
    errors = [SpecError(m.message, path="loss", span=doc.span(("loss",)), hint=m.hint)
              for m in mismatches(signature, shape, None, spec.loss.type, spec.data.task)]
    width = signature.target_width
    if not errors and spec.loss.type not in CLASSIFICATION_LOSSES and width is not None and width > 1:
        errors.append(several_targets(compiled, width))
    return errors


def several_targets(compiled: Compiled, width: int) -> SpecError:
    where = ("data", "target") if "target" in compiled.spec.data.model_fields_set else ("data", "source")
    return SpecError(f"gradient_boosting learns one target value per row; this data has {width}",
                     path=".".join(where), span=compiled.doc.span(where),
                     hint="name one target column in data.target, or give the model `layers` (a network)")


def load_rows(compiled: Compiled) -> Any:
    """The spec's data as flat rows, split and standardized as a network's would be (udlc.data.prepare); what the
    header could not tell `check` (a CSV's classes, an NPZ's target width) refused here, at its line."""
    from udlc.data import prepare

    spec = compiled.spec
    kind = spec.data.task or ("classification" if spec.loss.type in CLASSIFICATION_LOSSES else None)
    try:
        data = prepare(spec.data, None, compiled.base_dir, spec.seed, kind)
    except SpecError as e:
        raise located(e, compiled.doc) from None
    if data.task == "regression" and data.y_train.reshape(len(data.y_train), -1).shape[1] != 1:
        raise SpecErrors([several_targets(compiled, data.y_train.reshape(len(data.y_train), -1).shape[1])])
    if data.task == "classification" and len(set(data.y_train.tolist())) < 2:
        raise SpecErrors([SpecError("the training split holds one class: trees have nothing to tell apart",
                                    path="data.source", span=compiled.doc.span(("data", "source")),
                                    hint="check the target column, or train on more rows (data.fraction)")])
    return data


def info(compiled: Compiled, data: Any) -> dict[str, Any]:
    """What run.json records for export and predict: the same keys as a network's (Supervised.info)."""
    norm = data.target_normalization
    shape = list(data.input_shape)
    return {
        "task": compiled.task.name if compiled.task is not None else "supervised",
        "model": "gradient_boosting",
        "target": data.task,
        "classes": data.classes,
        "input_names": ["x"],
        "input_shapes": [shape],
        "sample_shapes": [shape],
        "feature_columns": data.feature_columns,
        "target_column": data.target_column,
        "categories": data.categories,
        "fill_values": data.fill_values,
        "normalization": data.normalization.to_json(),
        "target_normalization": norm.to_json() if norm is not None else None,
        "pictures": None,
    }
