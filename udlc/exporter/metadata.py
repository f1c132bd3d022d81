"""What every exported file carries beside its graph (the metadata a reader needs) and the error an export
raises: shared by a network's export (udlc.exporter.onnx) and a tree ensemble's (udlc.exporter.trees)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from udlc.data.audio import settings as sound_settings
from udlc.errors import UdlcError
from udlc.runs import RunFolder, udlc_version


class ExportError(UdlcError):
    exit_code = 4


def common_metadata(run: RunFolder, compiled: Any, kind: str, input_names: list[str], output_names: list[str],
                    checkpoint: str, steps: dict[str, int] | None = None) -> dict[str, str]:
    """The metadata every exported file carries beside its kind's own: how it was made (the spec), what it serves,
    and how raw inputs are built from a CSV row; a tree ensemble's file (udlc.exporter.trees) writes it too."""
    from udlc.tasks.served import task_and_target

    info, spec = run.info, compiled.spec
    target = task_and_target(info)[1]  # a run folder from before `target` wrote it in `task`
    return {
        "udlc_version": udlc_version(),
        "spec_name": spec.name,
        "spec_sha256": hashlib.sha256(run.spec_file.read_bytes()).hexdigest(),
        "spec": run.spec_file.read_text(),  # the run's spec as trained: the file says how it was made
        "served": kind,  # what the file answers: its reader and command (udlc.tasks.served)
        "task": compiled.task.name,
        **({"target": target} if target is not None else {}),  # classification or regression
        "loss": spec.loss.type if spec.loss is not None else None,
        "classes": json.dumps(info["classes"]),
        "input_names": json.dumps(input_names),
        "input_shapes": json.dumps(info["input_shapes"]),  # symbolic axes (T) take any size …
        "symbol_steps": json.dumps({s: n for s, n in (steps or {}).items() if n > 1}),  # … or any multiple of this
        "sample_shapes": json.dumps(info.get("sample_shapes", info["input_shapes"])),  # the sizes trained on
        # How a CSV row becomes the input matrix (udlc.runtime.predict does it; so can any other caller):
        # the columns by name in the model's order, one-hot ones as 'column=value'; each categorical
        # column's values in one-hot order; what fills an empty numeric cell (missing: mean).
        "feature_columns": json.dumps(info.get("feature_columns")),
        "categories": json.dumps(info.get("categories") or {}),
        "fill_values": json.dumps(info.get("fill_values") or {}),
        "outputs": json.dumps(output_names),
        # For information only: the graph applies both already, so applying them again would be wrong.
        "normalization": json.dumps(info["normalization"]),
        "target_normalization": json.dumps(info.get("target_normalization")),
        "pictures": json.dumps(info.get("pictures")),  # how a picture file is decoded into an input
        "audio": json.dumps(sound_settings(spec.data)),  # how a sound file is decoded into an input
        "checkpoint": checkpoint,
    }
