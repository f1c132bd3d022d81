"""`udlc predict MODEL.onnx clip.wav` (or a folder of clips): each sound file decoded as training decoded the
clips (udlc.data.audio: mono, resampled to the trained rate, cut or padded at the centre to the trained length, as
the file's `audio` metadata says), then answered by the ONNX graph, which standardizes the waveform itself.
numpy and soundfile only: no torch, no scipy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.data.audio import decode, window
from udlc.data.audio_headers import SOUND_SUFFIXES
from udlc.errors import SpecError, UdlcError


def is_sound_model(meta: dict[str, str]) -> bool:
    return json.loads(meta.get("audio") or "null") is not None


def sound_paths(path: Path) -> list[Path]:
    """A sound file, or every sound file in a folder and its subfolders, in name order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UdlcError(f"no sound file or folder at {path}")
    found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SOUND_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not found:
        raise UdlcError(f"{path} holds no sound files ({', '.join(SOUND_SUFFIXES)})")
    return found


def read_clips(meta: dict[str, str], path: Path) -> tuple[list[str], np.ndarray]:
    """The clip at `path`, or every clip in that folder, as the model's input (N, 1, samples), with each one's
    name as the answers show it (its path under the folder)."""
    settings = json.loads(meta["audio"])
    files = sound_paths(path)
    try:
        clips = [window(decode(f, int(settings["sample_rate"])), int(settings["samples"]), settings["crop"])
                 for f in files]
    except SpecError as e:
        raise UdlcError(e.message) from None
    return [str(f.relative_to(path)) if f != path else f.name for f in files], np.stack(clips)[:, None, :]


class ClipTooLong(UdlcError):
    """An upload that decodes to more than a server takes: its values (frames × channels) and seconds."""

    def __init__(self, values: int, seconds: float):
        super().__init__(f"{values} values")
        self.values, self.seconds = values, seconds


def read_upload(meta: dict[str, str], data: bytes, name: str, max_values: int | None = None) -> np.ndarray:
    """An uploaded sound file (`udlc serve`) as the model's input (1, 1, samples), decoded by read_clips itself so
    the answer is predict's for the same file: soundfile reads a path, so the bytes go to a temporary file, and
    its path in a message is replaced by `name`. `max_values`: the most samples (frames × channels) it may decode
    to, read from its header first, as a server bounds what a small compressed file may unpack to."""
    import tempfile

    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        if max_values is not None:
            try:
                info = soundfile.info(str(path))
            except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError):
                info = None  # not a sound file: read_clips says so in predict's words
            if info is not None and info.frames * info.channels > max_values:
                raise ClipTooLong(info.frames * info.channels, info.duration)
        try:
            return read_clips(meta, path)[1]
        except UdlcError as e:
            raise UdlcError(str(e).replace(str(path), name)) from None
