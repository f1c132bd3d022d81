"""The `data` section: where samples come from, how they are split, normalized and augmented."""

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from udlc.spec.base import StrictModel, tagged

# Built-in sources need no file: scikit-learn's bundled sets, and generated ones.
BUNDLED_SOURCES = ("digits", "iris", "wine", "breast_cancer", "diabetes")
GENERATED_SOURCES = ("moons", "circles", "spirals", "blobs", "xor", "sine")
BUILTIN_SOURCES = BUNDLED_SOURCES + GENERATED_SOURCES
FILE_SUFFIXES = (".csv", ".npz", ".npy")


# Augmentations that move pixels need (channels, height, width) samples.
IMAGE_AUGMENTS = frozenset({"random_crop", "hflip", "rotate"})


class RandomCrop(StrictModel):
    """Pad by `padding` on every side, then crop a random window of the image's own size."""

    type: Literal["random_crop"] = "random_crop"
    padding: int = Field(1, ge=0, le=64)
    size: PositiveInt | None = Field(None, description="the crop size; must equal the image size when given")


class HFlip(StrictModel):
    type: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0, le=1)


class Rotate(StrictModel):
    """Rotate by an angle drawn uniformly from ±degrees."""

    type: Literal["rotate"] = "rotate"
    degrees: float = Field(gt=0, le=180)


class Brightness(StrictModel):
    """Add an offset drawn from ±amount (in units of the standardized input)."""

    type: Literal["brightness"] = "brightness"
    amount: PositiveFloat


class Contrast(StrictModel):
    """Scale around each image's mean by a factor drawn from 1 ± amount."""

    type: Literal["contrast"] = "contrast"
    amount: float = Field(gt=0, lt=1)


class Noise(StrictModel):
    """Add gaussian noise of this standard deviation."""

    type: Literal["noise"] = "noise"
    std: PositiveFloat


Augment = tagged(
    RandomCrop,
    HFlip,
    Rotate,
    Brightness,
    Contrast,
    Noise,
    main_args={"random_crop": "padding", "hflip": "p", "rotate": "degrees", "brightness": "amount",
               "contrast": "amount", "noise": "std"},
)


class DataSpec(StrictModel):
    source: str = Field(
        description=f"a built-in set ({', '.join(BUILTIN_SOURCES)}) or a file (.csv, .npz, .npy) "
        "relative to the spec"
    )
    # CSV: the target column (name or index; default the last); NPZ: the arrays' keys.
    target: str | int | None = None
    features: list[str] | None = None
    task: Literal["classification", "regression"] | None = Field(
        None, description="inferred from the source and the loss when left out"
    )
    samples: PositiveInt | None = Field(None, description="how many samples a generated source makes (default 1000)")
    noise: NonNegativeFloat | None = Field(None, description="noise level of a generated source")
    split: list[float] = Field([0.8, 0.1, 0.1], min_length=3, max_length=3,
                               description="train, validation, test fractions")
    normalize: Literal["standard", "minmax", "none"] = "standard"
    augment: list[Augment] = Field(default_factory=list)  # type: ignore[valid-type]

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in BUILTIN_SOURCES or v.lower().endswith(FILE_SUFFIXES):
            return v
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError(
            "unknown_source",
            "unknown data source '{source}'",
            {"source": v, "allowed": list(BUILTIN_SOURCES), "hint": "or a .csv, .npz or .npy file"},
        )

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: list[float]) -> list[float]:
        if any(f < 0 for f in v) or v[0] <= 0 or abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"must be three fractions (train, val, test) with train > 0 that sum to 1, got {list(v)}")
        return v

    def is_file(self) -> bool:
        return self.source not in BUILTIN_SOURCES
