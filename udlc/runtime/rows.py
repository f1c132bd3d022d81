"""A CSV of samples read row by row for `udlc predict` (numbers, category names, texts): each row with its line
in the file, so that every answer and every error can say which row it is about. Standard library only."""

from __future__ import annotations

import csv
from pathlib import Path

from udlc.errors import UdlcError, did_you_mean


def read_csv_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """A CSV's rows from the first to the last that holds a cell, each with its line: blank lines before or
    after them (a trailing newline) hold no sample, but one between them is kept, for the reader to refuse
    (skipping it would shift every answer after it against its row)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not a column name
            reader = csv.reader(f)
            rows, lines = [], []
            for row in reader:
                if rows or not is_blank(row):
                    rows.append(row)
                    lines.append(reader.line_num)
            while rows and is_blank(rows[-1]):
                rows.pop()
                lines.pop()
    except UnicodeDecodeError as e:
        raise UdlcError(f"{path} is not UTF-8 text (byte {e.start}) — save the CSV as UTF-8") from None
    except csv.Error as e:
        raise UdlcError(f"{path} line {reader.line_num}: not a valid CSV row ({e})") from None
    except OSError as e:
        raise UdlcError(f"cannot read {path}: {e.strerror or e}") from None
    if not rows:
        raise UdlcError(f"{path} holds no rows — give a header row and one row of values per sample")
    return rows, lines


def is_blank(row: list[str]) -> bool:
    return not any(c.strip() for c in row)


def refuse_blank_rows(rows: list[list[str]], lines: list[int], source: str, what: str = "a sample") -> None:
    """An empty row among the samples is an error naming its line: it has no answer to give."""
    for row, line in zip(rows, lines):
        if is_blank(row):
            raise UdlcError(f"{source} line {line} is an empty row: every row below the header is {what} that "
                            "gets one answer — fill it in, or delete the line")


def refuse_id(id_column: str | None, inputs: Path) -> None:
    """--id names a CSV's column: a reader of other files has none to name its answers by."""
    if id_column is not None:
        raise UdlcError(f"--id names a column of a CSV file of samples; {inputs} is none — leave --id out")


def column_index(header: list[str], name: str, source: str, why: str) -> int:
    """Where a column the caller named stands in the header; one it lacks is an error saying `why` it is needed."""
    if name not in header:
        hint = did_you_mean(name, header) or f"its header: {', '.join(header)}"
        raise UdlcError(f"{source} has no column '{name}', which {why} — {hint}")
    return header.index(name)
