"""Starting GPT-2 small (124M parameters) from a Hugging Face folder: what `udlc check` pays to validate the mapping
against the file (the safetensors header, no tensor read) and what training pays to load it (udlc.weights.load_into
through examples/zoo/gpt2.map.yaml), beside transformers' own from_pretrained of the same folder.

The folder is written first by transformers' save_pretrained of a random GPT2LMHeadModel (about 500 MB in a
temporary folder). Prints the load average before and after, and the minimum and median of --repeats runs."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import timed  # bench/timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from udlc.compiler.lower import lower
    from udlc.tasks import compile_spec
    from udlc.weights import Mapping, apply, load_into, read_names

    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gpt2"
        GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        mapping = Mapping.load(ROOT / "examples" / "zoo" / "gpt2.map.yaml")
        model = lower(compile_spec(ROOT / "examples" / "zoo" / "gpt2.yaml").graph, seed=0)
        rows = [
            ("header + mapping (what check does)", lambda: apply(mapping, read_names(folder))),
            ("udlc load_into (train start)", lambda: load_into({"model": model}, folder, mapping)),
            ("transformers from_pretrained", lambda: GPT2LMHeadModel.from_pretrained(folder)),
        ]
        print(f"GPT-2 small, {size:.0f} MB of safetensors; seconds, min / median of {args.repeats}")
        for name, fn in rows:
            best, median = timed(fn, args.repeats)
            print(f"  {name:<38} {best:8.3f} {median:8.3f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
