"""examples/digits-vit.yaml: a tiny Vision Transformer on the 8x8 digits. It checks, its parameter count is the
hand count of a ViT of its sizes (patch projection, class token, positions, pre-norm blocks, head) in udlc's
graph, in `udlc summary` and in torch, and a short run of it learns the digits and exports to ONNX."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.processes import cli, describe

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "digits-vit.yaml"
BLOCK = "transformer_encoder_block_pre_norm"
# What the example's full run (120 epochs, `udlc train examples/digits-vit.yaml`) would spend a minute or
# two on, cut to a few seconds: 8 epochs without the augmentation and dropout that slow early learning.
SHORT = ["train.epochs=8", "data.augment=[]", f"model.layers[3].{BLOCK}.dropout=0.0"]


def layers() -> dict[str, dict]:
    """The example's layers by type, each as its argument mapping (a scalar as its main argument)."""
    doc = yaml.safe_load(SPEC.read_text())
    out: dict[str, dict] = {"input": {"shape": doc["model"]["input"]}}
    for layer in doc["model"]["layers"]:
        (name, args), = layer.items() if isinstance(layer, dict) else ((layer, {}),)
        main = {"learned_positions": "max_len", "select": "index", "linear": "out_features"}
        out[name] = args if isinstance(args, dict) else {main[name]: args}
    return out


def hand_count() -> int:
    """A ViT's parameters, term by term, from the sizes the spec gives."""
    spec = layers()
    c, h, w = spec["input"]["shape"]
    e, p = spec["patch_embed"]["embed_dim"], spec["patch_embed"]["patch_size"]
    block = spec[BLOCK]
    d, ff, depth = block["d_model"], block["d_ff"], block.get("repeat", 1)
    classes = spec["linear"]["out_features"]
    assert d == e, "the blocks' width is the patch embedding's"
    tokens = (h // p) * (w // p) + 1  # the patches and the class token
    assert spec["learned_positions"]["max_len"] == tokens, "one learned position per token"
    assert spec["select"]["index"] == 0, "the head reads the class token, which cls_token puts first"

    patch_projection = e * c * p * p + e  # a p x p convolution with stride p, and its bias
    cls_token = e
    positions = tokens * e
    norms = 2 * 2 * d  # two layernorms (weight and bias) per block, one before each sublayer
    attention = 4 * d * d + 4 * d  # query, key, value and output projections with biases
    feed_forward = d * ff + ff + ff * d + d
    final_norm = 2 * d
    head = d * classes + classes
    return patch_projection + cls_token + positions + depth * (norms + attention + feed_forward) + final_norm + head


def test_example_passes_udlc_check() -> None:
    result = cli("check", SPEC, cwd=ROOT)
    assert result.returncode == 0, describe(result)
    assert re.search(r"^OK .*digits-vit\.yaml", result.stdout, re.M), describe(result)

    from udlc.tasks import compile_spec

    graph = compile_spec(SPEC).graph
    assert graph.output_shapes == [(10,)]
    spec = layers()
    assert spec["input"]["shape"] == [1, 8, 8] and spec["patch_embed"]["patch_size"] == 2
    assert spec[BLOCK].get("repeat", 1) > 1, "the example stacks its block with repeat"


def test_parameter_count_is_the_hand_count_in_graph_summary_and_torch() -> None:
    from udlc.tasks import compile_spec

    expected = hand_count()
    compiled = compile_spec(SPEC)
    assert compiled.graph.total_params == expected

    summary = cli("summary", SPEC, cwd=ROOT)
    assert summary.returncode == 0, describe(summary)
    assert f"parameters: {expected:,} " in summary.stdout, describe(summary)

    import udlc

    module = udlc.build(compiled)
    assert sum(p.numel() for p in module.parameters()) == expected


def test_hand_count_notices_a_changed_size(tmp_path: Path) -> None:
    """The count follows the spec's sizes: a wider feed-forward is d_ff more weights per side per block."""
    from udlc.tasks import compile_spec

    depth = layers()[BLOCK]["repeat"]
    d = layers()[BLOCK]["d_model"]
    base = compile_spec(SPEC).graph.total_params
    wider = compile_spec(SPEC, overrides=[f"model.layers[3].{BLOCK}.d_ff={layers()[BLOCK]['d_ff'] + 1}"])
    assert wider.graph.total_params - base == depth * (2 * d + 1)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_spec(compile_spec(SPEC, overrides=SHORT), out=tmp_path_factory.mktemp("vit") / "runs",
                          quiet=True)
    finally:
        torch.set_num_threads(before)


@pytest.mark.long  # an example's run (8 epochs of the ViT): the longer tier; the contract test trains supervised
def test_short_run_learns_the_digits(short_run: Path) -> None:
    rows = [json.loads(line) for line in (short_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.5
    assert rows[-1]["val_accuracy"] > 0.6  # ten classes: chance is 0.1
    results = json.loads((short_run / "results.json").read_text())
    assert results["test_accuracy"] > 0.6


@pytest.mark.long
def test_short_run_exports_and_predicts_raw_digits(short_run: Path) -> None:
    """The export's parity gate (onnxruntime against torch) passes, and the file classifies raw pixels, given
    as images or as 64 flat features, the same way."""
    from sklearn.datasets import load_digits

    import udlc
    from udlc.runtime.predict import Model

    model = Model(udlc.export(short_run))
    digits = load_digits()
    flat = model.predict(digits.data)
    images = model.predict(digits.images[:, None])
    np.testing.assert_array_equal(flat.probabilities, images.probabilities)
    assert (flat.values == digits.target).mean() > 0.6
