"""What a new run starts from: the weights (another run's, a file's, a Hugging Face folder's, through the spec's
`init:`) and the run folder's first files (the spec as it ran, with its paths made absolute, and run.json)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, TYPE_CHECKING

import yaml

from udlc.runs import RunFolder, udlc_version
from udlc.spec.augments import AUGMENT_PATHS

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled


def init_weights(models: dict[str, Any], source: RunFolder | Path) -> str:
    """Start from a udlc run's final weights (every network by name) or a weights file or Hugging Face folder
    (names as they are), wherever a tensor name and its shape match; the report's line."""
    from udlc.weights import load_into

    return load_into(models, _weights_source(source)).text


def start_weights(models: dict[str, Any], compiled: Compiled, init_from: Path | None) -> Any:
    """The weights a new run starts from: `init_from` (the API's, a run or a file, names as they are) or the spec's
    `init:` (its mapping); None when neither. Returns udlc.weights' LoadReport (its text is the log line)."""
    from udlc.weights import load_init, load_into

    if init_from is not None:
        report = load_into(models, _weights_source(init_from))
    elif compiled.spec.init is not None:
        path = compiled.base_dir / compiled.spec.init.from_
        checkpoint = _weights_source(path).files[0] if (path / "run.json").is_file() else None
        networks = models if checkpoint is not None else {n: models[n] for n in compiled.graphs}
        report = load_init(networks, compiled.spec.init, compiled.base_dir, compiled.doc, checkpoint)
    else:
        return None
    if report.source.kind != "run":  # a moving-average copy starts as its network does (a run holds its own)
        for shadow, network in compiled.task.shadows(compiled).items():
            models[shadow].load_state_dict(models[network].state_dict())
    return report


def _weights_source(path: RunFolder | Path) -> Any:
    """A run folder's final checkpoint (best, unless its early stopping keeps the last), or any other source."""
    from udlc.weights import open_source

    if isinstance(path, RunFolder) or (Path(path) / "run.json").is_file():
        run = path if isinstance(path, RunFolder) else RunFolder.open(path)
        final = run.final_checkpoint(run.compiled().spec).with_suffix(".safetensors")
        return open_source(run.path, final)
    return open_source(path)


def write_run_files(run: RunFolder, compiled: Compiled, task_info: dict[str, Any]) -> None:
    import json

    import torch

    spec_data = json.loads(json.dumps(compiled.doc.data))  # a deep copy
    if compiled.spec.data.is_file():
        spec_data["data"]["source"] = str((compiled.base_dir / compiled.spec.data.source).resolve())
    for key in ("tokenizer_from", "tokenizer_file"):  # relative to the spec, and the run's copy sits elsewhere
        if getattr(compiled.spec.data, key) is not None:
            spec_data["data"][key] = str((compiled.base_dir / getattr(compiled.spec.data, key)).resolve())
    if compiled.spec.init is not None:  # the run's spec.yaml sits elsewhere: paths relative to the spec made absolute
        from udlc.weights import find_map

        spec_data["init"]["from"] = str((compiled.base_dir / compiled.spec.init.from_).resolve())
        if compiled.spec.init.map is not None:
            spec_data["init"]["map"] = str(find_map(compiled.spec.init.map, compiled.base_dir).resolve())
    for i, aug in enumerate(compiled.spec.data.augment):  # a synonyms file, a model or background folder
        paths = {f: str((compiled.base_dir / getattr(aug, f)).resolve()) for f in AUGMENT_PATHS
                 if isinstance(getattr(aug, f, None), str)}
        if paths:
            spec_data["data"]["augment"][i] = {aug.type: {**aug.model_dump(mode="json", exclude_defaults=True,
                                                                            exclude={"type"}), **paths}}
    run.write_spec(yaml.safe_dump(spec_data, sort_keys=False))
    run.write_info({
        "name": compiled.spec.name,
        "status": "created",
        "spec_file": str(Path(compiled.doc.file).resolve()),
        "seed": compiled.spec.seed,
        "train_seed": compiled.spec.init_seed,
        "versions": {"udlc": udlc_version(), "python": platform.python_version(), "torch": torch.__version__},
        **task_info,
    })
