"""`tokenizer: word` on a text classifier's CSV column: `check` sizes the embedding by the vocabulary that training
learns from the training rows alone (not the validation or test rows), and the exported file carries the word
tokenizer, so `udlc predict` reads new texts, unseen words included, without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from udlc.errors import SpecErrors

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def spec_text(num_embeddings: int) -> str:
    return f"""udlc: 1
name: words
seed: 3
task: {{sequence_classification: {{max_tokens: 16}}}}
data: {{source: t.csv, text: text, target: label, tokenizer: word, lowercase: true, split: [0.5, 0.25, 0.25]}}
model:
  inputs:
    tokens: {{shape: [T], dtype: int64}}
    tokens_mask: {{shape: [T], dtype: bool}}
  layers:
    - embedding: {{num_embeddings: {num_embeddings}, embedding_dim: 8, from: tokens, id: emb}}
    - masked_seq_pool: {{mode: mean, from: [emb, tokens_mask]}}
    - linear: 2
loss: cross_entropy
train: {{epochs: 1, batch_size: 8}}
"""


def write(tmp_path: Path, num_embeddings: int) -> tuple[Path, int]:
    """40 rows of 3 words each, drawn so that some words occur in one row only; returns the spec and the size of
    the vocabulary of the training rows (the split's first half, in the seeded order the split draws)."""
    from udlc.data.words import WORD_SPECIALS

    rng = np.random.default_rng(0)
    rows = [" ".join(rng.choice(WORDS[:6], 2)) + f" Rare{i}" for i in range(40)]
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"{t},{'ab'[i % 2]}\n" for i, t in enumerate(rows)))
    train = np.random.default_rng(3).permutation(40)[:20]  # udlc's split: the spec's seed, train first
    vocabulary = {w.lower() for i in train for w in rows[i].split()}
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text(num_embeddings))
    return spec, len(WORD_SPECIALS) + len(vocabulary)


def test_check_sizes_the_embedding_by_the_training_rows_words(tmp_path) -> None:
    from udlc.data.words import WORD_SPECIALS
    from udlc.tasks import compile_spec

    spec, size = write(tmp_path, 7)
    assert size < len(WORD_SPECIALS) + len(all_words(tmp_path))  # the held-out rows' rare words are not counted
    with pytest.raises(SpecErrors) as e:
        compile_spec(spec)
    (error,) = e.value.errors
    assert f"has {size} tokens" in error.message and error.span.line == 11, error
    spec.write_text(spec_text(size))
    assert compile_spec(spec).spec.data.tokenizer == "word"


def all_words(tmp_path: Path) -> set[str]:
    """Every word of the CSV, lowercased."""
    lines = (tmp_path / "t.csv").read_text().splitlines()[1:]
    return {w.lower() for line in lines for w in line.split(",")[0].split()}


def test_a_word_classifier_trains_and_its_file_reads_unseen_words(tmp_path) -> None:
    import udlc
    from udlc.runtime.text import TextClassifier

    spec, size = write(tmp_path, 0)
    spec.write_text(spec_text(size))
    run = udlc.train(spec, out=tmp_path / "runs", quiet=True)
    from udlc.exporter.onnx import export_run

    export_run(run)
    texts = tmp_path / "new.csv"
    texts.write_text("text\nalpha BETA never-seen\ngamma\n")
    out = TextClassifier(run / "model.onnx").answer_file(texts).splitlines()
    assert out[0].startswith("line,prediction") and len(out) == 3, out
    assert all(row.split(",")[1] in ("a", "b") for row in out[1:]), out


def test_sentence_pairs_count_both_columns_of_the_training_rows_and_the_specials(tmp_path) -> None:
    from udlc.data.specials import BERT_SPECIALS
    from udlc.data.words import WORD_SPECIALS
    from udlc.tasks import compile_spec

    rng = np.random.default_rng(1)
    rows = [(f"{rng.choice(WORDS[:4])} First{i}", f"{rng.choice(WORDS[4:8])} Second{i}") for i in range(40)]
    (tmp_path / "p.csv").write_text("a,b,label\n" + "".join(f"{a},{b},{'xy'[i % 2]}\n" for i, (a, b) in enumerate(rows)))
    train = np.random.default_rng(3).permutation(40)[:20]
    size = len(WORD_SPECIALS) + len(BERT_SPECIALS) + len({w.lower() for i in train for t in rows[i] for w in t.split()})
    text = spec_text(7).replace("source: t.csv, text: text", "source: p.csv, text: [a, b]")
    text = text.replace("    tokens_mask:", "    token_types: {shape: [T], dtype: int64}\n    tokens_mask:")
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SpecErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    assert any(f"has {size} tokens" in err.message for err in e.value.errors), e.value.errors


def test_a_limit_past_the_training_rows_is_told_before_the_words_are_learned(tmp_path) -> None:
    from udlc.tasks import compile_spec

    spec, size = write(tmp_path, 0)
    spec.write_text(spec_text(size).replace("split: [0.5, 0.25, 0.25]", "split: [0.5, 0.25, 0.25], limit: 21"))
    with pytest.raises(SpecErrors) as e:
        compile_spec(spec)
    (error,) = e.value.errors
    assert error.path == "data.limit" and error.span.line == 5 and "training split's 20 rows" in error.message
