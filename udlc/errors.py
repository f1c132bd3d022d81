"""The one error type users see, and its one renderer.

Every mistake a user can make ends in a `SpecError` (or several, in `SpecErrors`), rendered as

    examples/bad.yaml:14:9: model.layers[3].conv2d.kernel_size: must be > 0 (got -1)
       14 |       - conv2d: {out_channels: 32, kernel_size: -1}
          |         ^

`UdlcError` covers the rest of what a user can get wrong (a missing file, a run folder without a
checkpoint): a message with no source position.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Span:
    """A position in a source file; line and col are 1-based. `text` is the whole source line."""

    file: str
    line: int
    col: int
    text: str = ""


class UdlcError(Exception):
    """A user-facing error without a source position. The CLI prints it and exits 1."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {self}"

    def to_json(self) -> dict:
        return {"message": str(self)}


class SpecError(UdlcError):
    """A mistake in a spec, at a place in it."""

    exit_code = 2

    def __init__(self, message: str, *, path: str = "", span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.span = span
        self.hint = hint

    def headline(self) -> str:
        where = f"{self.span.file}:{self.span.line}:{self.span.col}: " if self.span else ""
        path = f"{self.path}: " if self.path else ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{where}{path}{self.message}{hint}"

    def render(self) -> str:
        """The headline, then the source line with a caret under the column."""
        out = self.headline()
        if self.span and self.span.text:
            text, col = self.span.text.rstrip(), self.span.col
            if len(text) > 100:  # a very long line: show a window around the column
                start = max(col - 50, 0)
                text, col = text[start:start + 100], col - start
            gutter = f"{self.span.line:>5} | "
            caret = " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^"
            out += f"\n{gutter}{text}\n{caret}"
        return out

    def to_json(self) -> dict:
        span = self.span
        return {
            "file": span.file if span else None,
            "line": span.line if span else None,
            "col": span.col if span else None,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return self.headline()


class SpecErrors(UdlcError):
    """All the errors found in one file, in source order, as a compiler reports them."""

    exit_code = 2

    def __init__(self, errors: Iterable[SpecError]):
        def order(e: SpecError):
            return (e.span.line, e.span.col) if e.span else (0, 0)

        unique = {(e.span, e.path, e.message): e for e in errors}  # one mistake, said once
        self.errors = sorted(unique.values(), key=order)
        super().__init__("\n".join(e.headline() for e in self.errors))

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)

    def to_json(self) -> list[dict]:  # type: ignore[override]
        return [e.to_json() for e in self.errors]


def show(value: object) -> str:
    """A value as a spec would write it: true, null, 'text', [1, 2], {a: 1}; cut when long."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """'did you mean 'x'?' for the closest choice, or None when nothing is close."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def one_of(choices: Iterable[str]) -> str:
    names = sorted(choices)
    if len(names) > 12:
        names = names[:12] + ["…"]
    return "expected one of: " + ", ".join(names)
