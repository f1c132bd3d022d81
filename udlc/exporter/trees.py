"""A gradient_boosting run's model.onnx: its fitted trees (checkpoints/trees.onnx, the tree ensemble skl2onnx wrote
and udlc.trainer.trees checked against scikit-learn) inside the graph every served file of samples has.

As for a network (udlc.exporter.serving), the file stands on its own: raw rows in, answers out, the metadata the
one a network's file carries (common_metadata). The front standardizes with the training split's statistics in the
same float32 arithmetic (for trees a monotone relabelling of each feature, kept so that a tree run and a network
run of one spec read the same rows); a classifier gives `logits` and `probabilities` as the `classes` kind names
them (the logits are the probabilities' logs: softmax gives them back), a regressor its `prediction` in the
targets' units. The file is checked in onnxruntime against the checkpoint on raw rows before it replaces anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from udlc.errors import UdlcError
from udlc.runs import RunFolder

TINY = float(np.finfo(np.float32).tiny)  # the least probability a log is taken of: log(0) would be -inf
CHECK_ROWS = 67  # raw rows of the parity check: any batch size works, as for a network's file


def export_trees(run: RunFolder, compiled: Any, path: Path) -> Path:
    """Write the run's served file to `path` (model.onnx); returns it."""
    import onnx

    from udlc.data import Normalization
    from udlc.exporter.metadata import ExportError, common_metadata
    from udlc.spec.training import OnnxExport
    from udlc.tasks.served import CLASSES, VALUES

    ckpt = run.checkpoint("trees").with_suffix(".onnx")
    if not ckpt.is_file():
        raise UdlcError(f"{run} has no fitted trees yet (checkpoints/trees.onnx) — train it first")
    info = run.info
    classify = info.get("target") == "classification"
    norm = Normalization.from_json(info["normalization"])
    target_norm = info.get("target_normalization")
    target_norm = Normalization.from_json(target_norm) if target_norm and not classify else None
    trees = onnx.load(str(ckpt))
    outputs = ["logits", "probabilities"] if classify else ["prediction"]
    proto = serving_graph(trees, norm, target_norm, classify)
    for key, value in common_metadata(run, compiled, CLASSES if classify else VALUES, ["x"], outputs,
                                      "trees").items():
        proto.metadata_props.add(key=key, value=value)
    options = compiled.spec.export.onnx or OnnxExport()
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        check_parity(tmp, trees, norm, target_norm, options.atol, options.rtol)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # onnx's and onnxruntime's own failures: say why, keep the old file
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export of the trees failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    os.replace(tmp, path)
    return path


def serving_graph(trees: Any, norm: Any, target_norm: Any, classify: bool) -> Any:
    """The checkpoint's graph with a standardizing front and the served outputs: raw `x` (batch, features) in."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(trees)
    graph = proto.graph
    features = int(norm.shift.size)
    first = graph.input[0].name
    for node in graph.node:  # the trees now read the standardized rows
        node.input[:] = ["standardized" if name == first else name for name in node.input]
    graph.initializer.extend([numpy_helper.from_array(norm.shift.reshape(-1).astype(np.float32), "input_shift"),
                              numpy_helper.from_array(norm.scale.reshape(-1).astype(np.float32), "input_scale")])
    front = [helper.make_node("Sub", ["x", "input_shift"], ["shifted"]),
             helper.make_node("Div", ["shifted", "input_scale"], ["standardized"])]
    # skl2onnx's answer, under a name of its own: [label, probabilities] for a classifier, [variable] for a regressor
    answer, named = "tree_answer", graph.output[-1].name
    for node in graph.node:
        node.output[:] = [answer if name == named else name for name in node.output]
    if classify:
        graph.initializer.append(numpy_helper.from_array(np.array(TINY, np.float32), "least_probability"))
        tail = [helper.make_node("Max", [answer, "least_probability"], ["floored"]),
                helper.make_node("Log", ["floored"], ["logits"]),
                helper.make_node("Identity", [answer], ["probabilities"])]
        served = [("logits", None), ("probabilities", None)]
    elif target_norm is not None:  # the trees were fitted on standardized targets: back in the targets' units
        graph.initializer.extend([
            numpy_helper.from_array(target_norm.scale.reshape(1, -1).astype(np.float32), "target_scale"),
            numpy_helper.from_array(target_norm.shift.reshape(1, -1).astype(np.float32), "target_shift")])
        tail = [helper.make_node("Mul", [answer, "target_scale"], ["scaled"]),
                helper.make_node("Add", ["scaled", "target_shift"], ["prediction"])]
        served = [("prediction", 1)]
    else:
        tail = [helper.make_node("Identity", [answer], ["prediction"])]
        served = [("prediction", 1)]
    nodes = front + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    width = graph.output[-1].type.tensor_type.shape.dim[-1] if classify else None
    columns = width.dim_value if width is not None and width.dim_value else None
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features]))
    del graph.output[:]
    graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", size or columns])
                        for name, size in served)
    return proto


def check_parity(path: Path, trees: Any, norm: Any, target_norm: Any, atol: float, rtol: float) -> float:
    """The served file on raw rows against the checkpoint on those rows standardized (and its values put back in
    the targets' units); raises past tolerance. Returns the largest difference."""
    import onnxruntime as ort

    from udlc.exporter.metadata import ExportError

    rng = np.random.default_rng(1)
    raw = (rng.standard_normal((CHECK_ROWS, norm.shift.size)) * norm.scale.reshape(-1)
           + norm.shift.reshape(-1)).astype(np.float32)
    inner = ort.InferenceSession(trees.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = inner.run(None, {inner.get_inputs()[0].name: norm.apply_normalization(raw)})[-1]
    if target_norm is not None:
        expected = target_norm.invert(expected)
    served = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = served.run(None, {"x": raw})[-1]
    worst = float(np.abs(got - expected).max(initial=0.0))
    if got.shape != expected.shape or not np.allclose(got, expected, atol=atol, rtol=rtol):
        raise ExportError(f"ONNX parity check failed: the served trees differ from the fitted ones by up to "
                          f"{worst:.3g} on {CHECK_ROWS} rows (atol {atol:g}, rtol {rtol:g}) — the file was not "
                          "written; loosen export.onnx.atol/rtol only if the difference is expected")
    return worst
