"""The spoken-vowel example's figures: examples/audio/vowels-cnn.yaml (a log-mel spectrogram inside the network, a
small CNN on it) trained on a larger folder of synthesized vowels than the repository ships (written here by
examples/audio/make_vowels.py's own function, --per-vowel clips each, split 0.6 / 0.1 / 0.3), then on a reduced
training set of --limit of those clips (`data.limit`: the same validation and test clips) for --epochs epochs, four
ways:

    none        no augmentation: data.augment emptied
    waveform    the spec as written: its waveform augmentations (gain, time shift, noise, pitch shift)
    masks       SpecAugment's masks alone (MASKS added after the spectrogram's batchnorm2d, data.augment emptied)
    both        the waveform augmentations and the masks

each on several training seeds (`train.seed`: initialization, batch order and the augmentations' draws; the split
stays the spec's). Prints each run's test accuracy (the best epoch's checkpoint) and the means; asserts nothing.

    .venv/bin/python bench/audio_example.py [--per-vowel 100] [--limit 50] [--epochs 150] [--seeds 3] [--no-full]
                                            [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
from pathlib import Path

import yaml
from timing import test_accuracy  # bench/timing.py

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "audio" / "vowels-cnn.yaml"
MASKS = [{"freq_mask": {"max_width": 2}}, {"time_mask": {"max_width": 8}}]


def make_vowels():
    """examples/audio/make_vowels.py as a module (it is a script beside its example, not a package)."""
    spec = importlib.util.spec_from_file_location("make_vowels", ROOT / "examples" / "audio" / "make_vowels.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def write_spec(folder: Path, name: str, masks: bool) -> Path:
    """The example spec beside the generated clips, with or without SpecAugment's masks."""
    doc = yaml.safe_load(SPEC.read_text())
    if masks:
        layers = doc["model"]["layers"]
        at = layers.index("batchnorm2d") + 1  # after the spectrogram's: the masks fill with the normalized mean
        doc["model"]["layers"] = layers[:at] + MASKS + layers[at:]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-vowel", type=int, default=100)
    parser.add_argument("--limit", type=int, default=50, help="training clips of the reduced runs")
    parser.add_argument("--epochs", type=int, default=150, help="epochs of the reduced runs (their steps are few)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-full", action="store_true", help="only the reduced runs")
    parser.add_argument("--set", action="append", default=[], help="another override for every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_vowels().write(folder / "vowels", args.per_vowel, seed=1)  # not the shipped clips' seed
        specs = {"none": write_spec(folder, "none", masks=False), "waveform": write_spec(folder, "waveform", False),
                 "masks": write_spec(folder, "masks", masks=True), "both": write_spec(folder, "both", masks=True)}
        extra = {"none": ["data.augment=[]"], "waveform": [], "masks": ["data.augment=[]"], "both": []}
        total, split = 5 * args.per_vowel, "data.split=[0.6, 0.1, 0.3]"
        if not args.no_full:
            acc, epochs, seconds = test_accuracy(specs["waveform"], folder / "runs", [split, *args.set])
            print(f"all {round(0.6 * total)} training clips, the spec as written: test accuracy {acc:.4f} "
                  f"({epochs} epochs, {seconds:.0f} s)", flush=True)
        found: dict[str, list[float]] = {arm: [] for arm in specs}
        for seed in range(args.seeds):
            for arm, spec in specs.items():
                overrides = [f"train.seed={seed}", f"data.limit={args.limit}", f"train.epochs={args.epochs}", split,
                             *extra[arm], *args.set]
                acc, epochs, seconds = test_accuracy(spec, folder / "runs", overrides)
                found[arm].append(acc)
                print(f"seed {seed}  {args.limit} clips  {arm:9s} test accuracy {acc:.4f}  ({epochs} epochs, "
                      f"{seconds:.0f} s)", flush=True)
    print(f"\n{SPEC.name}: {total} synthesized clips ({round(0.3 * total)} test clips); the reduced runs train on "
          f"{args.limit} for {args.epochs} epochs, {args.seeds} seeds")
    for arm, accs in found.items():
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"  {arm:9s} mean test accuracy {statistics.mean(accs):.4f} ± {spread:.4f} (sd)  "
              f"[{', '.join(f'{a:.3f}' for a in accs)}]")


if __name__ == "__main__":
    main()
