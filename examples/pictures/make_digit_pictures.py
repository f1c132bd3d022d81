"""Write scikit-learn's 8x8 digits as 32x32 grey PNG files, one folder per digit, for
examples/pictures/resnet-digits.yaml (a folder of pictures as a data source; nothing is downloaded):

    python examples/pictures/make_digit_pictures.py [FOLDER] [--per-digit N]

FOLDER defaults to examples/pictures/digit-pictures/. The repository ships that folder made with
`--per-digit 20` (200 small files, so the example checks and trains on a fresh clone); run the script
without it for all 1,797 digits.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main(folder: Path, per_digit: int | None = None) -> None:
    digits = load_digits()
    made: dict[int, int] = {}
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        if per_digit is not None and made.get(label, 0) >= per_digit:
            continue
        made[label] = made.get(label, 0) + 1
        picture = Image.fromarray(np.uint8(pixels * 255 / 16)).resize((32, 32), Image.Resampling.BICUBIC)
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        picture.save(folder / str(label) / f"{i:04d}.png")
    print(f"{sum(made.values())} pictures in {folder}")


if __name__ == "__main__":
    args = sys.argv[1:]
    per_digit = None
    if "--per-digit" in args:
        at = args.index("--per-digit")
        per_digit = int(args[at + 1])
        del args[at:at + 2]
    main(Path(args[0]) if args else Path(__file__).parent / "digit-pictures", per_digit)
