"""Write scikit-learn's 8x8 digits as 32x32 grey PNG files, one folder per digit, for
examples/pictures/resnet-digits.yaml (a folder of pictures as a data source; nothing is downloaded):

    python examples/pictures/make_digit_pictures.py [FOLDER]      # default: examples/pictures/digit-pictures/
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main(folder: Path) -> None:
    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        picture = Image.fromarray(np.uint8(pixels * 255 / 16)).resize((32, 32), Image.Resampling.BICUBIC)
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        picture.save(folder / str(label) / f"{i:04d}.png")
    print(f"{len(digits.images)} pictures in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "digit-pictures")
