"""A CSV's header and rows for the text tasks (a text column, or two), with the lines a message names."""

from __future__ import annotations

from pathlib import Path

from udlc.errors import SpecError


def csv_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV's header (stripped) and its other non-blank rows with their line numbers; a missing or empty file is a
    SpecError at data.source."""
    import csv

    if not path.is_file():
        raise SpecError(f"no file {path.name} (looked in {path.parent.resolve()})", path="data.source",
                        hint="paths are relative to the spec's folder")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(reader.line_num, row) for reader in [csv.reader(f)] for row in reader if any(c.strip() for c in row)]
    if not rows:
        raise SpecError(f"{path.name} is empty; a CSV needs a header row", path="data.source")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    return header, body
