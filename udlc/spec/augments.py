"""Augmentations: each registered once with its config, whether it needs images and whether it mixes samples.
Their implementations are in udlc.objectives.augments, under the same names."""

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from udlc.spec.audio_augments import Background, Gain, PitchShift, TimeShift, TimeStretch
from udlc.spec.text_augments import TEXT_CONFIGS
from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class AugmentEntry(Entry):
    # It moves pixels, so it needs (channels, height, width) samples; the others work on any sample shape.
    images_only: bool
    # It mixes samples and their targets (mixup, cutmix): only a task that trains on targets takes it.
    mixes: bool = False
    # It works on sound waveforms (channels, samples): only sound clips (`data.sample_rate`) take it.
    audio_only: bool = False
    # It works on a text column's words or token ids (udlc.spec.text_augments): only task sequence_classification
    # takes it, and it takes no other.
    text_only: bool = False


AUGMENTS: Registry[AugmentEntry] = Registry("augmentation")
# The fields in which an augmentation names a file or folder, relative to the spec (a synonyms file, a translation
# model, a folder of background sounds): a run's copy of the spec holds them absolute.
AUGMENT_PATHS = ("synonyms", "model", "back", "source")


# ---- geometric: images only -----------------------------------------------------------------------------


class RandomCrop(StrictModel):
    """Pad by `padding` on every side, then crop a random window of the image's own size."""

    type: Literal["random_crop"] = "random_crop"
    padding: int = Field(1, ge=0, le=64)
    size: PositiveInt | None = Field(None, description="the crop size; must equal the image size when given")


class HFlip(StrictModel):
    type: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0, le=1)


class VFlip(StrictModel):
    """Flip upside down with probability p: for pictures without an up (cells, satellite tiles, textures)."""

    type: Literal["vflip"] = "vflip"
    p: float = Field(0.5, ge=0, le=1)


class Rotate(StrictModel):
    """Rotate by an angle drawn uniformly from ±degrees."""

    type: Literal["rotate"] = "rotate"
    degrees: float = Field(gt=0, le=180)


class RandomResizedCrop(StrictModel):
    """Crop a random box — `scale` of the image's area, width/height in `ratio` — and resize it back to the image's
    size (Inception's and torchvision's RandomResizedCrop, for a whole batch at once)."""

    type: Literal["random_resized_crop"] = "random_resized_crop"
    scale: list[PositiveFloat] = Field([0.08, 1.0], min_length=2, max_length=2,
                                       description="the box's share of the area: [smallest, largest], at most 1")
    ratio: list[PositiveFloat] = Field([3 / 4, 4 / 3], min_length=2, max_length=2,
                                       description="the box's width / height: [smallest, largest]")

    @model_validator(mode="after")
    def _ranges(self) -> "RandomResizedCrop":
        if self.scale[0] > self.scale[1] or self.scale[1] > 1:
            raise ValueError(f"scale must be [smallest, largest] with largest at most 1 (got {self.scale})")
        if self.ratio[0] > self.ratio[1]:
            raise ValueError(f"ratio must be [smallest, largest] (got {self.ratio})")
        return self


AUGMENTS.register(AugmentEntry(config=RandomCrop, main_arg="padding", images_only=True,
                               examples=("random_crop", {"random_crop": 3}, {"random_crop": {"size": 8}})))
AUGMENTS.register(AugmentEntry(config=HFlip, main_arg="p", images_only=True,
                               examples=("hflip", {"hflip": 1.0})))
AUGMENTS.register(AugmentEntry(config=VFlip, main_arg="p", images_only=True,
                               examples=("vflip", {"vflip": 1.0})))
AUGMENTS.register(AugmentEntry(config=Rotate, main_arg="degrees", images_only=True,
                               examples=({"rotate": 15},)))
AUGMENTS.register(AugmentEntry(config=RandomResizedCrop, main_arg="scale", images_only=True,
                               examples=("random_resized_crop", {"random_resized_crop": [0.5, 1.0]},
                                         {"random_resized_crop": {"scale": [1.0, 1.0], "ratio": [0.5, 2.0]}})))

# ---- values: any sample shape ---------------------------------------------------------------------------


class Brightness(StrictModel):
    """Add an offset drawn from ±amount (in units of the standardized input)."""

    type: Literal["brightness"] = "brightness"
    amount: PositiveFloat


class Contrast(StrictModel):
    """Scale around each image's mean by a factor drawn from 1 ± amount."""

    type: Literal["contrast"] = "contrast"
    amount: float = Field(gt=0, lt=1)


class Noise(StrictModel):
    """Add gaussian noise of this standard deviation, or (`snr`) at a signal-to-noise ratio drawn per sample from
    [lowest, highest] dB: the noise's power is the sample's mean square / 10^(snr/10)."""

    type: Literal["noise"] = "noise"
    std: PositiveFloat | None = None
    snr: list[float] | None = Field(None, min_length=2, max_length=2, description="[lowest, highest] in dB")

    @model_validator(mode="after")
    def _one_level(self) -> "Noise":
        if (self.std is None) == (self.snr is None):
            raise ValueError("give the noise's level one way: `std` (e.g. noise: 0.1) or `snr` in dB (e.g. "
                             "noise: {snr: [10, 30]})")
        if self.snr is not None and self.snr[0] > self.snr[1]:
            raise ValueError(f"snr must be [lowest, highest] (got {self.snr})")
        return self


