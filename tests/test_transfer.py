"""The transfer example (examples/transfer/) and `data.tokenizer_from`: the shipped specs check as they are; a CSV read
with another spec's tokenizer gets the very tokenizer that spec's run learned; and, at a tiny size, a language model
pretrained for a step starts the classifier: every pretrained tensor loaded unchanged, the head new."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "transfer"
SHIPPED = sorted(EXAMPLES.glob("*.yaml"))
# The shipped specs' sizes cut down (one block of width 16, 40,000 characters of corpus) and a batch that holds the
# whole training split: one step each. The text replaced is the specs' own, so a change there that breaks the pair
# breaks this test.
TINY = {"max_chars: 1000000": "max_chars: 40000", "vocab_size: 1024": "vocab_size: 300",
        "num_embeddings: 1024": "num_embeddings: 300", "embedding_dim: 128": "embedding_dim: 16",
        "d_model: 128": "d_model: 16", "d_ff: 512": "d_ff: 32", "repeat: 2": "repeat: 1", "epochs: 20": "epochs: 1",
        "batch_size: 32": "batch_size: 512", "rank: 8": "rank: 2",
        "source: ../data/stdlib-lines.csv": f"source: {ROOT / 'examples' / 'data' / 'stdlib-lines.csv'}"}


def test_shipped_specs_check() -> None:
    assert {p.name for p in SHIPPED} >= {"stdlib-pretrain.yaml", "stdlib-finetune.yaml", "stdlib-finetune-lora.yaml"}
    for path in SHIPPED:
        compiled = compile_spec(path)
        if compiled.spec.data.text is not None:  # the classifiers read their rows with the pretraining's BPE
            assert compiled.spec.data.tokenizer_from == "stdlib-pretrain.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transfer")
    for path in SHIPPED:
        text = path.read_text()
        for old, new in TINY.items():
            text = text.replace(old, new)
        (folder / path.name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def pretrained(tiny: Path) -> Path:
    import udlc

    return udlc.train(tiny / "stdlib-pretrain.yaml", out=tiny / "runs", quiet=True)


def test_the_classifier_reads_its_rows_with_the_pretrained_tokenizer(tiny: Path, pretrained: Path) -> None:
    from udlc.data.text import load_corpus
    from udlc.data.tokenizer_from import borrowed_tokenizer

    finetune, pretrain = compile_spec(tiny / "stdlib-finetune.yaml"), compile_spec(tiny / "stdlib-pretrain.yaml")
    ran = json.loads((pretrained / "run.json").read_text())["tokenizer"]
    assert borrowed_tokenizer(finetune.spec.data, tiny).to_json() == ran
    assert load_corpus(pretrain.spec.data, tiny).tokenizer.to_json() == ran
    # what the classifier would learn from its own 300 rows is another vocabulary: the option is what shares it
    from udlc.data.text import fit_tokenizer

    own = fit_tokenizer("bpe", "def f(x):\n    return x  # a comment\n" * 50, "", 300)
    assert own.to_json() != ran


def test_fine_tuning_starts_from_the_pretrained_encoder(tiny: Path, pretrained: Path, capsys) -> None:
    """Frozen but for the head, one step leaves every loaded tensor as pretraining wrote it: so they were loaded."""
    from safetensors.numpy import load_file

    import udlc

    capsys.readouterr()
    run = udlc.train(tiny / "stdlib-finetune.yaml", out=tiny / "runs", init_from=pretrained,
                     overrides=["train.freeze=[wte, wpe, 'gpt_block*', ln_f]"])
    said = capsys.readouterr().out
    assert f"initialized from {pretrained}" in said
    assert "loaded 20 of 22 tensors, new (fresh init): head.weight, head.bias" in said
    assert "unused in the file: linear.weight" in said  # the language model's tied output layer
    info = json.loads((run / "run.json").read_text())
    assert info["init_from"] == str(pretrained.resolve())
    before = {k.removeprefix("models.model."): v for k, v in
              load_file(str(pretrained / "checkpoints" / "best.safetensors")).items() if k.startswith("models.model.")}
    after = {k.removeprefix("models.model."): v for k, v in
             load_file(str(run / "checkpoints" / "best.safetensors")).items() if k.startswith("models.model.")}
    shared = sorted(set(before) & set(after))
    assert len(shared) == 20 and {"wte.weight", "wpe.weight", "ln_f.weight"} <= set(shared)
    for name in shared:
        assert (before[name] == after[name]).all(), name
    assert after["head.weight"].shape == (3, 16)


def test_tokenizer_from_refusals(tiny: Path) -> None:
    spec = (tiny / "stdlib-finetune.yaml").read_text()
    cases = [(spec.replace("tokenizer: bpe", "tokenizer: char"), "learns a bpe tokenizer, not char"),
             (spec.replace("tokenizer_from: stdlib-pretrain.yaml", "tokenizer_from: nowhere.yaml"),
              "no spec file nowhere.yaml"),
             (spec.replace("tokenizer_from: stdlib-pretrain.yaml", "tokenizer_from: stdlib-finetune-lora.yaml"),
              "reads .*stdlib-lines.csv as rows, not as a text corpus"),
             (spec.replace("tokenizer: bpe", "tokenizer: bpe\n  vocab_size: 300"), "drop `vocab_size` here"),
             (spec.replace("num_embeddings: 300", "num_embeddings: 200"),
              "has 300 tokens — num_embeddings: 300")]
    for i, (text, message) in enumerate(cases):
        path = tiny / f"bad{i}.yaml"
        path.write_text(text)
        with pytest.raises(SpecErrors, match=message) as caught:
            compile_spec(path)
        assert str(path) in caught.value.render()  # located in the file that is wrong


@pytest.mark.long
def test_lora_fine_tune_trains_the_adapters_and_the_head(tiny: Path, pretrained: Path) -> None:
    import udlc

    run = udlc.train(tiny / "stdlib-finetune-lora.yaml", out=tiny / "runs", init_from=pretrained, quiet=True)
    assert json.loads((run / "run.json").read_text())["init_from"] == str(pretrained.resolve())
    assert udlc.export(run).is_file()  # the adapters merged into the weights, through the parity gate
    shutil.rmtree(run)
