"""Sound clips as `udlc check` sees them: which files, which classes, and each clip's length from its header alone
(WAV's fmt and data chunks, FLAC's STREAMINFO, an Ogg stream's first and last pages), so check decodes nothing.

The standard library only, never numpy (soundfile imports numpy on import, so it is the loader's, in
udlc.data.audio). The layout checks (class folders, a CSV's columns, missing files) are shared with the loader, so
check and training refuse the same sources in the same words.
"""

from __future__ import annotations

import csv
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from udlc.data.layout import class_files
from udlc.errors import SpecError

if TYPE_CHECKING:  # the runtime's readers import this module (through udlc.data.audio): no pydantic there
    from udlc.data.peek import DataSignature
    from udlc.spec.data import DataSpec

SOUND_SUFFIXES = (".wav", ".flac", ".ogg")


def sound_samples(spec: DataSpec) -> int:
    """The samples of one clip as the model reads it: sample_rate × duration."""
    return round(spec.sample_rate * spec.duration)


def clip_files(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """The class names (the subfolders, sorted), every sound file in class order, and each file's class."""
    if not folder.is_dir():
        raise SpecError(f"no folder at {folder}", path="data.source", hint="the path is relative to the spec")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    return class_files(folder, classes, SOUND_SUFFIXES, "sound clips", ("yes/1.wav", "no/1.wav"))


def sound_files_under(folder: Path, what: str = "data.source") -> list[Path]:
    """Every sound file under `folder`, subfolders too (hidden ones left out), sorted by path: a background
    folder's clips."""
    if not folder.is_dir():
        raise SpecError(f"no folder at {folder}", path=what, hint="the path is relative to the spec")
    found = sorted(f for f in folder.rglob("*") if f.suffix.lower() in SOUND_SUFFIXES and f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if not found:
        raise SpecError(f"{folder} holds no sound files ({', '.join(SOUND_SUFFIXES)})", path=what)
    return found


def csv_clips(path: Path, spec: DataSpec) -> tuple[list[str], list[Path], list[int]]:
    """A CSV of clips: each row's file (its `audio` cell, relative to the CSV) and label (its `target` cell, the
    last column by default); the classes are the labels' sorted distinct values."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, None) or []]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    column = _column(header, spec.audio, "data.audio", path)
    target = _column(header, spec.target if spec.target is not None else -1, "data.target", path)
    if column == target:
        raise SpecError(f"{path.name}: the clips' column '{header[column]}' is also the target", path="data.target",
                        hint="name the label column with `target:`")
    files, names = [], []
    for line, row in rows:
        if len(row) <= max(column, target) or not row[column].strip() or not row[target].strip():
            raise SpecError(f"{path.name} line {line}: needs a file in '{header[column]}' and a label in "
                            f"'{header[target]}'", path="data.source", hint="fill the row in, or drop it")
        file = path.parent / row[column].strip()
        if not file.is_file():
            raise SpecError(f"{path.name} line {line}: no file at {file}", path="data.source",
                            hint="paths in the CSV are relative to the CSV")
        files.append(file)
        names.append(row[target].strip())
    if not files:
        raise SpecError(f"{path.name} holds no clips", path="data.source")
    classes = sorted(set(names))
    if len(classes) < 2:
        raise SpecError(f"{path.name}: every clip is labelled '{classes[0]}'; there is nothing to tell apart",
                        path="data.target", hint="check the target column")
    index = {c: i for i, c in enumerate(classes)}
    return classes, files, [index[n] for n in names]


def _column(header: list[str], name: str | int | None, where: str, path: Path) -> int:
    if isinstance(name, int):
        if -len(header) <= name < len(header):
            return name % len(header)
        raise SpecError(f"{path.name} has {len(header)} columns; there is no column {name}", path=where)
    if name not in header:
        raise SpecError(f"{path.name} has no column '{name}'", path=where,
                        hint=f"its columns: {', '.join(header)}")
    return header.index(name)


def clip_seconds(path: Path) -> float:
    """A clip's length in seconds from its header; a SpecError naming the file if the header is not WAV, FLAC or
    Ogg (Vorbis, Opus)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            if head[:3] == b"ID3" and len(head) >= 10:  # an ID3v2 tag before a FLAC stream: its size is syncsafe
                f.seek(10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])))
                head = f.read(4096)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav_seconds(f, head)
            if head[:4] == b"fLaC" and len(head) >= 42:
                info = int.from_bytes(head[18:26], "big")  # STREAMINFO, past its 10 bytes of block sizes
                rate, total = info >> 44, info & (2**36 - 1)
                if rate:
                    return total / rate
            if head[:4] == b"OggS":
                return _ogg_seconds(f, head)
    except (OSError, struct.error, ValueError) as e:
        raise SpecError(f"cannot read the sound file {path}: {e}", path="data.source",
                        hint="remove or replace the file") from None
    raise SpecError(f"cannot read the sound file {path}: its header is not WAV, FLAC or Ogg", path="data.source",
                    hint="remove or replace the file, or convert it (e.g. ffmpeg -i in.mp3 out.flac)")


