"""The augmentation registry (udlc/spec/augments.py): every entry validates from each of its examples, keeps a
batch's shape, and draws its randomness from the given generator alone."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from udlc.data import IMAGE_ONLY, augment_batch
from udlc.spec.augments import AUGMENTS, AugmentEntry
from udlc.spec.data import IMAGE_AUGMENTS, DataSpec

CASES = [(entry, example) for entry in AUGMENTS for example in AUGMENTS.examples(entry)]


def batches(entry: AugmentEntry) -> list[torch.Tensor]:
    """Random batches of each rank the entry takes; 8x8 images fit random_crop's `size: 8` example."""
    images = torch.randn(32, 2, 8, 8)
    return [images] if entry.images_only else [images, torch.randn(32, 5)]


@pytest.mark.parametrize(("entry", "example"), CASES, ids=[f"{e.name}-{i}" for i, (e, _) in enumerate(CASES)])
def test_every_augmentation_keeps_shapes_and_follows_its_generator(entry: AugmentEntry, example) -> None:
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [example]}).augment
    assert isinstance(aug, entry.config)
    for x in batches(entry):
        g = torch.Generator().manual_seed(7)
        before = g.get_state()
        global_rng = torch.random.get_rng_state()
        out = augment_batch(x, [aug], g)
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
        assert not torch.equal(g.get_state(), before)  # it drew from the generator...
        assert torch.equal(torch.random.get_rng_state(), global_rng)  # ...and from nothing else
        torch.manual_seed(123)  # so the global generator cannot be what makes the repeat agree
        assert torch.equal(augment_batch(x, [aug], torch.Generator().manual_seed(7)), out)


@pytest.mark.parametrize("entry", [e for e in AUGMENTS if e.images_only], ids=lambda e: e.name)
def test_image_augmentations_refuse_other_batches(entry: AugmentEntry) -> None:
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [AUGMENTS.examples(entry)[0]]}).augment
    with pytest.raises(ValueError, match=r"needs image batches \(B, C, H, W\), got \(4, 3\)"):
        augment_batch(torch.zeros(4, 3), [aug], torch.Generator())


def test_image_only_names_come_from_the_entries() -> None:
    assert IMAGE_ONLY == IMAGE_AUGMENTS == {e.name for e in AUGMENTS if e.images_only}
    assert IMAGE_AUGMENTS == {"random_crop", "hflip", "rotate"}


@pytest.mark.parametrize("entry", list(AUGMENTS), ids=lambda e: e.name)
def test_the_shorthand_fills_the_main_arg(entry: AugmentEntry) -> None:
    # Every entry shows its one-value form among its examples, so the test above runs it.
    scalars = [ex for ex in AUGMENTS.examples(entry) if isinstance(ex, dict) and not isinstance(*ex.values(), dict)]
    assert scalars, f"give {entry.name} an example like {{{entry.name}: value}}"
    for example in scalars:
        (aug,) = DataSpec.model_validate({"source": "digits", "augment": [example]}).augment
        assert getattr(aug, entry.main_arg) == example[entry.name]


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="rotat"):
        DataSpec.model_validate({"source": "digits", "augment": ["rotat"]})
