"""udlc: a declarative deep-learning compiler. YAML spec → validated graph → PyTorch → ONNX.

The Python API mirrors the CLI. Nothing here imports torch until `build`, `train` or `export` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

__version__ = "0.1.0"

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> "Compiled":
    """Load, validate and shape-check a spec file (no torch). Raises udlc.errors.SpecErrors."""
    from udlc.compiler.pipeline import compile_spec

    return compile_spec(path, overrides)


def build(spec: "Compiled | str | Path") -> Any:
    """The spec's network as a torch.fx.GraphModule, initialized."""
    from udlc.compiler.lower import lower

    compiled = spec if not isinstance(spec, (str, Path)) else load_spec(spec)
    return lower(compiled.graph, seed=compiled.spec.seed)


def train(spec: "Compiled | str | Path", out: str | Path = "runs", overrides: Iterable[str] = (), **kw: Any) -> Path:
    """Train a spec; returns the run folder."""
    from udlc.trainer.run import train_spec

    compiled = spec if not isinstance(spec, (str, Path)) else load_spec(spec, overrides)
    return train_spec(compiled, out=Path(out), **kw)


def export(run: str | Path, output: str | Path | None = None) -> Path:
    """Export a run's best checkpoint to ONNX, parity-checked in onnxruntime; returns the file."""
    from udlc.exporter.onnx import export_run

    return export_run(Path(run), Path(output) if output else None)
