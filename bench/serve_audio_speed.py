"""Sound files at `udlc serve` and `udlc check` (~20 s): a 1-second clip uploaded to the friendly route (decoded,
resampled and answered in the server) against its waveform sent as an Open Inference Protocol tensor, in process
through Starlette's TestClient; and what `udlc check`'s listing of a folder of clips costs beside the check.

    .venv/bin/python bench/serve_audio_speed.py [--repeats 30] [--clips 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import timed  # bench/timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="requests per kind of upload")
    parser.add_argument("--clips", type=int, default=2000, help="WAV clips in the folder `udlc check` lists")
    args = parser.parse_args()
    import soundfile as sf
    import yaml
    from starlette.testclient import TestClient

    from tests.test_serve_audio import SAMPLES, sound_classifier
    from udlc.runtime.audio import read_clips
    from udlc.runtime.http.app import build_app
    from udlc.tasks import compile_spec
    from udlc.tasks.check import data_listing

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = sound_classifier(root / "model.onnx")  # 8 kHz, 0.25 s: the upload is cut to 2,000 samples
        uploads = {"1 s WAV at 8 kHz, mono": ("a.wav", 8000, 1), "1 s FLAC at 44.1 kHz, stereo": ("b.flac", 44100, 2)}
        with TestClient(build_app([model], max_batch=1)) as client:
            for what, (name, rate, channels) in uploads.items():
                sf.write(root / name, rng.uniform(-0.5, 0.5, (rate, channels)), rate)
                data = (root / name).read_bytes()
                wave = read_clips(client.app.models["tones"].file.meta, root / name)[1]
                tensor = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, SAMPLES],
                                      "data": wave.ravel().tolist()}]}
                upload = timed(lambda: client.post("/v1/predict/tones", files={"sound": (name, data)}), args.repeats)
                infer = timed(lambda: client.post("/v2/models/tones/infer", json=tensor), args.repeats)
                print(f"{what}: upload {upload[0] * 1e3:.1f} ms (median {upload[1] * 1e3:.1f}); its waveform as an "
                      f"OIP tensor {infer[0] * 1e3:.1f} ms (median {infer[1] * 1e3:.1f})")
        for k in range(args.clips):
            (root / "clips" / f"c{k % 4}").mkdir(parents=True, exist_ok=True)
            sf.write(root / "clips" / f"c{k % 4}" / f"{k}.wav", np.zeros(int(16000 * rng.uniform(0.5, 1.5))), 16000)
        doc = {"udlc": 1, "name": "clips", "data": {"source": "clips/", "sample_rate": 16000, "duration": 1.0},
               "model": {"input": [1, 16000], "layers": ["global_maxpool", {"linear": 4}]},
               "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.01}, "train": {"epochs": 1}}
        (root / "spec.yaml").write_text(yaml.safe_dump(doc))
        check = timed(lambda: compile_spec(root / "spec.yaml"), 5)
        compiled = compile_spec(root / "spec.yaml")
        listing = timed(lambda: data_listing(compiled), 5)
        print(f"udlc check of {args.clips} WAV clips: the check {check[0]:.3f} s (median {check[1]:.3f}); the listing "
              f"beside it {listing[0]:.3f} s (median {listing[1]:.3f})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
