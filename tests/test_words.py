"""tokenizer: word — a vocabulary from the training split (min_freq, max_size, <unk>, <eos>), what check
learns and refuses at its line, a word language model trained, exported and generating words; and BPE's
vocab_size held to what the training split can learn."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import refused_at, write_spec
from tests.fast_export import fast_exporter  # noqa: F401 (a fixture)
from udlc.data.text import fit_tokenizer, split_text, tokenizer_from_json
from udlc.data.words import WordTokenizer
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

pytestmark = pytest.mark.usefixtures("fast_exporter")


def sentences(n: int, seed: int = 0) -> str:
    """Lines of a small grammar: a few hundred words' worth of text with a skewed word frequency."""
    rng = random.Random(seed)
    subjects, verbs, objects = ["the cat", "the dog", "a bird"], ["sees", "chases", "likes"], ["the mat", "a fish",
                                                                                                 "the sun"]
    return "".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}\n" for _ in range(n))


def vocabulary_size(spec: Path) -> int:
    """What check says the vocabulary is: the width it asks of a model that has the wrong one."""
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    return int(e.hint.rpartition(" ")[2].rstrip("`"))


# ---- the tokenizer --------------------------------------------------------------------------------------


def test_the_vocabulary_is_the_training_splits_words_by_frequency() -> None:
    text = "b a b c\na b b\nd d d d d d\n"
    tok = WordTokenizer.fit(text)
    counts = Counter(text.split())  # by hand: b 4, a 2, c 1 — and d 6 comes first
    assert tok.words == ["<unk>", "<eos>"] + sorted(counts, key=lambda w: (-counts[w], w))
    assert tok.words[2:] == ["d", "b", "a", "c"]
    assert tok.encode("a b\nzebra").tolist() == [4, 3, 1, 0]  # a line end is <eos>; an unseen word <unk>


def test_min_freq_and_max_size_are_honoured() -> None:
    text = sentences(200)
    counts = Counter(text.split())
    frequent = sorted((w for w, n in counts.items() if n >= 60), key=lambda w: (-counts[w], w))
    tok = WordTokenizer.fit(text, min_freq=60)
    assert tok.words[2:] == frequent and 0 < len(frequent) < len(counts)
    tok = WordTokenizer.fit(text, max_size=3)
    assert tok.words[2:] == sorted(counts, key=lambda w: (-counts[w], w))[:3] and tok.vocab_size == 5
    ids = tok.encode(text)
    kept = set(tok.words[2:])
    assert (ids == 0).sum() == sum(n for w, n in counts.items() if w not in kept)  # every other word is <unk>


def test_the_vocabulary_comes_from_the_training_split_alone() -> None:
    text = "the cat sat\n" * 80 + "zebra zebra zebra\n" * 5  # the last 10 %: zebra lines, beyond the training split
    train, val, test = split_text(text, [0.8, 0.1, 0.1])
    tok = fit_tokenizer("word", train, text, None, {})
    assert "zebra" not in tok.words and "zebra" in val + test
    zebras = "".join(line + "\n" for line in (val + test).splitlines() if "zebra" in line)
    assert set(tok.encode(zebras).tolist()) == {0, 1}  # zebra is <unk>, a line end <eos>


def test_lowercase_punctuation_decoding_and_the_json_round_trip() -> None:
    tok = WordTokenizer.fit("Hello, world!\nhello there.\n", lowercase=True, split="punctuation")
    assert tok.tokens("Hello, World!") == ["hello", ",", "world", "!"]
    ids = tok.encode("hello there\nworld")
    assert tok.decode(ids) == "hello there\nworld"  # words joined by spaces, <eos> a line end
    assert tok.continuation(ids) == " hello there\nworld"  # after a prompt's last word
    again = tokenizer_from_json(tok.to_json())
    assert again.words == tok.words and np.array_equal(again.encode("Hello, zebra"), tok.encode("Hello, zebra"))


# ---- check ----------------------------------------------------------------------------------------------

