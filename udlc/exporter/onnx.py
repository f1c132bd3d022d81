"""Export to ONNX, checked twice: onnx.checker with full check, then a parity gate that runs the file
in onnxruntime against torch on a batch size other than the exported one and fails past tolerance.
A run is exported through its serving module (udlc.exporter.serving): raw inputs in, answers out.
The file is written beside its target and renamed only when both pass: a failed export leaves the
previous model.onnx intact."""

from __future__ import annotations

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

from udlc.errors import UdlcError
from udlc.exporter.metadata import ExportError, common_metadata  # noqa: F401 (ExportError: callers import it here)
from udlc.runs import RunFolder
from udlc.spec.model import tree_model

EXPORT_BATCH, CHECK_BATCH = 2, 3



def export_run(run_dir: Path, output: Path | None = None) -> Path:
    """Export every network output the run's task serves, from the run's final weights, each as a file that
    stands on its own: the graph takes raw inputs and gives answers (see udlc.exporter.serving), and the
    metadata says how to build those inputs from a CSV row and what the answers mean. Returns model.onnx
    (or `output`); a task that serves several networks writes the others beside it (encoder.onnx)."""
    run = RunFolder.open(run_dir)
    compiled = run.compiled()  # before torch is imported: a wrong folder is reported at once
    if tree_model(compiled.spec) is not None:  # no network: the fitted trees' own file (udlc.exporter.trees)
        from udlc.exporter.trees import export_trees

        return export_trees(run, compiled, Path(output) if output else run.onnx_file)
    ckpt = run.final_checkpoint(compiled.spec)
    if not ckpt.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run} has no checkpoint yet (checkpoints/best or last.safetensors) — "
                        "train it first, or resume it with `udlc train --resume`")
    main = Path(output) if output else run.onnx_file
    paths = [export_served(run, compiled, served, ckpt, main if served.file == "model" else
                           main.with_name(f"{served.file}.onnx")) for served in compiled.task.served(compiled)]
    return paths[0]


def export_served(run: RunFolder, compiled: Any, served: Any, ckpt: Path | None, path: Path,
                  network: Any = None) -> Path:
    """One served output as its file: the network wrapped as its served kind says (udlc.exporter.wrappers), the
    common metadata and the kind's own. `network`: already built with its weights (a spec exported as initialized,
    udlc.exporter.initialized, whose `run` is a stand-in with the run's info and spec file, and ckpt None)."""
    from udlc.compiler.infer import steps as infer_steps
    from udlc.compiler.lower import lower
    from udlc.exporter.wrappers import WRAPPERS, Export
    from udlc.runs import checkpoint
    from udlc.spec.training import OnnxExport
    from udlc.tasks.served import KINDS

    info, spec, kind = run.info, compiled.spec, KINDS[served.kind]
    graph = compiled.graphs[served.network]
    if network is None and spec.lora is not None:  # the base rebuilt, the adapters over it, merged: one plain file
        from udlc.runs.adapters import adapted_network

        network = adapted_network(compiled, info, served.network, served.weights or served.network, ckpt)
    if network is None:
        network = lower(graph)
        checkpoint.load_models({served.weights or served.network: network}, ckpt)
    shapes = [s for n in graph.nodes.values() for s in n.shapes]
    symbols, steps = smallest_sizes(graph.symbols, shapes), infer_steps(shapes)
    bounds = dict(graph.bounds)  # a wrapper may narrow them (a language model's cache shares the positions)
    wrapped = WRAPPERS[kind.name](Export(network, graph, served, info, symbols, bounds))
    model, inputs = wrapped.model, wrapped.inputs
    if tuple(model.output_names[:len(kind.outputs)]) != kind.outputs:  # the registry names what readers read
        raise ExportError(f"the {kind.name} module gives outputs {model.output_names}; its kind names "
                          f"{list(kind.outputs)} (a bug in udlc)")
    checks = [check_sizes(symbols, bounds, steps)] + ([{**check_sizes(symbols, bounds, steps), **wrapped.also}]
                                               if wrapped.also else [])
    metadata = common_metadata(run, compiled, kind.name, [name for name, *_ in inputs], model.output_names,
                               ckpt.name if ckpt is not None else "initialized",  # as the spec's init: loads it
                               steps)
    metadata.update(wrapped.metadata)
    missing = [key for key in kind.metadata if key not in metadata]
    if missing:
        raise ExportError(f"the {kind.name} file lacks the metadata its reader needs: {', '.join(missing)} "
                          "(a bug in udlc)")
    if spec.data.sound:  # a folder of sound clips is no folder of pictures (runs whose info says so all the same)
        metadata["pictures"] = json.dumps(None)
    front, pictures = None, info.get("pictures") if not spec.data.sound else None
    if pictures:  # the graph takes a picture of any size and resizes it to the trained one
        from udlc.exporter.picture_front import add_picture_front

        def picture_front(proto: Any) -> Any:
            return add_picture_front(proto, tuple(pictures["size"]), pictures["resize"])
        front = picture_front
        metadata.update(pictures=json.dumps({**pictures, "resized_in_graph": True}),
                        input_shapes=json.dumps([[pictures["channels"], "height", "width"]]))
    return export_module(model, inputs, path, spec.export.onnx or OnnxExport(), metadata,
                         output_names=model.output_names, symbols=symbols, checks=checks, bounds=bounds,
                         front=front, steps=steps)


