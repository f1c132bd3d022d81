"""Tasks: what training does with a spec's networks, one file each. A task's file registers it when the task is
first needed (TASK_FILES is the index; a test holds it to what the files register), so `udlc check` imports only
the task a spec names; `udlc.tasks.TASKS` is every task. `compile_spec` (and compile_doc, compile_text) is the
whole check (udlc.tasks.check). Importing this package imports nothing else, so that the runtime can read the
served kinds (udlc.tasks.served) without pydantic; each name below loads its module when first used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled
    from udlc.tasks.check import compile_doc, compile_spec, compile_text
    from udlc.tasks.registry import Served, Task

__all__ = ["TASKS", "Compiled", "Served", "Task", "compile_doc", "compile_spec", "compile_text"]

# Which file (udlc/tasks/<file>.py) registers which task.
TASK_FILES = {
    "supervised": "supervised",
    "auxiliary": "auxiliary",
    "forecasting": "forecasting",
    "language_model": "language_model",
    "seq2seq": "seq2seq",
    "sequence_classification": "sequence_classification",
    "token_classification": "token_classification",
    "masked_language_model": "masked_lm",
    "span_corruption": "span_corruption",
    "autoencoder": "autoencoder",
    "vae": "vae",
    "gan": "gan",
    "diffusion": "diffusion",
    "node_classification": "nodes",
    "graph_classification": "nodes",
    "link_prediction": "link_prediction",
    "segmentation": "dense",
    "image_to_image": "dense",
}


def load_tasks(*names: str) -> dict[str, type[Task]]:
    """Register the named tasks (every task when a name is not in the index, so that a did-you-mean sees them all);
    the registry."""
    files = [TASK_FILES.get(name) for name in names] if names else [None]
    for file in dict.fromkeys(TASK_FILES.values()) if None in files else files:
        importlib.import_module(f"udlc.tasks.{file}")
    return importlib.import_module("udlc.tasks.registry").TASKS


_HOMES = {"compile_spec": "check", "compile_doc": "check", "compile_text": "check", "check_task": "check",
          "Served": "registry", "Task": "registry"}


def __getattr__(name: str) -> Any:
    if name == "TASKS":  # every task, registered on first use
        return load_tasks()
    if name == "Compiled":
        return importlib.import_module("udlc.compiler.pipeline").Compiled
    if name in _HOMES:
        return getattr(importlib.import_module(f"udlc.tasks.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'udlc.tasks' has no attribute {name!r}")