def _wav_seconds(f, head: bytes) -> float:
    rate = block = None
    f.seek(12)
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            break
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"fmt ":
            fmt = f.read(size + size % 2)
            rate, block = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
        elif kind == b"data" and rate and block:
            if not 0 < size < 2**32 - 1:  # a streaming writer left the size unset: the data run to the file's end
                start = f.tell()
                size = f.seek(0, 2) - start
            return size // block / rate
        else:
            f.seek(size + size % 2, 1)
    raise ValueError("a WAV file without fmt and data chunks")


def _ogg_seconds(f, head: bytes) -> float:
    segments = head[26]
    packet = head[27 + segments:]
    if packet[:7] == b"\x01vorbis":
        rate, skip = struct.unpack("<I", packet[12:16])[0], 0
    elif packet[:8] == b"OpusHead":
        rate, skip = 48000, struct.unpack("<H", packet[10:12])[0]  # Opus counts at 48 kHz after its pre-skip
    else:
        raise ValueError("an Ogg stream of neither Vorbis nor Opus")
    end = f.seek(0, 2)
    f.seek(max(0, end - 65536))  # the last page (at most 65307 bytes) holds the stream's last granule position
    tail = f.read()
    last = tail.rfind(b"OggS")
    if last < 0 or not rate:
        raise ValueError("an Ogg stream without its last page")
    return (int.from_bytes(tail[last + 6:last + 14], "little") - skip) / rate


def read_sound(path: Path, spec: DataSpec, base_dir: Path) -> DataSignature:
    """Sound clips (a folder of them, or a CSV naming them): the classes and files listed, each length read
    from its header, none decoded; and each background folder's clips found."""
    classes, files, labels = csv_clips(path, spec) if path.is_file() else clip_files(path)
    background_files(spec, base_dir)
    return _signature(path.name if path.is_file() else path.name + "/", spec, classes, files, labels)


def _signature(name: str, spec: DataSpec, classes: list[str], files: list[Path], labels: list[int]
               ) -> DataSignature:
    from udlc.data.peek import DataSignature

    shape = (1, sound_samples(spec))
    return DataSignature(name, sample_size=math.prod(shape), natural_shape=shape, task="classification",
                         n_classes=len(classes), classes=classes, text_labels=True,
                         listing=listing(name, spec, classes, files, labels))


def background_files(spec: DataSpec, base_dir: Path) -> dict[int, list[Path]]:
    """Each `background` augmentation's clips, by its place in data.augment (its folder is relative to the spec);
    a missing or empty folder is refused at its line."""
    return {i: sound_files_under(Path(base_dir) / aug.source, f"data.augment.{i}")
            for i, aug in enumerate(spec.augment) if aug.type == "background"}


def listing(name: str, spec: DataSpec, classes: list[str], files: list[Path], labels: list[int]) -> str:
    """What `udlc check` says of the clips: the classes and their file counts, and the spread of the clips'
    lengths against `duration` (how many are cut, how many padded)."""
    counts = [labels.count(i) for i in range(len(classes))]
    seconds = sorted(clip_seconds(f) for f in files)
    median = (seconds[(len(seconds) - 1) // 2] + seconds[len(seconds) // 2]) / 2
    cut = sum(s > spec.duration for s in seconds)
    padded = sum(s < spec.duration for s in seconds)
    shown = ", ".join(f"{c} {n}" for c, n in zip(classes[:8], counts)) + (" …" if len(classes) > 8 else "")
    return (f"{name}: {len(files)} clips in {len(classes)} classes ({shown}); {seconds[0]:.2f}–{seconds[-1]:.2f} s "
            f"(median {median:.2f} s): {cut} cut and {padded} padded to {spec.duration:g} s, "
            f"read at {spec.sample_rate} Hz, mono")