def smallest_sizes(names: list[str], shapes: Any) -> dict[str, int]:
    """Each symbol's smallest size for which every one of `shapes` keeps a size of at least 1 (a convolution
    without padding turns T into T-2: T >= 3) and is whole (`H/2`: H even); 2 at least, as torch.export takes sizes
    0 and 1 for constants."""
    from udlc.compiler.infer import parse_dim, steps

    shapes = list(shapes)
    low = {s: 2 for s in names}
    for shape in shapes:
        for d in shape:
            if isinstance(d, str) and d not in low:
                k, base, div, offset = parse_dim(d)
                low[base] = max(low.get(base, 2), -(-(1 - offset) * div // k))
    return {s: -(-size // step) * step for s, size in low.items() for step in [steps(shapes).get(s, 1)]}


def export_module(model: Any, inputs: list[tuple[str, tuple[int | str, ...]]], path: Path, options: Any,
                  metadata: dict[str, str] | None = None, output_names: list[str] | None = None,
                  symbols: dict[str, int] | None = None, checks: list[dict[str, int]] | None = None,
                  bounds: dict[str, int] | None = None, front: Any = None,
                  steps: dict[str, int] | None = None) -> Path:
    """Export `model` (inputs: name and one sample's shape) with a dynamic batch axis and a dynamic axis for
    every symbolic dimension (`symbols`: each one's smallest size), checked at other sizes than traced
    (`checks`: the symbols' sizes of each parity check; default one, each symbol 5 above its traced size).
    `output_names` names the graph's outputs in the order forward returns them (default: the exporter's).
    `front` edits the exported ModelProto before the checks (a picture model's resizing front). `steps`: the
    multiple a symbol's size must be (2 where the graph halves it: the axis is exported as 2 times a dynamic size)."""
    import onnx
    import torch

    model = model.eval()
    symbols = symbols or {}
    steps = steps or {}
    args = sample_inputs(model, inputs, EXPORT_BATCH, seed=0, binding=trace_sizes(symbols, bounds, steps))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dims = {s: _dynamic(s, low, (bounds or {}).get(s, 1 << 16), steps.get(s, 1)) for s, low in symbols.items()}
    dynamic = tuple({0: batch, **{i + 1: dims[d] for i, d in enumerate(shape) if isinstance(d, str)}}
                    for _, shape, _ in typed(inputs))
    if _takes_varargs(model):  # forward(self, *xs), as the merges: one structured argument
        dynamic = (dynamic,)
    names = [name for name, *_ in inputs]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), _quiet_logger("torch"), _quiet_logger("onnx_ir"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, args, dynamo=True, opset_version=options.opset, input_names=names,
                output_names=output_names, dynamic_shapes=dynamic, verbose=False, report=False)
        program.save(str(tmp))
        proto = onnx.load(str(tmp))
        for s, step in steps.items():  # `4*H_over_4`, torch.export's name for a multiple: H, as the spec writes it
            for value in (*proto.graph.input, *proto.graph.output):
                for dim in value.type.tensor_type.shape.dim:
                    if dim.dim_param == f"{step}*{s}_over_{step}":
                        dim.dim_param = s
        if front is not None:
            proto = front(proto)
        for key, value in (metadata or {}).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        for binding in checks or [check_sizes(symbols, bounds, steps)]:
            check_parity(model, inputs, tmp, options.atol, options.rtol, binding)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # the exporter's own failures: say why, keep the old file
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export failed: {_reason(e)}") from e
    os.replace(tmp, path)
    return path


def _dynamic(name: str, low: int, high: int, step: int) -> Any:
    """torch.export's dynamic size of a symbol, `step` times a dynamic whole number where the graph divides it."""
    import torch

    if step == 1:
        return torch.export.Dim(name, min=low, max=high)
    return step * torch.export.Dim(f"{name}_over_{step}", min=-(-low // step), max=high // step)


def trace_sizes(symbols: dict[str, int], bounds: dict[str, int] | None = None,
                steps: dict[str, int] | None = None) -> dict[str, int]:
    """8 for each symbol (or its smallest size, if larger), within its bound (Graph.bounds), rounded to its step
    (steps: the multiple a symbol's size must be, where the graph halves it)."""
    bounds, steps = bounds or {}, steps or {}
    return {s: _multiple(min(max(low, 8), bounds.get(s, 1 << 16)), steps.get(s, 1)) for s, low in symbols.items()}


def check_sizes(symbols: dict[str, int], bounds: dict[str, int] | None = None,
                steps: dict[str, int] | None = None) -> dict[str, int]:
    """Sizes other than the traced ones: a graph that baked a traced length in fails the parity gate. Where a
    bound leaves no room above the traced size, one below it (if the smallest size allows)."""
    bounds, steps, traced = bounds or {}, steps or {}, trace_sizes(symbols, bounds, steps)
    sizes = {}
    for s, low in symbols.items():
        step = steps.get(s, 1)
        size = _multiple(min(traced[s] + 5 + step - 1, bounds.get(s, 1 << 16)), step)
        sizes[s] = size if size != traced[s] else max(low, traced[s] - step)
    return sizes


def _multiple(size: int, step: int) -> int:
    """The largest multiple of step up to size (step itself at least)."""
    return max(size // step * step, step)


def sample_inputs(model: Any, inputs: list[tuple[str, tuple[int | str, ...]]], batch: int, seed: int,
                  binding: dict[str, int]) -> tuple:
    """A batch to trace or check with, symbols at the binding's sizes: the model's own `sample_inputs` where
    it has one (a serving module knows the raw scale of its inputs), else standard normal values."""
    import torch

    from udlc.compiler.infer import bind
    from udlc.layers.registry import random_input

    gen = torch.Generator().manual_seed(seed)
    if hasattr(model, "sample_inputs"):
        return tuple(model.sample_inputs(batch, gen, binding))
    return tuple(random_input((batch, *bind(shape, binding)), dtype, gen) for _, shape, dtype in typed(inputs))


def typed(inputs: list[tuple]) -> list[tuple[str, tuple, str]]:
    """(name, shape) or (name, shape, dtype) inputs as (name, shape, dtype)."""
    return [(i[0], i[1], i[2] if len(i) > 2 else "float32") for i in inputs]


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


def check_parity(model: Any, inputs: list[tuple[str, tuple[int | str, ...]]], path: Path, atol: float, rtol: float,
                 binding: dict[str, int] | None = None) -> float:
    """Max abs difference between onnxruntime and torch on a batch of CHECK_BATCH (symbols at the binding's
    sizes); raises past tolerance."""
    import onnxruntime as ort
    import torch

    xs = sample_inputs(model, inputs, CHECK_BATCH, seed=1, binding=binding or {})
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
