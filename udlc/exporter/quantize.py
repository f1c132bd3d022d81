"""`udlc export RUN --quantize int8`: a second file, model.int8.onnx, made by onnxruntime's own quantizer from the
exported model.onnx — static (QDQ, activations calibrated on the run's validation split) where the graph has
convolutions, dynamic (weights int8, activations quantized on the fly) for linear and attention models. Both files
are scored on the run's test split and timed at batch 1; the int8 file is written only if its score is within
`max_drop` of the float file's (accuracy points for a classifier, relative MSE for a regression).

A supervised model's file takes raw inputs (the graph standardizes them), so the splits are turned back into raw
values before they are fed; the calibration reader feeds those."""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from udlc.errors import UdlcError

CALIBRATION_SAMPLES = 256  # validation samples the static quantizer's activation ranges are measured on
TIMED_RUNS = 50  # batch-1 latency: the median of this many runs, after a few to warm up


@dataclass
class Scored:
    name: str  # the file's name, as the report shows it
    score: float  # test accuracy, or test MSE in the targets' units
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
    compiled = run.compiled()
    if compiled.task.name not in ("supervised", "auxiliary"):
        raise UdlcError(f"--quantize int8 scores a classifier or a regression on its test split; this run's task is "
                        f"{compiled.task.name} — export it without --quantize")
    data = compiled.task.load_data(compiled)
    if not len(data.x_test):
        raise UdlcError("--quantize int8 needs a test split to check the int8 model against (data.split's third "
                        "fraction is 0)")
    classify = data.task == "classification"
    raw = data.normalization.invert  # the file takes raw inputs
    x_test = raw(np.asarray(data.x_test))
    calibration = raw(np.asarray((data.x_val if len(data.x_val) else data.x_train)[:CALIBRATION_SAMPLES]))
    target = model.with_name(f"{model.stem}.int8.onnx")
    partial = target.with_name(f".{target.name}.tmp")
    try:
        mode = quantize_file(model, partial, calibration)
        float_model = score(model, model.name, x_test, data, classify)
        int8_model = score(partial, target.name, x_test, data, classify)
    except UdlcError:
        partial.unlink(missing_ok=True)
        raise
    metric = "accuracy" if classify else "mse"
    drop = float_model.score - int8_model.score if classify else \
        (int8_model.score - float_model.score) / max(abs(float_model.score), 1e-12)
    lines = [float_model.line(metric), int8_model.line(metric)]
    if drop > max_drop:
        partial.unlink()
        what = f"{drop:.4f} accuracy points" if classify else f"{drop:.1%} more MSE"
        raise UdlcError("\n".join(lines) + f"\nthe int8 model ({mode}) loses {what} on the test split, more than "
                        f"--max-drop {max_drop:g}: not written — keep {model.name}, or allow a larger drop")
    os.replace(partial, target)
    return lines + [f"wrote {target} ({mode} int8 quantization)"]


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


def score(path: Path, name: str, x: np.ndarray, data: Any, classify: bool) -> Scored:
    """The file's test accuracy (or MSE in the targets' units) and its median batch-1 latency."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output = "probabilities" if classify else "prediction"
    predicted = np.concatenate([session.run([output], {input_name: x[i:i + 256].astype(np.float32)})[0]
                                for i in range(0, len(x), 256)])
    y = np.asarray(data.y_test)
    if classify:
        value = float((predicted.argmax(axis=1) == y.reshape(-1)).mean())
    else:
        if data.target_normalization is not None:
            y = data.target_normalization.invert(y)
        value = float(np.mean((predicted.reshape(len(y), -1) - y.reshape(len(y), -1)) ** 2))
    one = {input_name: x[:1].astype(np.float32)}
    for _ in range(5):
        session.run([output], one)
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        session.run([output], one)
        times.append((time.perf_counter() - started) * 1000)
    return Scored(name, value, statistics.median(times), path.stat().st_size / 1024)
