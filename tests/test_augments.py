"""The augmentation registry (udlc/spec/augments.py; implementations in udlc/objectives/augments.py): every entry
validates from each of its examples, keeps a batch's shape, and draws its randomness from the given generator
alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from udlc.data import IMAGE_ONLY, augment_batch, mix_batch
from udlc.spec.augments import AUGMENTS, AugmentEntry
from udlc.spec.data import IMAGE_AUGMENTS, DataSpec

# The text ones change a text column's words, not a batch: tests/test_text_augment.py runs their examples; the
# sound ones take sound clips only: tests/test_audio_data.py runs theirs on waveforms.
CASES = [(entry, example) for entry in AUGMENTS if not entry.text_only and not entry.audio_only
         for example in AUGMENTS.examples(entry)]
SOUND = {"source": "clips/", "sample_rate": 8000, "duration": 0.5}  # validated without reading the folder


def batches(entry: AugmentEntry) -> list[torch.Tensor]:
    """Random batches of each rank the entry takes; 8x8 images fit random_crop's `size: 8` example."""
    images = torch.randn(32, 2, 8, 8)
    return [images] if entry.images_only else [images, torch.randn(32, 5)]


@pytest.mark.parametrize(("entry", "example"), CASES, ids=[f"{e.name}-{i}" for i, (e, _) in enumerate(CASES)])
def test_every_augmentation_keeps_shapes_and_follows_its_generator(entry: AugmentEntry, example) -> None:
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [example]}).augment
    assert isinstance(aug, entry.config)
    for x in batches(entry):
        y = torch.nn.functional.one_hot(torch.arange(len(x)) % 3, 3).float()

        def apply(g: torch.Generator) -> torch.Tensor:  # a mixing one takes and gives the targets too
            return mix_batch(x, y, [aug], g)[0] if entry.mixes else augment_batch(x, [aug], g)

        g = torch.Generator().manual_seed(7)
        before = g.get_state()
        global_rng = torch.random.get_rng_state()
        out = apply(g)
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
        assert not torch.equal(g.get_state(), before)  # it drew from the generator...
        assert torch.equal(torch.random.get_rng_state(), global_rng)  # ...and from nothing else
        torch.manual_seed(123)  # so the global generator cannot be what makes the repeat agree
        assert torch.equal(apply(torch.Generator().manual_seed(7)), out)


@pytest.mark.parametrize("entry", [e for e in AUGMENTS if e.images_only], ids=lambda e: e.name)
def test_image_augmentations_refuse_other_batches(entry: AugmentEntry) -> None:
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [AUGMENTS.examples(entry)[0]]}).augment
    with pytest.raises(ValueError, match=r"needs image batches \(B, C, H, W\), got \(4, 3\)"):
        if entry.mixes:
            mix_batch(torch.zeros(4, 3), torch.eye(4), [aug], torch.Generator())
        else:
            augment_batch(torch.zeros(4, 3), [aug], torch.Generator())


def test_image_only_names_come_from_the_entries() -> None:
    assert IMAGE_ONLY == IMAGE_AUGMENTS == {e.name for e in AUGMENTS if e.images_only}
    assert IMAGE_AUGMENTS >= {"random_crop", "hflip", "vflip", "rotate", "random_resized_crop", "color_jitter",
                              "cutmix"}


@pytest.mark.parametrize("entry", list(AUGMENTS), ids=lambda e: e.name)
def test_the_shorthand_fills_the_main_arg(entry: AugmentEntry) -> None:
    # Every entry shows its one-value form among its examples, so the test above runs it.
    scalars = [ex for ex in AUGMENTS.examples(entry) if isinstance(ex, dict) and not isinstance(*ex.values(), dict)]
    assert scalars, f"give {entry.name} an example like {{{entry.name}: value}}"
    for example in scalars:
        data = SOUND if entry.audio_only else {"source": "digits"}
        (aug,) = DataSpec.model_validate({**data, "augment": [example]}).augment
        assert getattr(aug, entry.main_arg) == example[entry.name]


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="rotat"):
        DataSpec.model_validate({"source": "digits", "augment": ["rotat"]})


def test_random_resized_crop_of_the_whole_image_is_the_image_and_a_smaller_box_zooms() -> None:
    from udlc.spec.augments import RandomResizedCrop

    x = torch.randn(4, 3, 8, 8)
    whole = RandomResizedCrop(scale=[1.0, 1.0], ratio=[1.0, 1.0])
    torch.testing.assert_close(augment_batch(x, [whole], torch.Generator().manual_seed(0)), x)
    stripes = torch.zeros(64, 1, 8, 8)
    stripes[..., :, ::2] = 1.0  # one-pixel stripes: a box of a quarter of the area doubles their width
    zoomed = augment_batch(stripes, [RandomResizedCrop(scale=[0.25, 0.25], ratio=[1.0, 1.0])],
                           torch.Generator().manual_seed(0))
    assert (zoomed[..., 3, 1:] - zoomed[..., 3, :-1]).abs().mean() < 0.75 * (stripes[..., 3, 1:] -
                                                                            stripes[..., 3, :-1]).abs().mean()


