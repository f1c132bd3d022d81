"""The rules of `data:` for sound clips (sample_rate, duration, crop, audio, and the audio augmentations), which
udlc.spec.data's DataSpec validates through the two functions below: one seam of the data section in one file."""

from typing import Any, Callable

from pydantic_core import PydanticCustomError

from udlc.spec.augments import AUDIO_AUGMENTS
from udlc.spec.sources import is_folder

SOUND_FIELDS = ("sample_rate", "duration", "crop", "audio")


def sound_field(v: object, name: str, given: dict[str, Any], reads: Callable[[str, str], bool]) -> object:
    """One sound field, validated after the fields above it (`given`): only a source that reads it (`reads`)
    takes it, and a folder holds pictures or sound clips, not both."""
    source = given.get("source")
    if v is not None and source is not None and not reads(source, name):
        raise ValueError(f"applies only to sound clips (a folder of them, `clips/`, or a CSV with an `audio` "
                         f"column); {source} is none — leave `{name}` out")
    if name == "sample_rate" and v is not None and given.get("image_size") is not None:
        raise ValueError("a folder holds pictures (image_size) or sound clips (sample_rate), not both — drop one")
    return v


def sound_settings(data: Any) -> None:
    """The sound fields together: a rate and a duration of at least one sample, a CSV's `audio` column, and the
    audio augmentations only on sound (each refused at its own entry's line)."""
    sound = {k: getattr(data, k) for k in SOUND_FIELDS if getattr(data, k)}
    if sound and (data.sample_rate is None or data.duration is None):
        missing = "sample_rate" if data.sample_rate is None else "duration"
        raise PydanticCustomError("sound", f"sound clips need data.{missing} too (e.g. sample_rate: 16000, "
                                  "duration: 1.0): every clip is resampled to the one and cut to the other", {})
    if sound and round(data.sample_rate * data.duration) < 1:
        raise PydanticCustomError("sound", f"duration {data.duration} s at {data.sample_rate} Hz is less than "
                                  "one sample; give a longer duration", {})
    if sound and not is_folder(data.source) and data.audio is None:
        raise PydanticCustomError("sound", "a CSV of sound clips names the column of their files: add "
                                  "`audio: <column>` (and `target: <label column>`)", {})
    refused = [(i, aug) for i, aug in enumerate(data.augment) if aug.type in AUDIO_AUGMENTS and not sound]
    if refused:
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails

        # at each refused entry's own line, not at `data:`
        raise ValidationError.from_exception_data("DataSpec", [InitErrorDetails(
            type=PydanticCustomError("audio_augment", f"'{aug.type}' changes sound waveforms, but {data.source} "
                                     "is not sound clips — drop it, or read sound clips (a folder of WAV, FLAC "
                                     "or OGG files with sample_rate and duration)", {}),
            loc=("augment", i), input=aug.type) for i, aug in refused])
