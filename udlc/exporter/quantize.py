"""`udlc export RUN --quantize int8`: a second file, model.int8.onnx, made by onnxruntime's own quantizer from the
exported model.onnx — static (QDQ, activations calibrated on the run's validation split) where the graph has
convolutions, dynamic (weights int8, activations quantized on the fly) for linear and attention models. Both files
are scored on the run's test split and timed at batch 1; the int8 file is written only if its score is within
`max_drop` of the float file's (accuracy points for a classifier or a language model's next-token accuracy,
relative MSE for a regression).

A supervised model's file takes raw inputs (the graph standardizes them), so the splits are turned back into raw
values before they are fed; the calibration reader feeds those. A language model's file is fed windows of its
test text with an empty key/value cache."""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from udlc.errors import UdlcError
from udlc.tasks.served import CLASSES, KINDS, NEXT_TOKEN, VALUES

CALIBRATION_SAMPLES = 256  # validation samples the static quantizer's activation ranges are measured on
LM_WINDOWS = 64  # a language model is scored on at most this many windows of its test text
TIMED_RUNS = 50  # batch-1 latency: the median of this many runs, after a few to warm up


@dataclass
class TestSplit:
    """What the two files are scored on: the test split as the file takes it, the output read and its score."""

    metric: str  # as the report names it
    higher_is_better: bool
    inputs: np.ndarray  # the first input of the file, a sample a row
    output: str  # the file's output the score reads
    score: Callable[[np.ndarray], float]  # from that output for every row of `inputs`
    calibration: np.ndarray  # rows the static quantizer measures activation ranges on


@dataclass
class Scored:
    name: str  # the file's name, as the report shows it
    score: float
    latency_ms: float  # batch 1, median
    kib: float  # the file's size

    def line(self, metric: str) -> str:
        return f"{self.name:<20} {metric} {self.score:.4f}  batch-1 latency {self.latency_ms:.3f} ms  " \
               f"{self.kib:,.0f} KiB"


