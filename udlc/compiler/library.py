"""udlc's own blocks (udlc/compiler/library/*.yaml): written in the spec language and usable by name in any
spec. They are read once, on first use, with the same loader and models as a spec's own `blocks:`, so an
error inside one points at its line in the library file."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from udlc.spec.loader import Document, Path_, load_file
from udlc.spec.model import BlockSpec, Name
from udlc.spec.validate import validate_model

LIBRARY = Path(__file__).resolve().parent / "library"


@dataclass(frozen=True)
class LibraryBlock:
    spec: BlockSpec
    doc: Document  # the library file, for messages about the block's body
    base: Path_  # where its `layers` sit in that file: ("blocks", name)


@functools.cache
def library_blocks() -> dict[str, LibraryBlock]:
    from pydantic import RootModel

    blocks: dict[str, LibraryBlock] = {}
    for path in sorted(LIBRARY.glob("*.yaml")):
        doc = load_file(path)
        specs = validate_model(RootModel[dict[Name, BlockSpec]], doc.data.get("blocks", {}), doc, ("blocks",)).root
        for name, spec in specs.items():
            if name in blocks:
                raise ValueError(f"library block {name!r} is defined twice ({path.name})")
            blocks[name] = LibraryBlock(spec, doc, ("blocks", name))
    return blocks
