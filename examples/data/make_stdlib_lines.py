"""Writes stdlib-lines.csv: lines of the Python standard library's own modules, each labelled by what it
is — `code`, `comment` or `docstring` — as Python's tokenizer sees it, 1,000 of each, for
examples/text-lines.yaml (task: sequence_classification). Run: python examples/data/make_stdlib_lines.py

The label comes from `tokenize`, not from the line's look: a docstring line is any line of a string that
stands alone as a statement, a comment line one whose first token is a comment. Lines are stripped, so
indentation gives nothing away, and lines shorter than 12 characters are left out.
"""

import csv
import io
import random
import sysconfig
import tokenize
from pathlib import Path

MODULES = ["argparse", "csv", "difflib", "enum", "fractions", "heapq", "inspect", "pathlib", "shutil",
           "statistics", "string", "textwrap", "typing", "zipfile"]
PER_CLASS = 1000


def labelled_lines(source: str):
    kinds: dict[int, str] = {}
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.line.strip().startswith("#"):
            kinds.setdefault(tok.start[0], "comment")
        elif tok.type == tokenize.STRING and (prev is None or prev.type in (tokenize.INDENT, tokenize.NEWLINE,
                                                                             tokenize.DEDENT, tokenize.NL)):
            for line in range(tok.start[0], tok.end[0] + 1):
                kinds[line] = "docstring"
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            kinds.setdefault(tok.start[0], "code")
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            prev = tok
    for number, text in enumerate(source.splitlines(), 1):
        text = text.strip()
        if len(text) >= 12 and number in kinds:
            yield text, kinds[number]


def main() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    by_kind: dict[str, list[str]] = {"code": [], "comment": [], "docstring": []}
    for name in MODULES:
        for text, kind in labelled_lines((stdlib / f"{name}.py").read_text(encoding="utf-8")):
            by_kind[kind].append(text)
    rng = random.Random(0)
    rows = [(text, kind) for kind, texts in by_kind.items() for text in rng.sample(texts, PER_CLASS)]
    rng.shuffle(rows)
    with open(Path(__file__).with_name("stdlib-lines.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["line", "kind"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
