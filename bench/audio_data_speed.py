"""Sound clips as data: what decoding costs once and what the cache saves, udlc's numpy resampler against
scipy.signal.resample_poly (the same filter), and each waveform augmentation's time per batch (~1 min).

    .venv/bin/python bench/audio_data_speed.py [--clips 200] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from timing import timed  # bench/timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200, help="1-second 44.1 kHz WAV clips to decode")
    parser.add_argument("--batch", type=int, default=64, help="clips per augmented batch (16 kHz, 1 s)")
    args = parser.parse_args()
    import soundfile as sf
    import torch
    from scipy.signal import resample_poly

    from udlc.data.audio import read_clips, resample
    from udlc.data.audio_headers import clip_files
    from udlc.data import augment_batch
    from udlc.spec.data import DataSpec

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        for k in range(args.clips):
            (folder / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
            sf.write(folder / f"c{k % 2}" / f"{k}.wav", rng.uniform(-0.5, 0.5, 44100), 44100)
        _, files, _ = clip_files(folder)
        start = time.perf_counter()
        read_clips(files, 16000, folder)
        first = time.perf_counter() - start
        again = timed(lambda: read_clips(files, 16000, folder), 5)
        print(f"{args.clips} clips of 1 s at 44.1 kHz -> 16 kHz: decoded and cached {first:.2f} s "
              f"({args.clips / first:.0f} clips/s); from the cache {again[0] * 1e3:.1f} ms (median {again[1] * 1e3:.1f})")

    x = rng.standard_normal(44100)
    ours = timed(lambda: resample(x, 44100, 16000), 7)
    theirs = timed(lambda: resample_poly(x, 160, 441), 7)
    print(f"resampling 1 s 44.1 -> 16 kHz: udlc (numpy) {ours[0] * 1e3:.1f} ms, scipy {theirs[0] * 1e3:.1f} ms "
          f"(minimums); max difference {np.abs(resample(x, 44100, 16000) - resample_poly(x, 160, 441)).max():.1e}")

    batch = torch.randn(args.batch, 1, 16000)
    for form in ({"noise": {"snr": [10, 30]}}, {"gain": [-6, 6]}, {"time_shift": 0.1}, {"time_stretch": [0.8, 1.25]},
                 {"pitch_shift": [-2, 2]}):
        (aug,) = DataSpec.model_validate({"source": "clips/", "sample_rate": 16000, "duration": 1.0,
                                          "augment": [form]}).augment
        g = torch.Generator().manual_seed(0)
        augment_batch(batch, [aug], g)  # warm-up
        best, median = timed(lambda: augment_batch(batch, [aug], g), 5)
        print(f"{aug.type:>13}: {best * 1e3:7.1f} ms per batch of {args.batch} (median {median * 1e3:.1f}), one thread")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