WORD_LM = {
    "udlc": 1,
    "name": "tiny-word-lm",
    "seed": 0,
    "task": {"language_model": {"context": 8}},
    "data": {"source": "corpus.txt", "tokenizer": "word", "min_freq": 2, "split": [0.8, 0.1, 0.1]},
    "model": {
        "input": {"shape": ["T"], "dtype": "int64"},
        "layers": [
            {"embedding": {"num_embeddings": 13, "embedding_dim": 16}},
            {"lstm": {"hidden_size": 32, "id": "rnn"}},
            {"linear": {"out_features": 13, "from": "rnn.out"}},
        ],
    },
    "loss": "cross_entropy",
    "optimizer": {"adam": {"lr": 0.02}},
    "train": {"epochs": 4, "batch_size": 16, "checkpoint_seconds": 0},
}


def word_lm(tmp_path: Path, vocab: int = 13, **data) -> Path:
    (tmp_path / "corpus.txt").write_text(sentences(400))
    doc = {**WORD_LM, "data": {**WORD_LM["data"], **data}}
    layers = [{"embedding": {"num_embeddings": vocab, "embedding_dim": 16}}, WORD_LM["model"]["layers"][1],
              {"linear": {"out_features": vocab, "from": "rnn.out"}}]
    return write_spec(tmp_path / "lm.yaml", {**doc, "model": {**doc["model"], "layers": layers}})


def test_check_sizes_the_model_from_the_learned_word_vocabulary(tmp_path: Path) -> None:
    # 11 words (the, a, cat, dog, bird, sees, ...: see sentences) + <unk> + <eos>
    assert compile_spec(word_lm(tmp_path)).task.name == "language_model"
    spec = word_lm(tmp_path, vocab=20)
    refused_at(spec, "linear:", "has 13 tokens")
    assert vocabulary_size(word_lm(tmp_path, vocab=20, max_size=5)) == 7  # 5 words + <unk> + <eos>


@pytest.mark.parametrize("data,marker,words", [
    ({"tokenizer": "byte"}, "min_freq", "applies only to `tokenizer: word`"),  # the spec's min_freq: 2 stays
    ({"word_split": "words"}, "word_split", "whitespace"),
    ({"max_size": 0}, "max_size", "must be > 0"),
])
def test_check_refuses_word_options_at_their_line(tmp_path: Path, data, marker, words) -> None:
    refused_at(word_lm(tmp_path, **data), marker, words)


def test_a_word_tokenizer_on_data_without_text_is_refused(tmp_path: Path) -> None:
    # (on a CSV's text column it is read: tests/test_text_word_tokens.py)
    spec = write_spec(tmp_path / "c.yaml", {"udlc": 1, "name": "c", "task": "sequence_classification",
                                            "data": {"source": "digits", "tokenizer": "word"},
                                            "model": {"input": {"shape": ["T"], "dtype": "int64"},
                                                      "layers": [{"embedding": {"num_embeddings": 256,
                                                                                "embedding_dim": 4}},
                                                                 {"seq_pool": "mean"}, {"linear": 2}]},
                                            "loss": "cross_entropy"})
    refused_at(spec, "tokenizer: word", "text sources")


# ---- BPE's vocab_size -----------------------------------------------------------------------------------


