"""`udlc check` says what a folder of sound clips (or a CSV naming them) holds under its OK line: the classes and
their file counts, and the spread of the clips' lengths against `duration`; a folder of pictures, its classes and
counts. `--format json` gives the same text as the `listing` field. The lengths are held to soundfile's own
reading of each file, the counts to the files written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

LENGTHS = {"high": [0.3, 0.45, 0.6, 0.8], "low": [0.25, 0.5, 0.7]}  # seconds: some cut, one as long, some padded


def write_clips(folder: Path) -> list[Path]:
    """WAV tones, one class folder each, at 8 kHz; the high class in stereo."""
    files = []
    for name, lengths in LENGTHS.items():
        (folder / name).mkdir(parents=True)
        for i, seconds in enumerate(lengths):
            t = np.arange(int(8000 * seconds)) / 8000
            y = 0.4 * np.sin(2 * np.pi * (1200 if name == "high" else 300) * t)
            files.append(folder / name / f"{i}.wav")
            sf.write(files[-1], np.stack([y, y], 1) if name == "high" else y, 8000)
    return files


def spec_file(path: Path, data: dict, layers: list, input_shape: list) -> Path:
    doc = {"udlc": 1, "name": path.stem, "data": data, "model": {"input": input_shape, "layers": layers},
           "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.01}, "train": {"epochs": 1}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> tuple[dict[str, Path], list[Path]]:
    from PIL import Image

    root = tmp_path_factory.mktemp("check")
    files = write_clips(root / "clips")
    (root / "clips.csv").write_text("path,label\n" + "".join(f"{f.relative_to(root)},{f.parent.name}\n"
                                                             for f in files))
    for name, count in (("cat", 2), ("dog", 3)):
        (root / "pictures" / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (8, 8), 40 * i).save(root / "pictures" / name / f"{i}.png")
    sound = [{"conv1d": {"out_channels": 2, "kernel_size": 8, "stride": 4}}, "relu", "global_maxpool", {"linear": 2}]
    clip = {"sample_rate": 8000, "duration": 0.5}
    return {"folder": spec_file(root / "folder.yaml", {"source": "clips/", **clip}, sound, [1, 4000]),
            "csv": spec_file(root / "table.yaml", {"source": "clips.csv", "audio": "path", "target": "label", **clip},
                             sound, [1, 4000]),
            "pictures": spec_file(root / "pictures.yaml", {"source": "pictures/", "image_size": [8, 8],
                                                           "channels": 1}, ["flatten", {"linear": 2}], [1, 8, 8]),
            "digits": spec_file(root / "digits.yaml", {"source": "digits"}, [{"linear": 10}], [64])}, files


def expected_clips(name: str, files: list[Path]) -> str:
    """The listing, from soundfile's reading of each file (not the headers the check reads)."""
    seconds = sorted(sf.info(str(f)).duration for f in files)
    median = seconds[len(seconds) // 2]  # 7 clips: the middle one
    cut, padded = sum(s > 0.5 for s in seconds), sum(s < 0.5 for s in seconds)
    assert (cut, padded) == (3, 3)  # the lengths were written so: one of 0.5 s is neither
    return (f"{name}: 7 clips in 2 classes (high 4, low 3); {seconds[0]:.2f}–{seconds[-1]:.2f} s (median "
            f"{median:.2f} s): 3 cut and 3 padded to 0.5 s, read at 8000 Hz, mono")


def udlc_check(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "udlc", "check", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_check_lists_the_clips_and_pictures_under_its_ok_line(specs) -> None:
    paths, files = specs
    lines = udlc_check(*(str(p) for p in paths.values())).splitlines()
    assert [line.split()[1] for line in lines if line.startswith("OK ")] == [str(p) for p in paths.values()]
    below = {line.split()[1]: lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("  ") else None
             for i, line in enumerate(lines) if line.startswith("OK ")}
    assert below[str(paths["folder"])] == "  " + expected_clips("clips/", files)
    assert below[str(paths["csv"])] == "  " + expected_clips("clips.csv", files)
    assert below[str(paths["pictures"])] == "  pictures/: 5 pictures in 2 classes (cat 2, dog 3)"
    assert below[str(paths["digits"])] is None  # a built-in set: nothing beyond its shape to list


def test_check_json_holds_the_listing(specs) -> None:
    paths, files = specs
    results = json.loads(udlc_check("--format", "json", str(paths["csv"]), str(paths["digits"])))
    assert [r["listing"] for r in results] == [expected_clips("clips.csv", files), None]
