"""How each file kind is read: one entry per suffix registered in udlc.spec.sources (which holds the data keys
a kind reads), with its header reader for `udlc check` and its loader for training, so the two stay twins and a
new kind is one entry here. `peek` and `load_arrays` are the data layer's two doors to a source: a built-in set
(udlc.data.builtin_sets) or a file.

This module and the header readers use the standard library only (`udlc check` runs on every save); each
loader imports numpy when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import udlc.data.audio_headers as audio_headers
import udlc.data.peek as headers
from udlc.data.layout import check_builtin_options, data_file, no_samples
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import FOLDER, SOURCES, BuiltinSet

if TYPE_CHECKING:
    from udlc.data.arrays import Arrays


@dataclass(frozen=True)
class FileReader:
    # (path, spec) -> what the file will give the model, from its header (or a small file's rows)
    peek: Callable[[Path, DataSpec], headers.DataSignature]
    # (path, spec, lazy_bytes) -> its raw samples; only an .npy larger than lazy_bytes stays on disk (memmap)
    load: Callable[[Path, DataSpec, int | None], Arrays]


def _load_csv(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    from udlc.data.sources import load_csv

    return load_csv(path, spec)


def _load_npz(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    from udlc.data.sources import load_npz

    return load_npz(path, spec)


def _load_npy(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    from udlc.data.sources import load_npy

    return load_npy(path, spec, lazy_bytes)


def _load_pictures(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    from udlc.data.sources import load_pictures

    return load_pictures(path, spec)


FILE_READERS: dict[str, FileReader] = {
    ".csv": FileReader(peek=headers.read_csv_header, load=_load_csv),
    ".npz": FileReader(peek=headers.read_npz_header, load=_load_npz),
    ".npy": FileReader(peek=headers.read_npy_header, load=_load_npy),
    FOLDER: FileReader(peek=headers.read_picture_folder, load=_load_pictures),  # pictures/<class>/*.png
}

# Text (.txt) is tokenized by udlc.data.text, not read as samples; every other registered kind has its reader.
_kinds = {entry.name for entry in SOURCES.files() if not entry.text}
if _kinds != set(FILE_READERS):
    raise RuntimeError(f"file kinds without a reader: {sorted(_kinds - set(FILE_READERS))}; "
                       f"readers of no registered kind: {sorted(set(FILE_READERS) - _kinds)}")


def peek(spec: DataSpec, base_dir: Path) -> headers.DataSignature:
    """The signature of spec's source, for `udlc check`; raises the loaders' SpecErrors for a missing or
    malformed file, and refuses samples without labels or `normalize: symmetric` unless a generative task
    reads them (`spec.for_generation()`), as load_arrays does."""
    refuse_symmetric(spec)
    entry = SOURCES.find(spec.source)
    if isinstance(entry, BuiltinSet):
        check_builtin_options(spec)
        return headers.builtin_signature(entry)
    path = data_file(spec, base_dir)
    if spec.sound:  # sound clips, a folder of them or a CSV naming them: read as sound, whatever the kind
        signature = audio_headers.read_sound(path, spec, base_dir)
    else:
        signature = FILE_READERS[entry.name].peek(path, spec)  # a validated spec: a known kind
    refuse_unlabeled(spec, signature.labeled, signature.source)
    return signature


def load_arrays(spec: DataSpec, base_dir: Path, seed: int, lazy_bytes: int | None = None) -> Arrays:
    """The source's raw samples. An .npy file larger than `lazy_bytes` gives x as LazyRows, not in memory."""
    refuse_symmetric(spec)
    entry = SOURCES.find(spec.source)
    if isinstance(entry, BuiltinSet):
        from udlc.data.sources import load_builtin

        return load_builtin(entry, spec, seed)
    path = data_file(spec, base_dir)
    if spec.sound:
        from udlc.data.audio import load_sound

        arrays = load_sound(path, spec, base_dir, seed)
    else:
        arrays = FILE_READERS[entry.name].load(path, spec, lazy_bytes)
    refuse_unlabeled(spec, arrays.labeled, arrays.name)
    if len(arrays.x) == 0:
        raise no_samples(path, arrays.dropped_rows)
    return arrays


def refuse_symmetric(spec: DataSpec) -> None:
    if spec.normalize == "symmetric" and not spec.generation:
        raise SpecError("symmetric scales samples into [-1, 1] for a generative model's tanh output; this task "
                        "reads them as inputs", path="data.normalize",
                        hint="use `normalize: standard` (or minmax for [0, 1])")


def refuse_unlabeled(spec: DataSpec, labeled: bool, source: str) -> None:
    if not labeled and not spec.generation:
        raise SpecError(f"{source} holds samples without labels; this task learns from labelled samples",
                        path="data.source", hint="give labels (an .npz with arrays x and y; a folder of pictures "
                        "with a subfolder per class), or train an unconditional task: gan, vae, diffusion "
                        "(without a label input) or autoencoder")