def test_a_bpe_vocab_size_the_text_cannot_fill_is_refused_with_the_size_it_can(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from udlc.data.text import BpeTokenizer

    corpus = sentences(100)
    learned = BpeTokenizer.fit(split_text(corpus, [0.8, 0.1, 0.1])[0], 33278).vocab_size
    assert 256 < learned < 33278
    spec = word_lm(tmp_path, vocab=33278, tokenizer="bpe", vocab_size=33278, min_freq=None)
    spec.write_text(spec.read_text().replace("  min_freq: null\n", ""))
    (tmp_path / "corpus.txt").write_text(corpus)
    refused_at(spec, "vocab_size: 33278", f"BPE learns {learned} tokens")
    refused_at(spec, "vocab_size: 33278", f"vocab_size: {learned}")
    spec.write_text(spec.read_text().replace("33278", str(learned)))
    assert compile_spec(spec).task.name == "language_model"  # the learned size checks, and trains (below)
    data = compile_spec(spec).task.load_data(compile_spec(spec))
    assert data.tokenizer.vocab_size == learned


# ---- a word language model ------------------------------------------------------------------------------


def test_a_word_lm_trains_exports_and_generates_words(tmp_path: Path) -> None:
    import torch

    from tests.conftest import train_here
    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.generate import Asked, LanguageModelFile

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train_here(word_lm(tmp_path), tmp_path / "runs")
    finally:
        torch.set_num_threads(threads)
    path = export_run(run)
    model = LanguageModelFile(path)
    assert model.tokenizer.kind == "word" and model.tokenizer.vocab_size == 13
    out = model.generate("the cat", 6, temperature=0)
    assert out.tokens == 6 and set(out.text.split()) <= set(model.tokenizer.words[2:])
    # the first word is the torch network's most likely one after the prompt's words, written after a space
    folder = RunFolder.open(run)
    compiled = folder.compiled()
    network = lower(compiled.graph).eval()
    checkpoint.load_models({"model": network}, folder.final_checkpoint(compiled.spec))
    with torch.no_grad():
        logits = network(torch.as_tensor(model.tokenizer.encode("the cat"))[None])
    first = model.tokenizer.words[int(logits[0, -1].argmax())]
    assert first in {"sees", "chases", "likes"}  # trained on "the cat <verb> <object>": a verb follows
    assert out.text.startswith(" " + first + " ")
    assert model.answer("the cat", Asked(max_new_tokens=6, temperature=0)).text == "the cat" + out.text


def test_pad_vocab_keeps_a_width_pretrained_weights_fix_and_generation_never_draws_past_the_learned(
        tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from udlc.data.text import BpeTokenizer
    from udlc.runtime.generate import LanguageModelFile

    corpus = sentences(100)
    learned = BpeTokenizer.fit(split_text(corpus, [0.8, 0.1, 0.1])[0], 2000).vocab_size
    spec = word_lm(tmp_path, vocab=2000, tokenizer="bpe", vocab_size=2000, pad_vocab=True, min_freq=None)
    spec.write_text(spec.read_text().replace("  min_freq: null\n", ""))
    (tmp_path / "corpus.txt").write_text(corpus)
    assert compile_spec(spec).task.name == "language_model"
    spec.write_text(spec.read_text().replace("out_features: 2000", "out_features: 1999"))
    refused_at(spec, "linear:", "padded to vocab_size 2000")

    class Logits:  # a session whose logits favour an id past the learned ones
        def run(self, names, feed):
            logits = np.zeros((1, feed["tokens"].shape[1], 2000), np.float32)
            logits[..., 1999], logits[..., 7] = 10.0, 5.0
            return [logits]

    model = LanguageModelFile.__new__(LanguageModelFile)
    model.session, model.input_name, model.cached, model.past = Logits(), "tokens", False, {}
    model.context, model.tokenizer = 8, BpeTokenizer.fit(split_text(corpus, [0.8, 0.1, 0.1])[0], 2000)
    logits, _ = model.run([1, 2])
    assert len(logits) == learned and int(np.argmax(logits)) == 7


def test_learned_bpe_merges_are_kept_on_disk_and_a_broken_file_is_learned_again(tmp_path, monkeypatch) -> None:
    """`udlc check` learns a corpus's merges once: later processes read them from the cache folder."""
    from udlc.data import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    corpus = "the cat sat on the mat, the cat ate the rat\n" * 200
    text._learned_bpe.cache_clear()
    first = text._learned_bpe(corpus, 300)
    (kept,) = (tmp_path / "udlc").glob("bpe-*.json")
    text._learned_bpe.cache_clear()
    monkeypatch.setattr(text, "_learn_bpe", lambda *a: pytest.fail("learned again instead of reading the cache"))
    assert text._learned_bpe(corpus, 300).to_str() == first.to_str()
    kept.write_text("{broken")
    text._learned_bpe.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert text._learned_bpe(corpus, 300).to_str() == first.to_str()
    text._learned_bpe.cache_clear()
