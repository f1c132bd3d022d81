"""Where weights come from: one safetensors file, a torch state dict, a Hugging Face model folder, or a udlc run
folder. `read_names` says what a source holds (name -> shape, dtype) from headers alone, with the standard
library only, so `udlc check` can use it; `load_tensors` reads the tensors (torch, at train time).

A pickled file (`.pt`, `.pth`, `.bin`) is only ever opened by `torch.load(..., weights_only=True)`, which refuses
any object but tensors and plain containers: a checkpoint from the internet cannot run code here."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udlc.errors import UdlcError

if TYPE_CHECKING:
    import torch

# A header is JSON of names, dtypes, shapes and offsets: a few MB for the largest published models.
MAX_HEADER_BYTES = 100 << 20
PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
# A Hugging Face folder's weight files, in the order transformers itself prefers them.
HF_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

Names = dict[str, tuple[tuple[int, ...], str]]  # tensor name -> (shape, dtype as safetensors spells it)


@dataclass(frozen=True)
class Source:
    """A weights source resolved to its files. `kind` is safetensors, torch, hf (a model folder) or run (a udlc
    run folder's checkpoint, whose names are `models.<network>.<name>`). `files` maps each file to the names it
    holds when an index says so (sharded folders), else to None (the file's own header says)."""

    path: Path
    kind: str
    files: tuple[Path, ...]
    index: dict[str, Path] | None = None

    @property
    def needs_torch(self) -> bool:
        """Whether only torch can list its tensors (a pickled state dict)."""
        return any(f.suffix in PICKLE_SUFFIXES for f in self.files) and self.index is None

    def describe(self) -> str:
        return f"{self.path} ({_KIND_WORDS[self.kind]})"


_KIND_WORDS = {"safetensors": "safetensors", "torch": "torch state dict", "hf": "Hugging Face folder",
               "run": "udlc run"}


def open_source(path: str | Path, checkpoint: Path | None = None) -> Source:
    """Resolve `path` to its weight files; a clear UdlcError for anything else. `checkpoint` picks a run folder's
    checkpoint file (the trainer knows which one a run ends with; without it, best if there is one, else last)."""
    p = Path(path)
    if not p.exists():
        raise UdlcError(f"no weights at {p} — give a .safetensors file, a torch state dict, a Hugging Face "
                        "model folder or a udlc run folder")
    if p.is_file():
        if p.suffix == ".safetensors":
            return Source(p, "safetensors", (p,))
        if p.suffix in PICKLE_SUFFIXES:
            return Source(p, "torch", (p,))
        raise UdlcError(f"{p}: not a weights file udlc reads — give a .safetensors file, a torch state dict "
                        "(.pt, .pth, .bin), a Hugging Face model folder or a udlc run folder")
    if (p / "run.json").is_file():
        found = checkpoint or next((c for c in (p / "checkpoints" / "best.safetensors",
                                                p / "checkpoints" / "last.safetensors") if c.is_file()), None)
        if found is None:
            raise UdlcError(f"{p} is a udlc run folder without a checkpoint — give a run that finished an epoch")
        return Source(p, "run", (found,))
    for name in HF_FILES:
        f = p / name
        if not f.is_file():
            continue
        if name.endswith(".index.json"):
            index = _read_index(f)
            files = tuple(sorted(set(index.values())))
            for shard in files:
                if not shard.is_file():
                    raise UdlcError(f"{f} names the shard {shard.name}, which is not in {p}")
            return Source(p, "hf", files, index)
        return Source(p, "hf", (f,))
    raise UdlcError(f"{p} holds no weights udlc reads: a Hugging Face folder has {', '.join(HF_FILES)}; a udlc run "
                    "folder has run.json")


def _read_index(f: Path) -> dict[str, Path]:
    """A sharded folder's index: {"weight_map": {tensor name: shard file name}}."""
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        return {str(name): f.parent / Path(str(shard)).name for name, shard in weight_map.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UdlcError(f"{f}: not a weights index ({type(e).__name__}: {e}) — transformers writes "
                        '{"weight_map": {name: shard}}') from None


def safetensors_header(f: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8 bytes little-endian length, then the JSON): no tensor is read."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(8)
            size = f.stat().st_size
            if len(head) < 8:
                raise UdlcError(f"{f}: not a safetensors file (shorter than its 8-byte header length)")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise UdlcError(f"{f}: not a safetensors file (its header length {length} does not fit the file)")
            header = json.loads(fh.read(length).decode("utf-8"))
    except OSError as e:
        raise UdlcError(f"cannot read {f}: {e.strerror}") from None
    except (UnicodeDecodeError, ValueError):
        raise UdlcError(f"{f}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UdlcError(f"{f}: not a safetensors file (its header is not a JSON object)")
    return header


def safetensors_names(f: Path) -> Names:
    out: Names = {}
    for name, entry in safetensors_header(f).items():
        if name == "__metadata__":
            continue
        try:
            out[name] = (tuple(int(d) for d in entry["shape"]), str(entry["dtype"]))
        except (KeyError, TypeError, ValueError):
            raise UdlcError(f"{f}: tensor {name!r} has no shape and dtype in the header — the file is "
                            "damaged") from None
    return out


def read_names(source: Source | str | Path) -> Names | None:
    """name -> (shape, dtype) of every tensor, from headers alone (no torch, no numpy); None when only torch can
    list them (a pickled state dict, which `load_tensors` reads)."""
    source = source if isinstance(source, Source) else open_source(source)
    if source.needs_torch:
        return None
    if source.index is not None and all(f.suffix == ".safetensors" for f in source.files):
        per_file = {f: safetensors_names(f) for f in source.files}
        out: Names = {}
        for name, f in source.index.items():
            if name not in per_file[f]:
                raise UdlcError(f"{source.path}: the index puts {name} in {f.name}, which does not hold it")
            out[name] = per_file[f][name]
        return out
    if source.index is not None:
        return None  # a sharded pytorch_model.bin: the index has names, only torch has their shapes
    return safetensors_names(source.files[0])


def load_tensors(source: Source | str | Path, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a source (only `names`, when given), on the CPU."""
    source = source if isinstance(source, Source) else open_source(source)
    out: dict[str, Any] = {}
    for f in source.files:
        wanted = None if names is None or source.index is None else {
            n for n in names if source.index.get(n) == f}
        if wanted is not None and not wanted:
            continue
        tensors = _safetensors(f, names) if f.suffix == ".safetensors" else _torch_file(f)
        out.update(tensors if names is None else {k: v for k, v in tensors.items() if k in names})
    return out


def _safetensors(f: Path, names: set[str] | None) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys() if names is None or k in names}


def _torch_file(f: Path) -> dict[str, Any]:
    """A pickled state dict through weights_only=True (tensors and plain containers only); nested dicts are
    flattened with dots, as torch names a module's state."""
    import pickle

    import torch

    try:
        data = torch.load(f, map_location="cpu", weights_only=True, mmap=_is_zip(f))
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UdlcError(f"{f}: refused: it is not a plain torch state dict that loads with weights_only=True "
                        f"({first[:200]}) — save the weights alone (torch.save(model.state_dict(), path)) or as "
                        "safetensors") from None
    flat: dict[str, Any] = {}
    _flatten(data, "", flat, f)
    if not flat:
        raise UdlcError(f"{f}: holds no tensors — save the weights with torch.save(model.state_dict(), path)")
    return flat


def _flatten(obj: Any, prefix: str, out: dict[str, Any], f: Path) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, f)
    elif obj is not None and not isinstance(obj, (int, float, str, bool)):
        raise UdlcError(f"{f}: {prefix or 'the file'} is a {type(obj).__name__}, not a tensor — a state dict "
                        "maps names to tensors (torch.save(model.state_dict(), path))")


def _is_zip(f: Path) -> bool:
    """torch.save's format since 1.6 is a zip, which torch.load can map instead of reading whole."""
    with open(f, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def sha256(source: Source) -> str:
    """The hash run.json records: of the file, or for several (shards), of their hashes in name order."""
    digests = []
    for f in sorted(source.files):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests.append(h.hexdigest())
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
