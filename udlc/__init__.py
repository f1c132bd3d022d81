"""udlc: a declarative deep-learning compiler. YAML spec → validated graph → PyTorch → ONNX.

The Python API mirrors the CLI. Nothing here imports torch until `build`, `train` or `export` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

__version__ = "0.1.0"

if TYPE_CHECKING:
    from udlc.tasks import Compiled


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> "Compiled":
    """Load, validate and shape-check a spec file (no torch). Raises udlc.errors.SpecErrors."""
    from udlc.tasks import compile_spec

    return compile_spec(path, overrides)


def build(spec: "Compiled | str | Path") -> Any:
    """The spec's network as a torch.fx.GraphModule, initialized as training initializes it; for a spec
    with several networks (`models:`), a dict of them by name."""
    from udlc.compiler.lower import lower
    from udlc.errors import UdlcError
    from udlc.spec.model import tree_model

    compiled = spec if not isinstance(spec, (str, Path)) else load_spec(spec)
    if tree_model(compiled.spec) is not None:  # trees are fitted by train, not built from layers
        raise UdlcError(f"{compiled.spec.name}'s model is gradient_boosting: there is no network to build — train it "
                        "with udlc.train (its model.onnx holds the fitted trees)")
    models = {name: lower(graph, seed=compiled.spec.seed + i) for i, (name, graph) in enumerate(compiled.graphs.items())}
    return next(iter(models.values())) if compiled.spec.model is not None else models


def train(spec: "Compiled | str | Path", out: str | Path = "runs", overrides: Iterable[str] = (), **kw: Any) -> Path:
    """Train a spec, and export it when the spec has `export.onnx`; returns the run folder.
    Keywords: quiet, init_from (a run folder, a .safetensors or torch state-dict file, or a Hugging Face
    folder, whose weights start this run where names and shapes match; a spec's `init:` also names a map)."""
    from udlc.trainer.run import train_spec

    compiled = spec if not isinstance(spec, (str, Path)) else load_spec(spec, overrides)
    run_dir = train_spec(compiled, out=Path(out), **kw)
    if compiled.spec.export.onnx is not None:
        export(run_dir)
    return run_dir


def export(run: str | Path, output: str | Path | None = None) -> Path:
    """Export a run's best checkpoint to ONNX, parity-checked in onnxruntime; returns the file."""
    from udlc.exporter.onnx import export_run

    return export_run(Path(run), Path(output) if output else None)
