"""Export to ONNX, checked twice: onnx.checker with full check, then a parity gate that runs the file
in onnxruntime against torch on a batch size other than the exported one and fails past tolerance.
The file is written beside its target and renamed only when both pass: a failed export leaves the
previous model.onnx intact."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from udlc import __version__
from udlc.errors import UdlcError

EXPORT_BATCH, CHECK_BATCH = 2, 3


class ExportError(UdlcError):
    exit_code = 4


def export_run(run_dir: Path, output: Path | None = None) -> Path:
    """Export a run's final weights (see udlc.trainer.run.final_checkpoint) with the run's metadata."""
    from udlc.spec.training import OnnxExport
    from udlc.trainer.run import final_checkpoint, load_weights, read_run

    info, compiled = read_run(run_dir)  # before torch is imported: a wrong folder is reported at once
    spec, graph = compiled.spec, compiled.graph
    ckpt = final_checkpoint(run_dir, spec)
    if not ckpt.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run_dir} has no checkpoint yet (checkpoints/best or last.safetensors) — "
                        "train it first, or resume it with `udlc train --resume`")
    from udlc.compiler.lower import lower

    model = lower(graph)
    load_weights(model, ckpt)
    metadata = {
        "udlc_version": __version__,
        "spec_name": spec.name,
        "spec_sha256": hashlib.sha256((run_dir / "spec.yaml").read_bytes()).hexdigest(),
        "task": info["task"],
        "loss": spec.loss.type,
        "classes": json.dumps(info["classes"]),
        "input_names": json.dumps(list(graph.inputs)),
        "input_shapes": json.dumps(info["input_shapes"]),
        "output_names": json.dumps(list(graph.outputs)),
        "normalization": json.dumps(info["normalization"]),
        "checkpoint": ckpt.name,
    }
    return export_module(model, list(graph.inputs.items()), output or run_dir / "model.onnx",
                         spec.export.onnx or OnnxExport(), metadata)


def export_module(model: Any, inputs: list[tuple[str, tuple[int, ...]]], path: Path, options: Any,
                  metadata: dict[str, str] | None = None) -> Path:
    """Export `model` (inputs: name and one sample's shape) with a dynamic batch axis, checked."""
    import onnx
    import torch

    model = model.eval()
    gen = torch.Generator().manual_seed(0)
    args = tuple(torch.randn(EXPORT_BATCH, *shape, generator=gen) for _, shape in inputs)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = tuple({0: batch} for _ in inputs)
    if _takes_varargs(model):  # forward(self, *xs), as the merges: one structured argument
        dynamic = (dynamic,)
    names = [name for name, _ in inputs]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), _quiet_logger("torch"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, args, dynamo=True, opset_version=options.opset, input_names=names, output_names=None,
                dynamic_shapes=dynamic, verbose=False, report=False)
        program.save(str(tmp))
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        check_parity(model, inputs, tmp, options.atol, options.rtol)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # the exporter's own failures: say why, keep the old file
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export failed: {_reason(e)}") from e
    os.replace(tmp, path)
    return path


def _takes_varargs(model: Any) -> bool:
    params = list(inspect.signature(model.forward).parameters.values())
    return bool(params) and params[0].kind is inspect.Parameter.VAR_POSITIONAL


def _reason(e: BaseException) -> str:
    """The exporter wraps the real failure (in __cause__) in advice about its own steps; keep the cause."""
    cause = e.__cause__ or e
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = " ".join(lines[:3]) if lines else ""
    return f"{type(cause).__name__}: {head[:500]}"


@contextmanager
def _quiet_logger(name: str):
    """The exporter logs chatter (e.g. about torchvision ops) that says nothing about this model."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_parity(model: Any, inputs: list[tuple[str, tuple[int, ...]]], path: Path, atol: float, rtol: float) -> float:
    """Max abs difference between onnxruntime and torch on a batch of CHECK_BATCH; raises past tolerance."""
    import onnxruntime as ort
    import torch

    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(CHECK_BATCH, *shape, generator=gen) for _, shape in inputs]
    with torch.no_grad():
        expected = model(*xs)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), xs)})
    worst = 0.0
    for e, g in zip(expected, got):
        e = e.numpy()
        if e.shape != g.shape:
            raise ExportError(f"ONNX parity check failed: onnxruntime gives shape {g.shape}, torch {e.shape}")
        worst = max(worst, float(np.abs(e - g).max(initial=0.0)))
        if not np.allclose(g, e, atol=atol, rtol=rtol):
            raise ExportError(f"ONNX parity check failed: onnxruntime and torch differ by up to {worst:.3g} on a "
                              f"batch of {CHECK_BATCH} (atol {atol:g}, rtol {rtol:g}) — the file was not written; "
                              "loosen export.onnx.atol/rtol only if the difference is expected")
    return worst
