"""`extends: base.yaml`: a spec written as another spec plus what differs.

The base (a path relative to the extending file) is loaded, its own `extends` first, and the extending file is
merged over it: mappings key by key, anything else (a list, a number, a string) replaced whole, and so is a
mapping that names another `type` (a schedule of another kind keeps none of the base's schedule options). Every value
keeps the place it was written, so an error in a part that came from the base points into the base file. A file
path in the base's `data` is relative to the base's folder, and stays so.
"""

from __future__ import annotations

import copy
from pathlib import Path

from udlc.errors import SpecError
from udlc.spec.loader import Document, Path_, load_file

MAX_CHAIN = 8  # a spec built on a spec built on … this many: a loop, or a family past reading
FILE_KEYS = ("source", "nodes", "tokenizer_from", "tokenizer_file")  # data keys that may name a file


def load_spec(path: str | Path) -> Document:
    """The spec file at `path`, with its `extends` chain merged in."""
    return _load(Path(path), ())


def _load(path: Path, chain: tuple[Path, ...]) -> Document:
    doc = load_file(path)
    if "extends" not in doc.data:
        return doc
    base = doc.data["extends"]
    where = doc.span(("extends",))
    if not isinstance(base, str) or not base.strip():
        raise SpecError("extends names the spec file this one builds on (got no path)", path="extends", span=where,
                        hint="e.g. extends: efficientnet_b0.yaml (relative to this file)")
    base_path = path.parent / base
    chain = chain + (path.resolve(),)
    if base_path.resolve() in chain:
        loop = " → ".join(p.name for p in chain + (base_path.resolve(),))
        raise SpecError(f"extends goes round in a circle: {loop}", path="extends", span=where,
                        hint="a spec may not build on itself")
    if len(chain) > MAX_CHAIN:
        raise SpecError(f"extends chains more than {MAX_CHAIN} files", path="extends", span=where)
    if not base_path.is_file():
        raise SpecError(f"extends: no spec file at {base_path}", path="extends", span=where,
                        hint="the path is relative to this file")
    parent = _load(base_path, chain)
    _rebase_files(parent, base_path.parent, path.parent)
    return merged(parent, doc)


def merged(base: Document, over: Document) -> Document:
    """`over` merged over `base`, with the spans of whichever file each value now comes from."""
    replaced: list[Path_] = []  # where `over` sets a whole value: the base's spans there go
    data = _deep_merge(base.data, {k: v for k, v in over.data.items() if k != "extends"}, (), replaced)
    keep = {p: s for p, s in base.value_spans.items() if not any(p[:len(r)] == r for r in replaced)}
    keys = {p: s for p, s in base.key_spans.items() if not any(p[:len(r)] == r and p != r for r in replaced)}
    spans = {p: s for p, s in over.value_spans.items() if p[:1] != ("extends",)}
    key_spans = {p: s for p, s in over.key_spans.items() if p[:1] != ("extends",)}
    return Document(over.file, data, over.lines, {**keep, **spans}, {**keys, **key_spans})


def _deep_merge(base: dict, over: dict, path: Path_, replaced: list[Path_]) -> dict:
    """Mappings merged key by key; anything else replaced whole — and a mapping whose `type` changes too
    (`schedule: {type: constant}` over a step schedule keeps none of its step_size)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        here = path + (key,)
        mine = out.get(key)
        if isinstance(value, dict) and isinstance(mine, dict) and not _other_kind(mine, value):
            out[key] = _deep_merge(mine, value, here, replaced)
        else:
            out[key] = copy.deepcopy(value)
            replaced.append(here)
    return out


def _other_kind(mine: dict, value: dict) -> bool:
    """Does `value` name another kind of thing than `mine` does: another `type`, or, over a typed mapping, the
    one-key shorthand `{adamw: {lr: 1e-3}}`?"""
    if "type" in value:
        return value["type"] != mine.get("type")
    return "type" in mine and len(value) == 1 and next(iter(value)) not in mine


def _rebase_files(doc: Document, base_dir: Path, here: Path) -> None:
    """A relative file path in the base's `data` names a file beside the base: say so from `here`."""
    import os

    data = doc.data.get("data")
    if not isinstance(data, dict) or base_dir.resolve() == here.resolve():
        return
    for key in FILE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and (base_dir / value).exists():
            data[key] = os.path.relpath(base_dir / value, here)
