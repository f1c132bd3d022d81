"""Writes stdlib-pairs.csv from stdlib-lines.csv: sentence pairs in the form of natural-language inference — a line of
the Python standard library (`line`), a claim about it (`claim`: "this is code", "this is a comment" or "this is
part of a docstring") and whether the line bears the claim out (`holds`: yes or no), each line once, with its
true kind or, as often, one of the two others. For examples/text-pairs.yaml (task sequence_classification on two
text columns, read as [CLS] line [SEP] claim [SEP]). Run: python examples/data/make_stdlib_pairs.py
"""

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent
CLAIMS = {"code": "this is code", "comment": "this is a comment", "docstring": "this is part of a docstring"}


def main() -> None:
    with open(HERE / "stdlib-lines.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(0)
    pairs = []
    for i, row in enumerate(rows):
        holds = i % 2 == 0  # as many claims that hold as claims that do not
        kind = row["kind"] if holds else rng.choice([k for k in CLAIMS if k != row["kind"]])
        pairs.append((row["line"], CLAIMS[kind], "yes" if holds else "no"))
    rng.shuffle(pairs)
    with open(HERE / "stdlib-pairs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["line", "claim", "holds"])
        w.writerows(pairs)


if __name__ == "__main__":
    main()
