"""Sentence pairs for a text classifier (`data.text: [first, second]`), as BERT reads them: `[CLS] first [SEP]
second [SEP]`, token type 0 up to and including the first [SEP], 1 after it. A pair longer than the token limit
loses tokens from the end of its longer text first, one at a time (Hugging Face's `longest_first`), so both
texts keep what they can. Read by training (udlc.tasks.sequence_classification) and by `udlc predict` on a
CSV of pairs (udlc.runtime.text), with numpy alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from udlc.errors import SpecError

if TYPE_CHECKING:
    import numpy as np


def encode_pair(tokenizer: Any, first: str, second: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, token types) of a pair, at most `limit` ids: [CLS] first [SEP] second [SEP]."""
    import numpy as np

    a, b = list(tokenizer.encode(first)), list(tokenizer.encode(second))
    room = max(limit - 3, 0)
    while len(a) + len(b) > room:
        (a if len(a) >= len(b) else b).pop()
    cls, sep = tokenizer.id("[CLS]"), tokenizer.id("[SEP]")
    ids = np.array([cls, *a, sep, *b, sep], dtype=np.int64)
    types = np.zeros(len(ids), dtype=np.int64)
    types[len(a) + 2:] = 1
    return ids, types


def read_pair_csv(path: Path, columns: list[str], target: str | int | None) -> tuple[list[tuple[str, str]], list[str]]:
    """A CSV's two text columns as pairs and its label column (by name; default the last column). A missing
    column or an empty cell is a SpecError naming the column, or the file's line."""
    from udlc.data.csv_table import csv_table
    from udlc.errors import did_you_mean

    header, body = csv_table(path)
    wanted = [("text", i, name) for i, name in enumerate(columns)] + [("target", None, header[-1] if target is None
                                                                        else target)]
    at = []
    for key, i, name in wanted:
        if isinstance(name, int) or name not in header:
            where = f"data.{key}" + (f".{i}" if i is not None else "")
            raise SpecError(f"{path.name} has no column '{name}'", path=where,
                            hint=did_you_mean(str(name), header) or f"its columns: {', '.join(header)}")
        at.append(header.index(name))
    pairs, labels = [], []
    for line, row in body:
        cells = [row[c] if c < len(row) else "" for c in at]
        for cell, c in zip(cells, at):
            if not cell.strip():
                raise SpecError(f"{path.name} line {line}: column '{header[c]}' is empty", path="data.source",
                                hint="fill it in, or drop the row")
        pairs.append((cells[0], cells[1]))
        labels.append(cells[2].strip())
    return pairs, labels
