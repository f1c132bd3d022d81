"""A Triton model repository from a run's exported files: REPO/<name>/1/model.onnx and REPO/<name>/config.pbtxt,
one model per file the export writes (a VAE's encoder is REPO/<name>-encoder). KServe serves the same folder
(its `triton` model format). Everything in config.pbtxt is read from the ONNX file itself, as onnxruntime
(Triton's onnxruntime backend) loads it: the inputs' and outputs' names, datatypes and shapes, and the file's
metadata, carried as parameters so that nothing it says is lost. torch is needed only when the run has no
exported file yet. The repository is built beside REPO and renamed into it: a failure leaves no half model."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.runs import RunFolder

MAX_BATCH = 64  # Triton's max_batch_size: the largest batch its dynamic batcher forms
# onnxruntime's element types (tensor(float)) as Triton's datatypes (model_config.proto's DataType)
TRITON_TYPES = {"float": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "double": "TYPE_FP64",
                "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64",
                "bool": "TYPE_BOOL", "string": "TYPE_STRING"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a spec's name (udlc.spec.spec): a safe folder name


class TritonError(UdlcError):
    exit_code = 4  # as an ExportError


@dataclass
class Tensor:
    name: str
    datatype: str  # TYPE_FP32, ...
    shape: list[int | str | None]  # as onnxruntime gives it: a size, a symbol's name (batch, T) or None


def export_triton(run_dir: Path, repo: Path, max_batch: int = MAX_BATCH, overwrite: bool = False) -> list[Path]:
    """Write one Triton model per file the run's export writes (exported first if one is missing) into `repo`;
    returns the model folders. Refuses a model folder that exists unless `overwrite`, and any file Triton
    cannot serve (a datatype it lacks; with batching, a tensor without a shared free first axis)."""
    run = RunFolder.open(run_dir)
    compiled = run.compiled()  # which files the export writes: the task's served outputs (torch-free)
    files = [run.served_file(stem) for stem in dict.fromkeys(s.file for s in compiled.task.served(compiled))]
    if not all(f.is_file() for f in files):
        from udlc.exporter.onnx import export_run  # torch: only for a run never exported

        export_run(run.path)
    models = [Model.read(f) for f in files]
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise TritonError(f"{repo} is a file, not a folder — give --triton a folder for the model repository")
    existing = [m.name for m in models if (repo / m.name).exists()]
    if existing and not overwrite:
        raise TritonError(f"{repo / existing[0]} exists already — pass --overwrite to replace "
                          f"{'it' if len(existing) == 1 else 'them'}, or choose another repository")
    if max_batch > 0:
        for m in models:
            check_batch_axis(m.file, m.inputs + m.outputs)
    repo.mkdir(parents=True, exist_ok=True)
    # Staged beside the repository, not in it: a server polling REPO must never see a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{repo.name}.udlc-", dir=repo.parent))
    try:
        for m in models:
            (staging / m.name / "1").mkdir(parents=True)
            shutil.copyfile(m.file, staging / m.name / "1" / "model.onnx")
            (staging / m.name / "config.pbtxt").write_text(config_text(m, max_batch))
        for m in models:
            if (repo / m.name).exists():  # (--overwrite) moved aside, deleted with the staging folder
                (repo / m.name).rename(staging / f"{m.name}.replaced")
            (staging / m.name).rename(repo / m.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [repo / m.name for m in models]


@dataclass
class Model:
    """One exported file as a Triton model: its name (the spec's, and the file's stem but for model.onnx), its
    inputs, outputs and metadata, read with onnxruntime (what Triton's onnxruntime backend will load)."""

    file: Path
    name: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    meta: dict[str, str]

    @classmethod
    def read(cls, file: Path) -> Model:
        inputs, outputs, meta = read_tensors(file)
        spec_name = meta.get("spec_name", "")
        if not NAME.fullmatch(spec_name):
            raise TritonError(f"{file} names no model in its metadata (spec_name {spec_name!r}) — export it "
                              f"again with `udlc export {file.parent}`")
        return cls(file, spec_name if file.stem == "model" else f"{spec_name}-{file.stem}", inputs, outputs, meta)


def read_tensors(path: Path) -> tuple[list[Tensor], list[Tensor], dict[str, str]]:
    """The file's inputs, outputs and metadata, from an onnxruntime session: what Triton's backend will see."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own failures (a broken file, external data left behind)
        raise TritonError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:300]} — export the run "
                          "again (`udlc export RUN`)") from e

    def tensors(args: list[Any], role: str) -> list[Tensor]:
        found = []
        for arg in args:
            element = re.fullmatch(r"tensor\((\w+)\)", arg.type)
            if element is None or element[1] not in TRITON_TYPES:
                raise TritonError(f"{path.name}'s {role} {arg.name!r} is a {arg.type}, which Triton has no datatype "
                                  f"for — Triton serves tensors of {', '.join(TRITON_TYPES)}")
            found.append(Tensor(arg.name, TRITON_TYPES[element[1]], list(arg.shape)))
        return found

    meta = dict(session.get_modelmeta().custom_metadata_map)
    return tensors(session.get_inputs(), "input"), tensors(session.get_outputs(), "output"), meta


def check_batch_axis(path: Path, tensors: list[Tensor]) -> None:
    """Triton's dynamic batcher stacks requests along the first axis of every input and splits the outputs
    along theirs: each tensor needs a free first axis, the same for all (udlc's files name it `batch`)."""
    axis = tensors[0].shape[0] if tensors[0].shape else None
    for t in tensors:
        first = t.shape[0] if t.shape else "none (a scalar)"
        if not isinstance(axis, str) or first != axis:
            raise TritonError(f"{path.name}'s {t.name!r} has no batch axis for Triton to stack requests on (its "
                              f"first axis: {first}) — pass --max-batch 0 to serve it without batching")


def config_text(model: Model, max_batch: int) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig). With batching, dims leave out the batch axis;
    -1 stands for every free axis (a sequence's length T)."""
    max_batch = max(max_batch, 0)
    lines = [f"# Written by udlc from {model.file.name}'s own inputs, outputs and metadata.",
             f"name: {quoted(model.name)}", 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch}"]
    for role, tensors in (("input", model.inputs), ("output", model.outputs)):
        lines.append(f"{role} [")
        for i, t in enumerate(tensors):
            shape = [d if isinstance(d, int) and d >= 0 else -1 for d in t.shape[1 if max_batch else 0:]]
            lines += ["  {", f"    name: {quoted(t.name)}", f"    data_type: {t.datatype}",
                      f"    dims: [ {', '.join(map(str, shape or [1]))} ]"]
            if not shape:  # Triton needs one dim at least: a scalar per sample is [1] reshaped to []
                lines.append("    reshape: { shape: [ ] }")
            lines.append("  }," if i < len(tensors) - 1 else "  }")
        lines.append("]")
    if max_batch:  # requests of the same shapes are batched together (Triton's default delay: none)
        lines.append("dynamic_batching { }")
    for key, value in sorted(model.meta.items()):  # spec, classes, normalization, …: what udlc's readers read, kept
        lines.append(f"parameters: {{ key: {quoted(key)} value: {{ string_value: {quoted(value)} }} }}")
    return "\n".join(lines) + "\n"


def quoted(text: str) -> str:
    """A protobuf text-format string: UTF-8 bytes, with quotes, backslashes and all but printable ASCII
    escaped (a spec's newlines as \\n), as both Triton's C++ parser and Python's read it."""
    named = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}
    return '"' + "".join(named.get(b) or (chr(b) if 32 <= b < 127 else f"\\{b:03o}") for b in text.encode()) + '"'
