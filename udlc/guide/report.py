"""`udlc report RUN [-o FILE]`: one self-contained HTML page about a run — its story (run.json), the diagnosis
of its curves, the spec as trained, every network's layers with shapes, parameters and FLOPs, the curves
(inline SVG), the test results and the epochs, a classifier's confusion matrix and per-class scores on the
test split (from the final checkpoint), and the environment. The page is drawn by udlc.guide.report_html;
this module gathers what it shows, as plain data that tests can check."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

from udlc.errors import UdlcError
from udlc.runs import RunFolder
from udlc.runs.diagnosis import diagnose
from udlc.spec.model import tree_model
from udlc.guide.report_html import render

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


@dataclass
class NetworkTable:
    """One network's layers, as `udlc summary` shows them, and where each came from in the spec."""

    name: str
    rows: list[dict[str, Any]]  # layer, type, inputs, shape, params, flops, line (None where unknown)
    total_params: int
    total_flops: int
    output: str
    note: str = ""  # the symbols' sizes that FLOPs were counted at


@dataclass
class Classification:
    """A classifier on the test split, with the final checkpoint: rows are true classes, columns predicted."""

    classes: list[str]
    matrix: list[list[int]]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    checkpoint: str

    @property
    def total(self) -> int:
        return sum(map(sum, self.matrix))

    @property
    def accuracy(self) -> float:
        return sum(self.matrix[i][i] for i in range(len(self.matrix))) / max(self.total, 1)


@dataclass
class Report:
    run: RunFolder
    info: dict[str, Any]
    spec_text: str
    diagnosis: dict[str, str] | None
    diagnosis_source: str  # where the diagnosis comes from, or why there is none
    networks: list[NetworkTable]
    networks_note: str  # why there are no tables (the spec no longer compiles), else ""
    rows: list[dict[str, str]]  # metrics.csv
    curves_svg: str | None
    # The networks drawn (udlc.guide.draw): as `udlc draw` draws them, and with every block open when any is collapsed.
    drawing_svg: str | None
    drawing_open_svg: str | None
    curves_note: str
    results: dict[str, Any] | None
    classification: Classification | None
    classification_note: str  # why there is no confusion matrix, else ""
    environment: dict[str, Any] = field(default_factory=dict)


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """The report of `run_dir`, written to `output` (default RUN/report.html); returns the path written."""
    output = Path(output) if output is not None else Path(run_dir) / "report.html"
    if output.suffix.lower() not in (".html", ".htm"):
        raise UdlcError(f"-o {output}: the report is an HTML page; give a file ending in .html")
    if output.is_dir():
        raise UdlcError(f"-o {output} is a folder; give a file ending in .html")
    report = build_report(run_dir)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render(report), encoding="utf-8")
    except OSError as e:
        raise UdlcError(f"cannot write {output}: {e.strerror or e}") from None
    return output


def build_report(run_dir: Path) -> Report:
    run = RunFolder.open(run_dir)
    try:
        info = run.info
    except (ValueError, OSError) as e:
        raise UdlcError(f"{run.info_file} cannot be read as JSON: {e}") from None
    if not isinstance(info, dict):
        raise UdlcError(f"{run.info_file} holds no JSON object: is {run.path} a udlc run folder?")
    rows = run.metrics_rows()
    compiled, networks, networks_note, drawn, drawn_open = None, [], "", None, None
    try:
        compiled = run.compiled()
        networks = network_tables(compiled)
        drawn, drawn_open = drawing(compiled)
        networks_note = trees_note(compiled, info) if tree_model(compiled.spec) is not None else ""
    except UdlcError as e:
        networks_note = f"the run's spec.yaml does not compile now:\n{e.render()}"
    diagnosis, source = diagnosis_of(info, rows, compiled)
    svg, curves_note = curves(run, rows)
    results = read_results(run)
    classification, why = (None, "the run's spec does not compile") if compiled is None else classify(run, compiled)
    return Report(run=run, info=info, spec_text=run.spec_file.read_text(errors="replace"), diagnosis=diagnosis,
                  diagnosis_source=source, networks=networks, networks_note=networks_note, rows=rows,
                  curves_svg=svg, curves_note=curves_note, drawing_svg=drawn, drawing_open_svg=drawn_open, results=results, classification=classification,
                  classification_note=why, environment=environment(info))