class ColorJitter(StrictModel):
    """Per picture, a random brightness offset (±brightness), contrast factor (1 ± contrast), saturation
    factor (1 ± saturation: each pixel's colour pulled towards or pushed away from its grey) and hue turn (±hue
    of a full turn of each pixel's colour around its grey, torchvision's `hue` in [0, 0.5]), in that order, in
    units of the standardized input. Saturation and hue need colour pictures (3 channels); grey ones skip them."""

    type: Literal["color_jitter"] = "color_jitter"
    brightness: float = Field(0.2, ge=0)
    contrast: float = Field(0.2, ge=0, lt=1)
    saturation: float = Field(0.2, ge=0, lt=1)
    hue: float = Field(0.0, ge=0, le=0.5)


AUGMENTS.register(AugmentEntry(config=Brightness, main_arg="amount", images_only=False,
                               examples=({"brightness": 0.2},)))
AUGMENTS.register(AugmentEntry(config=Contrast, main_arg="amount", images_only=False,
                               examples=({"contrast": 0.3},)))
AUGMENTS.register(AugmentEntry(config=Noise, main_arg="std", images_only=False,
                               examples=({"noise": 0.1}, {"noise": {"snr": [10, 30]}})))
AUGMENTS.register(AugmentEntry(config=ColorJitter, main_arg="brightness", images_only=True,
                               examples=("color_jitter", {"color_jitter": 0.3},
                                         {"color_jitter": {"saturation": 0.4, "brightness": 0}},
                                         {"color_jitter": {"hue": 0.1}})))

# ---- mixing samples and their targets --------------------------------------------------------------------


class Mixup(StrictModel):
    """Each sample blended with another of the batch, x·λ + x'·(1 − λ), and its target likewise, λ drawn per
    sample from Beta(alpha, alpha) (Zhang et al. 2018)."""

    type: Literal["mixup"] = "mixup"
    alpha: PositiveFloat = 0.2


class CutMix(StrictModel):
    """A random box of each picture replaced by the same box of another, the targets mixed by the box's share
    of the area (Yun et al. 2019); the box's share is 1 − λ, λ drawn per sample from Beta(alpha, alpha)."""

    type: Literal["cutmix"] = "cutmix"
    alpha: PositiveFloat = 1.0


AUGMENTS.register(AugmentEntry(config=Mixup, main_arg="alpha", images_only=False, mixes=True,
                               examples=("mixup", {"mixup": 0.4})))
AUGMENTS.register(AugmentEntry(config=CutMix, main_arg="alpha", images_only=True, mixes=True,
                               examples=("cutmix", {"cutmix": 0.5})))

# ---- sound waveforms: configs in udlc.spec.audio_augments ----------------------------------------------------

AUGMENTS.register(AugmentEntry(config=Gain, main_arg="db", images_only=False, audio_only=True,
                               examples=({"gain": [-6, 6]},)))
AUGMENTS.register(AugmentEntry(config=TimeShift, main_arg="max", images_only=False, audio_only=True,
                               examples=({"time_shift": 0.1}, {"time_shift": {"max": 0.2, "roll": True}})))
AUGMENTS.register(AugmentEntry(config=PitchShift, main_arg="semitones", images_only=False, audio_only=True,
                               examples=({"pitch_shift": [-2, 2]},)))
AUGMENTS.register(AugmentEntry(config=TimeStretch, main_arg="rate", images_only=False, audio_only=True,
                               examples=({"time_stretch": [0.8, 1.25]},)))
AUGMENTS.register(AugmentEntry(config=Background, main_arg="source", images_only=False, audio_only=True,
                               examples=({"background": "noise/"}, {"background": {"source": "noise/",
                                                                                    "snr": [5, 10]}})))

# ---- a text column's words and token ids: configs in udlc.spec.text_augments ---------------------------------

for _config, _main_arg, _examples in TEXT_CONFIGS:
    AUGMENTS.register(AugmentEntry(config=_config, main_arg=_main_arg, images_only=False, text_only=True,
                                   examples=_examples))

Augment = AUGMENTS.union()
# Names of the augmentations that need (channels, height, width) samples; the compiler checks model.input.
IMAGE_AUGMENTS = frozenset(e.name for e in AUGMENTS if e.images_only)
# Those that mix samples and targets: only a task that trains on targets (supervised) takes them.
MIXING_AUGMENTS = frozenset(e.name for e in AUGMENTS if e.mixes)
# Those that need sound waveforms: DataSpec refuses them unless the data are sound clips.
AUDIO_AUGMENTS = frozenset(e.name for e in AUGMENTS if e.audio_only)