def quantize_run(run_dir: Path, model: Path, max_drop: float) -> list[str]:
    """Write `model`'s int8 twin beside it (model.int8.onnx) when it keeps the score; the report's lines.
    Raises (and writes nothing) when the int8 model drops more than `max_drop`."""
    from udlc.runs import RunFolder

    run = RunFolder.open(run_dir)
    split = scoring_split(run.compiled())
    target = model.with_name(f"{model.stem}.int8.onnx")
    partial = target.with_name(f".{target.name}.tmp")
    try:
        mode = quantize_file(model, partial, split.calibration)
        float_model, int8_model = score(model, model.name, split), score(partial, target.name, split)
    except BaseException as e:
        partial.unlink(missing_ok=True)
        if isinstance(e, UdlcError) or not isinstance(e, Exception):
            raise
        raise UdlcError(f"int8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    lines = [float_model.line(split.metric), int8_model.line(split.metric)]
    if split.higher_is_better:
        drop, what = float_model.score - int8_model.score, "{:.4f} {} points"
    else:  # an error: its relative growth
        drop, what = (int8_model.score - float_model.score) / max(abs(float_model.score), 1e-12), "{:.1%} more {}"
    if drop > max_drop:
        partial.unlink()
        raise UdlcError("\n".join(lines) + f"\nthe int8 model ({mode}) loses {what.format(drop, split.metric)} on "
                        f"the test split, more than --max-drop {max_drop:g}: not written — keep {model.name}, or "
                        "allow a larger drop")
    os.replace(partial, target)
    return lines + [f"wrote {target} ({mode} int8 quantization)"]


def scoring_split(compiled: Any) -> TestSplit:
    """What the run's model.onnx is scored on, by what it serves: a classifier's accuracy or a regression's MSE
    (in the targets' units) on raw samples; a language model's next-token accuracy on windows of its context."""
    if not compiled.graphs:  # gradient_boosting: thresholds and leaf values, no weight matrices to quantize
        raise UdlcError("--quantize int8 stores a network's weights in 8 bits; a gradient_boosting model's trees "
                        "have none (their thresholds and leaf values stay float32) — export it without --quantize")
    kind = compiled.task.served(compiled)[0].kind  # model.onnx's
    if kind not in SPLITS:
        raise UdlcError(f"--quantize int8 scores a classifier, a regression or a language model on its test split; "
                        f"this run's model serves {KINDS[kind].description} — export it without --quantize")
    return SPLITS[kind](compiled)


def next_token_split(compiled: Any) -> TestSplit:
    ids = np.asarray(compiled.task.load_data(compiled).ids["test"], dtype=np.int64)
    context = compiled.task.options.context
    n = min((len(ids) - 1) // context, LM_WINDOWS)
    if n < 1:
        raise UdlcError(f"--quantize int8 needs a test split of at least one window ({context + 1} tokens)")
    windows, following = ids[:n * context].reshape(n, context), ids[1:n * context + 1].reshape(n, context)
    return TestSplit("next-token accuracy", True, windows, "logits",
                     lambda logits: float((logits.argmax(axis=-1) == following).mean()), windows)


def samples_split(classify: bool) -> Callable[[Any], TestSplit]:
    """The test split's raw samples (the file takes raw inputs) and their classes or values."""

    def split(compiled: Any) -> TestSplit:
        data = compiled.task.load_data(compiled)
        if not len(data.x_test):
            raise UdlcError("--quantize int8 needs a test split to check the int8 model against (data.split's third "
                            "fraction is 0)")
        raw = data.normalization.invert
        calibration = raw(np.asarray((data.x_val if len(data.x_val) else data.x_train)[:CALIBRATION_SAMPLES]))
        y = np.asarray(data.y_test)
        if classify:
            return TestSplit("accuracy", True, raw(np.asarray(data.x_test)), "probabilities",
                             lambda p: float((p.argmax(axis=1) == y.reshape(-1)).mean()), calibration)
        if data.target_normalization is not None:
            y = data.target_normalization.invert(y)
        y = y.reshape(len(y), -1)
        return TestSplit("mse", False, raw(np.asarray(data.x_test)), "prediction",
                         lambda p: float(np.mean((p.reshape(len(y), -1) - y) ** 2)), calibration)

    return split


# The served kinds whose model.onnx `--quantize int8` scores, and on what.
SPLITS: dict[str, Callable[[Any], TestSplit]] = {NEXT_TOKEN: next_token_split, CLASSES: samples_split(classify=True),
                                                 VALUES: samples_split(classify=False)}


def quantize_file(source: Path, target: Path, calibration: np.ndarray) -> str:
    """`source` quantized into `target`: static QDQ for a graph with convolutions, else dynamic. The file's
    metadata (what predict needs) is carried over. Returns which."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice (pre-processing) goes to the root logger
    proto = onnx.load(str(source))
    input_name = proto.graph.input[0].name
    convolutional = any(node.op_type == "Conv" for node in proto.graph.node)
    if convolutional:
        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{input_name: calibration[i:i + 32].astype(np.float32)}
                                     for i in range(0, len(calibration), 32)])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        # Only the layers that do the arithmetic: the answers (softmax) stay float, not in steps of 1/255.
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"])
    else:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    mode = "static" if convolutional else "dynamic"
    quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    for prop in proto.metadata_props:
        quantized.metadata_props.add(key=prop.key, value=prop.value)
    quantized.metadata_props.add(key="quantized", value=f"int8 {mode}")
    onnx.save(quantized, str(target))
    return mode


def score(path: Path, name: str, split: TestSplit) -> Scored:
    """The file's score on the test split and its median batch-1 latency."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predicted = np.concatenate([session.run([split.output], feeds(session, split.inputs[i:i + 64]))[0]
                                for i in range(0, len(split.inputs), 64)])
    one = feeds(session, split.inputs[:1])
    for _ in range(5):
        session.run([split.output], one)
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        session.run([split.output], one)
        times.append((time.perf_counter() - started) * 1000)
    return Scored(name, split.score(predicted), statistics.median(times), path.stat().st_size / 1024)


def feeds(session: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    """`rows` as the file's first input; a language model's key/value cache inputs empty (nothing before)."""
    first, *cache = session.get_inputs()
    out = {first.name: rows.astype(np.float32) if rows.dtype.kind == "f" else rows}
    for entry in cache:  # (batch, heads, past, head_dim) with past 0
        out[entry.name] = np.zeros((len(rows), entry.shape[1], 0, entry.shape[3]), np.float32)
    return out