def test_color_jitter_saturation_keeps_each_pixels_grey() -> None:
    from udlc.spec.augments import ColorJitter

    x = torch.randn(16, 3, 4, 4)
    out = augment_batch(x, [ColorJitter(brightness=0, contrast=0, saturation=0.5)], torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.mean(dim=1), x.mean(dim=1))
    assert not torch.allclose(out, x)
    grey = torch.randn(16, 1, 4, 4)  # one channel: no colour to change
    assert torch.equal(augment_batch(grey, [ColorJitter(brightness=0, contrast=0)], torch.Generator()), grey)


def test_mixup_blends_samples_and_targets_alike() -> None:
    from udlc.spec.augments import Mixup

    x = torch.randn(64, 5)
    y = torch.eye(64)  # a class of its own for each sample: its share of its class is its λ
    mixed_x, mixed_y = mix_batch(x, y, [Mixup(alpha=0.4)], torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed_y.sum(1), torch.ones(64))
    lam, partner_index = mixed_y.diagonal(), (mixed_y - torch.diag(mixed_y.diagonal())).argmax(1)
    blended = lam < 0.99
    assert blended.sum() > 16
    expected = lam[:, None] * x + (1 - lam[:, None]) * x[partner_index]  # the same partner, the same λ
    torch.testing.assert_close(mixed_x[blended], expected[blended])
    assert augment_batch(x, [Mixup(alpha=0.4)], torch.Generator()) is x  # the input-only pass leaves it alone


def test_cutmix_mixes_targets_by_the_share_of_pixels_kept() -> None:
    from udlc.spec.augments import CutMix

    x = torch.randn(32, 2, 8, 8)
    y = torch.eye(32)
    out, mixed = mix_batch(x, y, [CutMix(alpha=1.0)], torch.Generator().manual_seed(3))
    kept = (out == x).float().mean(dim=(1, 2, 3))  # random values: a pasted pixel never equals the original
    torch.testing.assert_close(mixed.diagonal(), kept)
    assert (kept < 1).sum() > 8


@pytest.mark.long
def test_mixup_trains_a_classifier(tmp_path) -> None:
    import json

    import yaml

    from tests.conftest import DIGITS_MLP, train_here

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**DIGITS_MLP, "data": {**DIGITS_MLP["data"], "augment": [{"mixup": 0.2}]},
                                    "train": {"epochs": 2, "batch_size": 64}}))
    run = train_here(spec, tmp_path / "runs")
    assert json.loads((run / "results.json").read_text())["test_accuracy"] > 0.7


def test_mixup_is_refused_where_a_task_does_not_train_on_labelled_targets(tmp_path) -> None:
    import yaml

    from tests.conftest import refused_at

    vae = Path(__file__).resolve().parent.parent / "examples" / "vae-digits.yaml"
    doc = yaml.safe_load(vae.read_text())
    doc["data"]["augment"] = [{"mixup": 0.2}]
    bad = tmp_path / "vae.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    refused_at(bad, "mixup", "does not train on labelled targets")


def test_vflip_p1_turns_pictures_upside_down() -> None:
    x = torch.randn(3, 2, 4, 5)
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [{"vflip": 1.0}]}).augment
    assert torch.equal(augment_batch(x, [aug], torch.Generator()), torch.flip(x, dims=[-2]))


def test_a_third_of_a_hue_turn_cycles_the_channels_and_any_turn_keeps_grey_and_chroma() -> None:
    from udlc.objectives.augments import _turn_hue

    x = torch.randn(2, 3, 4, 4)
    third = _turn_hue(x, torch.full((2,), 2 * math.pi / 3))
    torch.testing.assert_close(third, x[:, [2, 0, 1]], atol=1e-5, rtol=0)  # R -> G, G -> B, B -> R
    turned = _turn_hue(x, torch.tensor([0.3, -1.1]))
    torch.testing.assert_close(turned.mean(1), x.mean(1), atol=1e-5, rtol=0)
    chroma = lambda v: (v - v.mean(1, keepdim=True)).norm(dim=1)  # noqa: E731
    torch.testing.assert_close(chroma(turned), chroma(x), atol=1e-5, rtol=0)
    assert not torch.allclose(turned, x, atol=1e-2)


def test_color_jitter_hue_draws_a_turn_per_picture_within_its_range() -> None:
    (aug,) = DataSpec.model_validate({"source": "digits", "augment": [
        {"color_jitter": {"hue": 0.5, "brightness": 0, "contrast": 0, "saturation": 0}}]}).augment
    x = torch.randn(64, 3, 2, 2)
    out = augment_batch(x, [aug], torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.mean(1), x.mean(1), atol=1e-5, rtol=0)
    assert (out - x).abs().amax(dim=(1, 2, 3)).gt(1e-3).float().mean() > 0.9  # nearly every picture turned
