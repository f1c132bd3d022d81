"""The files a server answers for: each opened once (udlc.runtime.files), named, and read by its kind's reader.

A model is named by its spec's `name` (the file's `spec_name` metadata): a run folder's model.onnx is
`tiny-digits`; its other files add their stem (`tiny-vae-encoder`, `tiny-digits-model.int8`). Two files of one
name are refused: a client could not say which it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, open_file
from udlc.runtime.http.batching import BatchingSession
from udlc.runtime.readers import READERS
from udlc.tasks.served import ServedKind

# The friendly routes this server mounts, by what a kind's route takes (ServedKind.takes): every kind's, beside
# the Open Inference Protocol.
FRIENDLY = ("samples", "texts", "draws", "graph", "prompt")


@dataclass
class Served:
    name: str
    file: Opened
    reader: Any  # the kind's reader (udlc.runtime.readers), its session batched where the kind allows
    session: Any  # the session every route runs: the BatchingSession where there is one

    @property
    def kind(self) -> ServedKind:
        return self.file.kind

    @property
    def route(self) -> str | None:
        """Its friendly route, where this server mounts one for its kind."""
        return f"{self.kind.route}/{self.name}" if self.kind.takes in FRIENDLY else None

    def close(self) -> None:
        if isinstance(self.session, BatchingSession):
            self.session.close()


def model_name(file: Opened) -> str:
    spec_name = file.meta.get("spec_name") or file.path.parent.name or "model"
    stem = file.path.name.removesuffix(".onnx")
    return spec_name if stem == "model" else f"{spec_name}-{stem}"


def open_models(paths: list[Path], max_batch: int, max_wait: float, observe: Any = None) -> dict[str, Served]:
    """Every file opened with its reader; `observe(model, samples)` is told each onnxruntime call's batch size."""
    models: dict[str, Served] = {}
    for path in paths:
        file = open_file(path, spinning=False)  # idle threads sleep: requests' parsing needs the CPU
        name = model_name(file)
        if name in models:
            raise UdlcError(f"{models[name].file.path} and {path} are both named '{name}' — serve them one at a "
                            "time, or rename one of the files")
        session = file.session
        if file.kind.batches and max_batch > 1:
            session = BatchingSession(file.session, max_batch, max_wait,
                                      (lambda n, name=name: observe(name, n)) if observe else (lambda n: None))
        else:
            session = _Observed(file.session, (lambda n, name=name: observe(name, n)) if observe else None)
        reader = READERS[file.kind.name](Opened(file.path, session, file.meta, file.kind))
        models[name] = Served(name, file, reader, session)
    return models


class _Observed:
    """A session that tells each call's batch size, as the batching one does."""

    def __init__(self, session: Any, observe: Any):
        self._session, self._observe = session, observe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, output_names: Any, feed: dict[str, Any], *args: Any) -> Any:
        if self._observe is not None:
            first = next(iter(feed.values()), None)
            self._observe(len(first) if getattr(first, "ndim", 0) else 1)
        return self._session.run(output_names, feed, *args)