# ---- the pieces ----------------------------------------------------------------------------------------


def diagnosis_of(info: dict[str, Any], rows: list[dict[str, str]], compiled: Compiled) -> tuple[dict | None, str]:
    if info.get("diagnosis"):
        return info["diagnosis"], "run.json (written when training ended)"
    if not rows:
        return None, "no epoch has ended yet, so there are no curves to read"
    floor_zero = compiled.task.loss_floor_zero if compiled is not None else True
    try:
        found = diagnose(rows, floor_zero)
    except (KeyError, ValueError) as e:  # a metrics.csv edited or cut short by hand
        return None, f"metrics.csv cannot be read: {e}"
    if found is None:
        return None, "this task logs no train_loss, which the diagnosis reads"
    return found.to_json(), f"computed now from metrics.csv's {len(rows)} epoch{'s' * (len(rows) != 1)}"


def shape_text(shape: Any, dtype: str | None = None) -> str:
    """(T, 256), or (T,) int64: the dtype is named when it is not float32 (as `udlc summary` prints)."""
    if shape is None:
        return "?"
    text = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    return text + ("" if dtype in (None, "float32") else f" {dtype}")


def drawing(compiled: Compiled) -> tuple[str | None, str | None]:
    """The networks drawn as `udlc draw` draws them, and drawn with every block open when that differs; none for
    a model with no network (gradient_boosting)."""
    from udlc.guide.draw import drawings, to_svg

    if tree_model(compiled.spec) is not None:
        return None, None
    default, opened = drawings(compiled), drawings(compiled, "all")
    differs = any(len(a.boxes) != len(b.boxes) for a, b in zip(default, opened))
    return to_svg(default), to_svg(opened) if differs else None


def trees_note(compiled: Compiled, info: dict[str, Any]) -> str:
    """What the Networks section says of a gradient_boosting run: its trees, in place of a table of layers."""
    settings = tree_model(compiled.spec)
    grown = f"{info['iterations']} boosting iterations fitted" if info.get("iterations") else "not fitted yet"
    return (f"No network: gradient-boosted trees (scikit-learn's HistGradientBoosting, loss {compiled.spec.loss.type}), "
            f"{grown}.\nsettings: " + ", ".join(f"{k} {json.dumps(v)}" for k, v in settings.model_dump().items()))


def network_tables(compiled: Compiled) -> list[NetworkTable]:
    from udlc.compiler.infer import REPORT_SIZE

    tables = []
    for name, g in compiled.graphs.items():
        rows = [{"layer": i, "type": "input", "inputs": "", "shape": shape_text(s, g.dtype_of(i)), "params": 0,
                 "flops": 0, "line": None} for i, s in g.inputs.items()]
        for node in g.nodes.values():
            names = node.out_names or ("",) * len(node.shapes)
            shape = ", ".join(f"{n}: " * bool(node.out_names) + shape_text(s, d)
                              for n, s, d in zip(names, node.shapes, node.dtypes))
            span = node.span
            line = None if span is None else (span.line if Path(span.file).name == "spec.yaml"
                                              else f"{Path(span.file).name}:{span.line}")
            rows.append({"layer": node.name, "type": node.op, "inputs": ", ".join(node.inputs), "shape": shape or "?",
                         "params": node.params, "flops": node.flops, "line": line})
        note = f"FLOPs at {', '.join(f'{s} = {REPORT_SIZE}' for s in g.symbols)}" if g.symbols else ""
        tables.append(NetworkTable(name, rows, g.total_params, g.total_flops,
                                   ", ".join(shape_text(s) for s in g.output_shapes if s), note))
    return tables


def curves(run: RunFolder, rows: list[dict[str, str]]) -> tuple[str | None, str]:
    """The curves as inline SVG (udlc plot's figure), or why there are none."""
    if not rows:
        return None, "no epoch has ended yet (metrics.csv is empty)"
    from udlc.runs.plot import plot_runs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "curves.svg"
        try:
            plot_runs([run.path], path)
        except UdlcError as e:
            return None, str(e)
        except (KeyError, ValueError) as e:  # a metrics.csv edited or cut short by hand
            return None, f"metrics.csv cannot be plotted: {e}"
        text = path.read_text(encoding="utf-8")
    return text[text.find("<svg"):], ""  # drop the XML declaration and doctype: the page holds the element


