"""A synonyms file, as `synonym_replacement` and `random_insertion` read it (plain Python: `udlc check` reads it):

    CSV   one word a line, then its synonyms:        fast,quick,rapid
    YAML  a mapping of words to lists of synonyms:  fast: [quick, rapid]     (or one synonym: `fast: quick`)

Blank lines and CSV lines starting with `#` are skipped. A word is one word (no whitespace: a text's words are
cut at whitespace, so a key with a space would never match); a synonym may be several words. Words are matched
ignoring case, so the mapping's keys are lowercased; a word listed twice is refused, naming both lines. Every
mistake is a SpecError naming the file's line."""

from __future__ import annotations

from pathlib import Path

from udlc.errors import SpecError

SUFFIXES = (".csv", ".yaml", ".yml")


def read_synonyms(path: Path, where: str) -> dict[str, list[str]]:
    """The file's lowercased word -> synonyms; `where` is the spec path the errors carry (data.augment[i])."""
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError(f"{path.name}: a synonyms file is .csv or .yaml", path=where,
                        hint="each CSV line `word,synonym,...`, or YAML `word: [synonym, ...]`")
    if not path.is_file():
        raise SpecError(f"no synonyms file {path.name} (looked in {path.parent.resolve()})", path=where,
                        hint="paths are relative to the spec's folder")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path.name} is not UTF-8 text (byte {e.start})", path=where,
                        hint="save it as UTF-8") from None
    rows = _csv_rows(text) if path.suffix.lower() == ".csv" else _yaml_rows(text, path.name, where)
    out: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for line, word, synonyms in rows:
        bad = _problem(word, synonyms)
        if bad:
            raise SpecError(f"{path.name} line {line}: {bad}", path=where,
                            hint="each entry is one word and at least one synonym: `fast,quick,rapid`")
        key = word.strip().lower()
        if key in first:
            raise SpecError(f"{path.name} line {line}: '{key}' is listed again (first at line {first[key]})",
                            path=where, hint="join its synonyms into one entry")
        first[key] = line
        out[key] = [s.strip() for s in synonyms]
    if not out:
        raise SpecError(f"{path.name} lists no synonyms", path=where, hint="add lines `word,synonym,...`")
    return out


def _problem(word: str, synonyms: list[str]) -> str | None:
    if not word.strip():
        return "the word is empty"
    if len(word.split()) > 1:
        return f"'{word.strip()}' is several words; a text's words are cut at whitespace, so it would never match"
    if not synonyms:
        return f"'{word.strip()}' has no synonyms"
    if any(not s.strip() for s in synonyms):
        return f"'{word.strip()}' has an empty synonym"
    return None


def _csv_rows(text: str) -> list[tuple[int, str, list[str]]]:
    import csv
    import io

    rows = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        while row and not row[-1].strip():  # a trailing comma is no empty synonym
            row = row[:-1]
        rows.append((line, row[0], row[1:]))
    return rows


def _yaml_rows(text: str, name: str, where: str) -> list[tuple[int, str, list[str]]]:
    """The mapping's entries with their lines, from PyYAML's node tree (safe: composing builds no objects)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{name}{at}: invalid YAML ({getattr(e, 'problem', None) or e})", path=where) from None
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(f"{name} line {node.start_mark.line + 1}: a synonyms file is a mapping of words to lists "
                        "of synonyms", path=where, hint="write `fast: [quick, rapid]`, one word a line")
    rows = []
    for key, value in node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode):
            raise SpecError(f"{name} line {line}: a word is a plain string", path=where)
        if isinstance(value, yaml.ScalarNode):
            synonyms = [value.value] if value.value else []
        elif isinstance(value, yaml.SequenceNode) and all(isinstance(v, yaml.ScalarNode) for v in value.value):
            synonyms = [v.value for v in value.value]
        else:
            raise SpecError(f"{name} line {value.start_mark.line + 1}: '{key.value}' takes a list of synonyms",
                            path=where, hint=f"write `{key.value}: [synonym, ...]`")
        rows.append((line, key.value, synonyms))
    return rows
