"""did-you-mean: a typo gets the name it misspells; a word that is not a typo of any name gets nothing (a wrong
suggestion is worse than none: `attention` is not a misspelt `flatten`)."""

from __future__ import annotations

import pytest

from udlc.errors import _edits, did_you_mean
from udlc.layers import REGISTRY

# The names each kind of mistake is matched against, as the compiler passes them.
LAYERS = sorted([*REGISTRY, "residual", "parallel", "repeat"])
LAYER_ARGS = sorted({f for lt in REGISTRY.values() for f in lt.config.model_fields if f != "type"})
LOSSES = ["mse", "mae", "huber", "bce", "cross_entropy"]
METRICS = ["accuracy", "top_k", "f1_macro", "mae", "rmse", "r2"]
OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop"]
MONITORS = ["train_loss", "val_loss", "val_accuracy", "val_top_k"]
SECTIONS = ["udlc", "name", "seed", "data", "model", "loss", "metrics", "optimizer", "schedule", "train", "export"]
EVERYTHING = sorted({*LAYERS, *LAYER_ARGS, *LOSSES, *METRICS, *OPTIMIZERS, *MONITORS, *SECTIONS})

TYPOS = [
    # (word, choices, the names suggested)
    ("lienar", LAYERS, ["linear"]),  # two letters swapped
    ("linaer", LAYERS, ["linear"]),
    ("Linear", LAYERS, ["linear"]),  # case
    ("conv2", LAYERS, ["conv2d"]),
    ("Conv2D", LAYERS, ["conv2d"]),
    ("conv_2d", LAYERS, ["conv2d"]),  # underscores do not count
    ("conv", LAYERS, ["conv1d", "conv2d", "conv3d"]),  # equally close, one stem: all named
    ("batchnorm", LAYERS, ["batchnorm1d", "batchnorm2d"]),
    ("batch_norm", LAYERS, ["batchnorm1d", "batchnorm2d"]),
    ("max_pool2d", LAYERS, ["maxpool2d"]),
    ("relu_6", LAYERS, ["relu6"]),
    ("hardswich", LAYERS, ["hardswish"]),
    ("leakyrelu", LAYERS, ["leaky_relu"]),
    ("dropuot", LAYERS, ["dropout"]),
    ("concatenate", LAYERS, ["concat"]),  # the name is the word's start
    ("parralel", LAYERS, ["parallel"]),
    ("cross_entropi", LOSSES, ["cross_entropy"]),
    ("adamw", ["adam", "sgd"], ["adam"]),
    ("adam", ["adamw", "sgd"], ["adamw"]),
    ("adamww", OPTIMIZERS, ["adamw"]),  # adamw is one edit away, adam two
    ("val_acc", MONITORS, ["val_accuracy"]),  # the word is the name's start
    ("kernal_size", LAYER_ARGS, ["kernel_size"]),
    ("kernel", LAYER_ARGS, ["kernel_size"]),
    ("out_channel", LAYER_ARGS, ["out_channels"]),
    ("momentun", LAYER_ARGS, ["momentum"]),
    ("acuracy", METRICS, ["accuracy"]),
    ("mse", METRICS, ["mae", "rmse"]),
    ("optimiser", SECTIONS, ["optimizer"]),
    ("haed", ["head", "stem"], ["head"]),
]

NOT_TYPOS = [
    # (word, choices): words that name something udlc does not have
    ("attention", EVERYTHING),  # was 'flatten'
    ("deconvolve", EVERYTHING),
    ("mamba", EVERYTHING),
    ("capsule", EVERYTHING),
    ("foo", EVERYTHING),
    ("softplus", EVERYTHING),
    ("swish", EVERYTHING),
    ("dense", EVERYTHING),
    ("adagrad", EVERYTHING),
    ("selu", LAYERS),  # one edit from silu, elu, relu and gelu: a typo of none in particular
    ("bn", LAYERS),  # too short to tell
    ("x", ["x1", "y"]),
    ("pool", LAYERS),
    ("", LAYERS),
]


@pytest.mark.parametrize("word,choices,expected", TYPOS, ids=[t[0] for t in TYPOS])
def test_a_typo_gets_the_name(word: str, choices: list[str], expected: list[str]) -> None:
    assert did_you_mean(word, choices) == "did you mean " + " or ".join(f"'{e}'" for e in expected) + "?"


@pytest.mark.parametrize("word,choices", NOT_TYPOS, ids=[t[0] or "empty" for t in NOT_TYPOS])
def test_an_unrelated_word_gets_nothing(word: str, choices: list[str]) -> None:
    assert did_you_mean(word, choices) is None


@pytest.mark.parametrize("word", [None, 3, 2.5, ["linear"], {"linear": 1}])
def test_only_strings_get_suggestions(word: object) -> None:
    assert did_you_mean(word, LAYERS) is None


def test_no_choices() -> None:
    assert did_you_mean("linear", []) is None


@pytest.mark.parametrize(
    "a,b,distance",
    [("linear", "linear", 0), ("lienar", "linear", 1), ("conv2", "conv2d", 1), ("kitten", "sitting", 3),
     ("ca", "abc", 3),  # optimal string alignment: a swapped pair is not edited again
     ("", "abc", 3), ("abc", "", 3)],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert _edits(a, b, 10) == distance
    assert _edits(a, b, distance) == distance
    if distance:
        assert _edits(a, b, distance - 1) == distance  # cut off early: limit + 1
