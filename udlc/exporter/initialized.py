"""`udlc export SPEC`: a spec exported as initialized — its networks built, the weights its `init:` names loaded
(udlc.weights), nothing trained — through the same wrappers, metadata and parity gate as a run's export
(udlc.exporter.onnx.export_served). What the file records of the data (a language model's tokenizer and context, a
classifier's classes) comes from the task's own data loading, as training would record it, so the file serves as a
trained run's does: an imported language model keeps its key/value cache, and `udlc generate` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from udlc.errors import UdlcError


@dataclass(frozen=True)
class Initialized:
    """What export_served reads of a run folder, for a spec that has none: run.json's record and the spec file."""

    info: dict[str, Any]
    spec_file: Path


def export_spec(spec: str | Path, output: str | Path | None = None, overrides: Iterable[str] = ()
                ) -> tuple[Path, list[str]]:
    """Export the spec at `spec` as initialized to `output` (default: beside the spec, SPEC.onnx); a task that
    serves several networks writes the others beside it (encoder.onnx). Returns the main file and the notes
    (what init loaded)."""
    from udlc.tasks import compile_spec

    compiled = compile_spec(spec, tuple(overrides))  # before torch: a mistake in the spec is reported at once
    import torch

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_served
    from udlc.weights.load import load_init

    s, task = compiled.spec, compiled.task
    if not compiled.graphs:
        raise UdlcError(f"{spec}: gradient_boosting has nothing to export before it is fitted — train it "
                        "(`udlc train`) and export the run")
    if s.init is None:
        raise UdlcError(f"{spec} has no `init:`: exported as initialized, its networks would hold random weights — "
                        "add `init: {from: WEIGHTS, map: MAP}`, or train it (`udlc train`) and export the run")
    torch.manual_seed(s.seed)
    state = task.start(compiled, task.load_data(compiled), torch.device("cpu"))
    info = {"name": s.name, "seed": s.seed, **task.info(compiled, state)}
    models = {name: lower(graph, seed=s.init_seed + i).eval() for i, (name, graph) in enumerate(compiled.graphs.items())}
    notes = [load_init(models, s.init, compiled.base_dir, compiled.doc).text]
    spec_path = Path(compiled.doc.file)
    main = Path(output) if output else spec_path.with_suffix(".onnx")
    stand_in = Initialized(info, spec_path)
    paths = [export_served(stand_in, compiled, served, None,  # type: ignore[arg-type]
                           main if served.file == "model" else main.with_name(f"{served.file}.onnx"),
                           network=models[served.network]) for served in task.served(compiled)]
    return paths[0], notes
