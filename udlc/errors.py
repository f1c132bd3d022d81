"""The one error type users see, and its one renderer.

Every mistake a user can make ends in a `SpecError` (or several, in `SpecErrors`), rendered as

    examples/bad.yaml:14:9: model.layers[3].conv2d.kernel_size: must be > 0 (got -1)
       14 |       - conv2d: {out_channels: 32, kernel_size: -1}
          |         ^

`UdlcError` covers the rest of what a user can get wrong (a missing file, a run folder without a
checkpoint): a message with no source position.
"""

from __future__ import annotations

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
    """'did you mean 'x'?' when `word` looks like a typo of a choice, else None.

    A suggestion that is not a typo is noise (`attention` is not a misspelt `flatten`), so the rule is
    strict. Names are compared lowercased, without `_` and `-` (`batch_norm` ~ `batchnorm2d`). A choice is
    close when it is within a few edits of the word — an edit is a letter inserted, deleted, replaced, or
    two neighbours swapped; 1 for words of 3 to 5 letters, 2 up to 10, 3 beyond, none for shorter — or
    when one starts with the other and the shorter is at least 3 letters and half the longer
    (`val_acc` → `val_accuracy`, `concatenate` → `concat`). The closest choices (fewest edits) are named;
    when three or more are equally close, the word is a typo of none of them in particular and nothing
    is suggested — unless all of them extend the word (`conv`: conv1d, conv2d, conv3d), up to four.
    """
    if not isinstance(word, str):
        return None
    w = _squash(word)
    allowed = 0 if len(w) < 3 else 1 if len(w) <= 5 else 2 if len(w) <= 10 else 3
    scored: dict[str, int] = {}
    for choice in choices:
        c = _squash(choice)
        short, long = sorted((w, c), key=len)
        if len(short) >= 3 and long.startswith(short) and 2 * len(short) >= len(long):
            scored[choice] = len(long) - len(short)
        elif abs(len(c) - len(w)) <= allowed:
            d = _edits(w, c, allowed)
            if d <= allowed:
                scored[choice] = d
    if not scored:
        return None
    best = min(scored.values())
    closest = sorted(c for c, d in scored.items() if d == best)
    family = all(_squash(c).startswith(w) for c in closest)  # `conv`: conv1d, conv2d, conv3d, one stem
    if len(closest) > (4 if family else 2):
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in closest) + "?"


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (Damerau-Levenshtein without re-editing a swapped pair),
    or limit + 1 as soon as it must exceed `limit`."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return prev[-1]


def one_of(choices: Iterable[str]) -> str:
    names = sorted(choices)
    if len(names) > 12:
        names = names[:12] + ["…"]
    return "expected one of: " + ", ".join(names)
