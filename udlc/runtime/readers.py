"""The runtime's half of the served kinds (udlc.tasks.served): the reader of each kind, torch-free. A reader is
a class that opens a file (udlc.runtime.files) and names the kinds it reads in `serves`; what its command
calls on it follows from its kind's verb:

- predict: `answer_file(inputs, id_column) -> str`, the answers as CSV;
- generate: `answer(prompt, Asked) -> Reply`;
- sample: `sample(n, seed, ...)` (udlc.runtime.sample.SampleFile).

`udlc predict`, `generate` and `sample` open a file through `open_reader`, which refuses a file that another
command reads; an HTTP server mounts the same readers on each kind's route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.runtime.dense import DenseModel
from udlc.runtime.files import open_file
from udlc.runtime.fill_mask import FillMaskFile
from udlc.runtime.generate import LanguageModelFile, Seq2SeqFile, TokenLabeller
from udlc.runtime.nodes import GraphClassifier, LinkScorer
from udlc.runtime.predict import Model
from udlc.runtime.sample import SampleFile
from udlc.runtime.text import TextClassifier
from udlc.tasks.served import KINDS

READER_CLASSES = (Model, DenseModel, TextClassifier, GraphClassifier, LinkScorer, LanguageModelFile, Seq2SeqFile, TokenLabeller,
                  FillMaskFile, SampleFile)
READERS: dict[str, type] = {}
for _reader in READER_CLASSES:
    for _kind in _reader.serves:
        if _kind in READERS:
            raise RuntimeError(f"served kind {_kind!r} has two readers: {READERS[_kind].__name__}, {_reader.__name__}")
        READERS[_kind] = _reader
if READERS.keys() != KINDS.keys():  # a kind no command can read, or a reader of no kind
    raise RuntimeError(f"runtime readers and served kinds differ: {sorted(READERS.keys() ^ KINDS.keys())}")


def open_reader(path: str | Path, verb: str, device: str = "cpu") -> Any:
    """The reader of the file at `path`, for the command `udlc <verb>`; a file another command reads is refused
    with the command that does."""
    file = open_file(path, device)
    if file.kind.verb != verb:
        raise UdlcError(f"{file.path} serves {file.kind.description}: read it with `udlc {file.kind.verb}`, "
                        f"not `udlc {verb}`")
    return READERS[file.kind.name](file, device)