def read_results(run: RunFolder) -> dict[str, Any] | None:
    if not run.results_file.is_file():
        return None
    try:
        return json.loads(run.results_file.read_text())
    except ValueError:
        return None


def classifier_answers(compiled: Compiled) -> str | None:
    """How a classifier's outputs become classes ('softmax' or 'sigmoid'); None for a run whose model.onnx gives
    no class per sample (its served kind says, udlc.tasks.served)."""
    from udlc.tasks.served import KINDS

    served = compiled.task.served(compiled)[0]
    return served.answers if KINDS[served.kind].classes_per_sample else None


def classify(run: RunFolder, compiled: Compiled) -> tuple[Classification | None, str]:
    """The confusion matrix and per-class scores on the test split, or why there are none."""
    answers = classifier_answers(compiled)
    if answers is None:
        return None, (f"not a classifier (task {compiled.task.name}, loss "
                      f"{getattr(getattr(compiled.spec, 'loss', None), 'type', 'none')}): no confusion matrix")
    if compiled.spec.data.split[2] <= 0:
        return None, "the spec has no test split (data.split's third fraction is 0)"
    if tree_model(compiled.spec) is not None:  # the fitted trees answer, as `udlc eval` scores them
        from udlc.trainer.evaluate import tree_answers

        try:
            probabilities, truth, _ = tree_answers(run, compiled)
        except UdlcError as e:  # not fitted yet, or the data moved or changed since
            return None, f"the test split cannot be predicted now: {e}"
        predicted, checkpoint = probabilities.argmax(axis=1), "trees"
    else:
        final = run.final_checkpoint(compiled.spec)
        if not final.with_suffix(".safetensors").is_file():
            return None, "the run has no checkpoint yet, so there are no predictions to count"
        from udlc.trainer.evaluate import evaluation_setup

        try:
            s, data = evaluation_setup(run, compiled)
            predicted, truth = test_predictions(s, data, answers)
        except UdlcError as e:  # the data moved or changed since training
            return None, f"the test split cannot be predicted now: {e}"
        checkpoint = final.name
    if predicted is None:
        return None, "the test split is empty"
    if predicted.ndim != 1:
        return None, "the model gives several sigmoid outputs (multi-label): no single class to count"
    classes = [str(c) for c in (run.info.get("classes") or [])]
    n = max(len(classes), int(max(predicted.max(), truth.max())) + 1)
    classes += [str(i) for i in range(len(classes), n)]
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(n))
    matrix = confusion_matrix(truth, predicted, labels=labels)
    p, r, f, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    return Classification(classes, matrix.tolist(), p.tolist(), r.tolist(), f.tolist(),
                          [int(x) for x in support], checkpoint), ""


def test_predictions(s: Any, data: Any, answers: str) -> tuple[Any, Any]:
    """(predicted, true) class indices over the test split as numpy arrays; (None, None) without test samples.
    The same batches and forward pass as the task's evaluate (a binary classifier's one logit: class 1 when
    the logit is > 0); `predicted` has two axes for a multi-label model."""
    import torch

    from udlc.objectives.metrics import predictions

    task = s.task
    batches = task.batches(data, "test", batch_size=256, shuffle=False, device=s.device)
    if batches is None:
        return None, None
    for model in s.models.values():
        model.eval()
    outs, ys = [], []
    with torch.no_grad():
        for batch in batches.epoch_batches(None):
            outs.append(task.test_outputs(s, batch).float())
            ys.append(batch["target"])
    if not outs:
        return None, None
    out, y = torch.cat(outs), torch.cat(ys)
    if answers == "sigmoid" and out.shape[-1] > 1:
        return (out > 0).long().numpy(), y.long().numpy()
    return predictions(out, answers).reshape(-1).numpy(), y.reshape(-1).long().numpy()


def environment(info: dict[str, Any]) -> dict[str, Any]:
    """The run's versions and device (from run.json), and the machine the report is made on, labelled so."""
    return {
        "trained with": {**{k: str(v) for k, v in (info.get("versions") or {}).items()},
                         "device": str(info.get("device", "unknown"))},
        "this report made on": {"python": platform.python_version(), "os": platform.platform(),
                                "cpus": str(os.cpu_count() or "unknown")},
    }
