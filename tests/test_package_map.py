"""The package map (docs/internals.md, linked from the README) shows every part of the package, and nothing that is
not there: a new package or top-level module is added to the map when it is added to udlc/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mapped_parts() -> list[str]:
    text = (ROOT / "docs" / "internals.md").read_text(encoding="utf-8")
    section = text.split("## The package map", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `udlc/([\w.]+/?)`", section, flags=re.M)


def test_the_package_map_lists_every_part_of_udlc_once() -> None:
    parts = {p.name + "/" for p in (ROOT / "udlc").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.name for p in (ROOT / "udlc").glob("*.py") if p.name != "__init__.py"}
    mapped = mapped_parts()
    assert len(mapped) == len(set(mapped)), "a part is mapped twice"
    assert set(mapped) == parts, f"missing from the map: {sorted(parts - set(mapped))}; " \
                                 f"mapped but not in udlc/: {sorted(set(mapped) - parts)}"
