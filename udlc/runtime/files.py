"""An exported file opened for reading, with onnxruntime only: its session, its metadata and the kind it serves
(udlc.tasks.served). Every reader opens its file here and refuses a file of a kind it does not read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.tasks.served import ServedKind, served_kind


def open_session(path: Path, device: str = "cpu", spinning: bool = True) -> tuple[Any, dict[str, str]]:
    """An onnxruntime session on `path` and the file's metadata; every failure a UdlcError. `spinning=False`: its
    threads sleep between calls instead of busy-waiting for the next one — what a server wants, whose CPU the
    requests' parsing needs (busy-waiting helps a command's back-to-back calls, such as generate's tokens)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - installed with udlc[predict]
        raise UdlcError("running a model needs onnxruntime: pip install 'udlc[predict]'") from None
    if not path.is_file():
        raise UdlcError(f"no model file at {path}")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UdlcError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:
        raise UdlcError(f"{path} is not a valid ONNX model: {str(e).splitlines()[0][:200]}") from None
    return session, session.get_modelmeta().custom_metadata_map


@dataclass(frozen=True)
class Opened:
    path: Path
    session: Any  # onnxruntime.InferenceSession
    meta: dict[str, str]  # the file's metadata
    kind: ServedKind  # what it serves


def open_file(path: str | Path, device: str = "cpu", spinning: bool = True) -> Opened:
    session, meta = open_session(Path(path), device, spinning)
    return Opened(Path(path), session, meta, served_kind(meta, path))


def opened(source: str | Path | Opened, device: str, reader: Any) -> Opened:
    """`source` opened (where it is a path) for `reader`, which names the kinds it reads in `serves`."""
    file = source if isinstance(source, Opened) else open_file(source, device)
    if file.kind.name not in reader.serves:
        raise UdlcError(f"{file.path} is not {reader.reads}: it serves {file.kind.description} — "
                        f"`udlc {file.kind.verb}` reads it")
    return file


def damaged(path: Path, e: Exception) -> UdlcError:
    """A udlc file whose metadata lacks a key or holds what it should not."""
    return UdlcError(f"{path}: its udlc metadata is damaged ({type(e).__name__}: {e}) — export it again with "
                     "`udlc export RUN_FOLDER`")
