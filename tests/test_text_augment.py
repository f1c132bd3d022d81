"""Text augmentation (udlc/spec/text_augments.py, udlc/objectives/text_augments.py, udlc/data/text_augment.py): each
EDA operation against its definition (Wei & Zou 2019, nlpaug's) on a fixed generator, token masking's rate,
synonyms files and the checks at their lines, draws that follow the run's generator, only the training split
changed, back-translation through a tiny random T5, and a text classifier that trains with all of them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import line_of, refused_at
from udlc.objectives.text_augments import TEXT_APPLY
from udlc.spec.augments import AUGMENTS
from udlc.spec.data import DataSpec

ROOT = Path(__file__).resolve().parent
SYNONYMS = {"quick": ["fast", "rapid"], "dog": ["hound"], "lazy": ["idle", "slack"]}
WORDS = "the quick brown fox jumps over the lazy dog".split()


def config(example) -> object:
    (aug,) = DataSpec.model_validate({"source": "rows.csv", "text": "line", "augment": [example]}).augment
    return aug


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("entry", [e for e in AUGMENTS if e.text_only], ids=lambda e: e.name)
def test_every_example_validates_and_fills_its_main_arg(entry) -> None:
    for example in AUGMENTS.examples(entry):
        aug = config(example)
        assert isinstance(aug, entry.config)
        if isinstance(example, dict) and not isinstance(*example.values(), dict):
            assert getattr(aug, entry.main_arg) == example[entry.name]


def test_swap_keeps_the_words_and_moves_n_pairs() -> None:
    swap = TEXT_APPLY["random_swap"]
    words = [f"w{i}" for i in range(30)]
    for seed in range(20):
        once = swap(words, config({"random_swap": 1}), rng(seed), {})
        assert Counter(once) == Counter(words)
        assert sum(a != b for a, b in zip(once, words)) == 2  # distinct positions: one pair exchanged
        thrice = swap(words, config({"random_swap": 3}), rng(seed), {})
        assert Counter(thrice) == Counter(words) and 0 < sum(a != b for a, b in zip(thrice, words)) <= 6
    assert swap(["alone"], config({"random_swap": 5}), rng(), {}) == ["alone"]


def test_deletion_drops_each_word_at_its_rate_and_never_empties() -> None:
    delete = TEXT_APPLY["random_deletion"]
    words = [f"w{i}" for i in range(20000)]
    kept = delete(words, config({"random_deletion": 0.3}), rng(1), {})
    sd = (len(words) * 0.3 * 0.7) ** 0.5
    assert abs(len(kept) - 0.7 * len(words)) < 5 * sd  # binomial(20000, 0.7)
    survivors = set(kept)
    assert kept == [w for w in words if w in survivors]  # the survivors in their order
    for seed in range(10):
        (left,) = delete(WORDS, config({"random_deletion": 1.0}), rng(seed), {})
        assert left in WORDS
    assert delete(WORDS, config({"random_deletion": 0.0}), rng(), {}) == WORDS


def test_insertion_adds_only_synonyms_of_the_texts_words() -> None:
    insert = TEXT_APPLY["random_insertion"]
    for seed in range(20):
        out = insert(WORDS, config({"random_insertion": {"synonyms": "s.csv", "n": 3}}), rng(seed), SYNONYMS)
        assert len(out) == len(WORDS) + 3
        added = Counter(out) - Counter(WORDS)
        assert sum(added.values()) == 3
        assert set(added) <= {"fast", "rapid", "hound", "idle", "slack"}
        it = iter(out)
        assert all(w in it for w in WORDS)  # the original words still there, in their order
    no_synonyms = ["a", "b"]
    assert insert(no_synonyms, config({"random_insertion": "s.csv"}), rng(), SYNONYMS) == no_synonyms


def test_replacement_changes_only_words_with_synonyms_into_their_synonyms() -> None:
    replace = TEXT_APPLY["synonym_replacement"]
    changed_counts = set()
    for seed in range(30):
        out = replace(WORDS, config({"synonym_replacement": {"synonyms": "s.csv", "n": 2}}), rng(seed), SYNONYMS)
        assert len(out) == len(WORDS)
        changed = [(a, b) for a, b in zip(WORDS, out) if a != b]
        assert all(b in SYNONYMS[a] for a, b in changed)
        changed_counts.add(len(changed))
    assert changed_counts == {2}  # three words have synonyms: n of them are replaced
    many = replace(WORDS, config({"synonym_replacement": {"synonyms": "s.csv", "n": 50}}), rng(), SYNONYMS)
    assert [a != b for a, b in zip(WORDS, many)] == [w in SYNONYMS for w in WORDS]
    # matched ignoring case
    assert replace(["Quick"], config({"synonym_replacement": "s.csv"}), rng(), SYNONYMS)[0] in SYNONYMS["quick"]


def test_token_mask_rate() -> None:
    ids = np.arange(20000, dtype=np.int64) % 50 + 1
    out = TEXT_APPLY["token_mask"](ids, config({"token_mask": 0.2}), rng(3), 0)
    masked = out == 0
    sd = (len(ids) * 0.2 * 0.8) ** 0.5
    assert abs(masked.sum() - 0.2 * len(ids)) < 5 * sd
    assert np.array_equal(out[~masked], ids[~masked]) and out.dtype == np.int64


def test_synonym_files_csv_and_yaml_and_their_mistakes_by_line(tmp_path) -> None:
    from udlc.data.synonyms import read_synonyms
    from udlc.errors import SpecError

    good_csv = tmp_path / "s.csv"
    good_csv.write_text("# word,synonyms\nQuick,fast,rapid\n\ndog,hound,\n")
    good_yaml = tmp_path / "s.yaml"
    good_yaml.write_text("quick: [fast, rapid]\ndog: hound\n")
    expected = {"quick": ["fast", "rapid"], "dog": ["hound"]}
    assert read_synonyms(good_csv, "x") == read_synonyms(good_yaml, "x") == expected
    cases = {"a.csv": ("quick,fast\ndog\n", "a.csv line 2: 'dog' has no synonyms"),
             "b.csv": ("quick,fast\nlazy,idle\nQuick,rapid\n",
                       "b.csv line 3: 'quick' is listed again (first at line 1)"),
             "c.csv": ("two words,x\n", "c.csv line 1: 'two words' is several words"),
             "d.yaml": ("quick: [fast]\ndog: {a: 1}\n", "d.yaml line 2: 'dog' takes a list of synonyms"),
             "e.yaml": ("- quick\n- dog\n", "e.yaml line 1: a synonyms file is a mapping"),
             "f.yaml": ("quick: [fast\ndog: x\n", "f.yaml line 2: invalid YAML"),
             "g.txt": ("quick fast\n", "a synonyms file is .csv or .yaml")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_synonyms(tmp_path / name, "data.augment[0]")


# ---- a text classifier's spec, checked, trained ----------------------------------------------------------

LINES = [("return the value of x", "code"), ("# the value is quick to read", "comment"),
         ("if x is None: return y", "code"), ("# a lazy dog sleeps here", "comment")]


def write_spec(tmp_path: Path, augment: list, tokenizer: str = "char", source: str = "rows.csv",
               name: str = "spec.yaml") -> Path:
    rows = "line,kind\n" + "".join(f"{t} {i},{k}\n" for i in range(12) for t, k in LINES)
    (tmp_path / "rows.csv").write_text(rows)
    (tmp_path / "syn.csv").write_text("quick,fast,rapid\nvalue,worth\nreturn,give back\nlazy,idle\n")
    spec = (ROOT / "specs" / "contract" / "sequence_classification.yaml").read_text()
    spec = spec.replace("source: lines.csv", f"source: {source}").replace("tokenizer: char", f"tokenizer: {tokenizer}")
    if tokenizer == "byte":
        spec = spec.replace("num_embeddings: 128", "num_embeddings: 256")
    spec = spec.replace("split: [0.7, 0.15, 0.15]}",
                        "split: [0.5, 0.25, 0.25],\n  augment: " + json.dumps(augment) + "}")
    path = tmp_path / name
    path.write_text(spec)
    return path


def test_check_refuses_each_augmentation_where_it_does_not_fit_at_its_line(tmp_path) -> None:
    cases = [
        ([{"rotate": 10}], "rotate", "a text classifier reads token ids"),
        ([{"random_swap": 1}, {"synonym_replacement": "nope.csv"}], "nope.csv", "no synonyms file nope.csv"),
        ([{"token_mask": 0.1}], "token_mask", "byte tokenizer has no unknown id"),
        ([{"back_translation": "no-model/"}], "no-model", "no model folder no-model/"),
        ([{"random_deletion": 1.5}], "random_deletion", "p must be <= 1.0 (got 1.5)"),
    ]
    for augment, marker, words in cases:
        spec = write_spec(tmp_path, augment, tokenizer="byte" if marker == "token_mask" else "char")
        refused_at(spec, marker, words)
    (tmp_path / "bad.csv").write_text("quick,fast\nlazy\n")
    refused_at(write_spec(tmp_path, [{"random_insertion": "bad.csv"}]), "bad.csv",
               "bad.csv line 2: 'lazy' has no synonyms")
    refused_at(write_spec(tmp_path, [{"token_mask": {"p": 0.1, "id": 999}}]), "token_mask", "past the vocabulary")


def test_check_refuses_text_augmentation_on_data_without_text(tmp_path) -> None:
    spec = tmp_path / "digits.yaml"
    spec.write_text((ROOT.parent / "examples" / "digits-mlp.yaml").read_text().replace(
        "  source: digits\n", "  source: digits\n  augment: [{random_swap: 1}]\n"))
    assert "random_swap" in spec.read_text()
    refused_at(spec, "random_swap", "digits has no text column")


def compiled_data(spec: Path):
    from udlc.tasks import compile_spec

    compiled = compile_spec(spec)
    state = compiled.task.start(compiled, compiled.task.load_data(compiled), "cpu")
    return compiled, state


def test_draws_follow_the_generator_and_only_the_training_split_changes(tmp_path) -> None:
    spec = write_spec(tmp_path, [{"random_swap": 2}, {"random_deletion": 0.3}, {"synonym_replacement": "syn.csv"},
                                 {"token_mask": 0.2}])
    compiled, state = compiled_data(spec)
    task = compiled.task
    train = task.batches(state, "train", batch_size=64, shuffle=True, device="cpu")
    plain = task.batches(state, "train", batch_size=64, shuffle=False, device="cpu")

    def epoch(g: torch.Generator) -> list[dict]:
        return [{k: v.clone() for k, v in b.items()} for b in train.epoch_batches(g)]

    g = torch.Generator().manual_seed(5)
    first = epoch(g)
    resumed_state = g.get_state()  # what a checkpoint after epoch 1 keeps
    second = epoch(g)
    again = torch.Generator()
    again.set_state(resumed_state)
    for a, b in zip(epoch(again), second):  # a resumed run draws epoch 2 as the first run did
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a["tokens"], b["tokens"]) for a, b in zip(first, second))  # drawn anew each epoch
    # the same rows, each still with its label: the targets' counts hold
    targets = torch.cat([b["target"] for b in first])
    assert sorted(targets.tolist()) == sorted(s["target"] for s in state.data.splits["train"])
    written = {tuple(s["tokens"].tolist()) for s in state.data.splits["train"]}
    augmented = {tuple(t[m].tolist()) for b in first for t, m in zip(b["tokens"], b["tokens_mask"])}
    assert len(augmented - written) > len(written) // 2  # most rows changed
    # in order (an evaluation of the training split), validation and test: as written
    in_order = {tuple(t[m].tolist()) for b in plain.epoch_batches(None) for t, m in zip(b["tokens"], b["tokens_mask"])}
    assert in_order == written
    for split in ("val", "test"):
        batches = task.batches(state, split, batch_size=64, shuffle=False, device="cpu")
        got = [t[m].tolist() for b in batches.epoch_batches(None) for t, m in zip(b["tokens"], b["tokens_mask"])]
        assert got == [s["tokens"].tolist() for s in state.data.splits[split]]
        assert got == [state.data.tokenizer.encode(f"{t}")[:32].tolist() for t in _texts(compiled, split)]


def _texts(compiled, split: str) -> list[str]:
    """The split's texts as written, by the task's own split of the rows."""
    texts, _ = compiled.task.read(compiled)
    cuts = compiled.task.split(compiled, list(range(len(texts))), np.random.default_rng(compiled.spec.seed))
    return [texts[i] for i in cuts[split]]


# ---- back-translation through a tiny random T5 -------------------------------------------------------------


def tiny_t5(folder: Path) -> Path:
    """A random 1-layer T5 and a word-level tokenizer over the rows' words: gibberish, which is fine here."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w for t, _ in LINES for w in t.split()} | {str(i) for i in range(12)})
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=8, d_ff=16, d_kv=4, num_layers=1, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.mark.long  # importing transformers and building a T5: seconds
def test_back_translation_adds_one_cached_paraphrase_per_training_row(tmp_path, monkeypatch) -> None:
    import udlc.objectives.text_augments as ops

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny_t5(tmp_path / "t5")
    spec = write_spec(tmp_path, [{"back_translation": {"model": "t5", "max_length": 6}}, {"random_swap": 1}])
    compiled, state = compiled_data(spec)
    _, plain = compiled_data(write_spec(tmp_path, [], name="plain.yaml"))
    sizes = {k: len(v) for k, v in state.data.splits.items()}
    before = {k: len(v) for k, v in plain.data.splits.items()}
    assert sizes == {**before, "train": 2 * before["train"]}  # one paraphrase per training row, there alone
    for split in ("val", "test"):
        assert all(np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(state.data.splits[split],
                                                                            plain.data.splits[split]))
    augmenter = state.data.augment
    n = before["train"]
    assert augmenter.targets[n:] == augmenter.targets[:n]  # each paraphrase keeps its row's label
    cached = augmenter.translations
    assert cached.parent == tmp_path / "cache" / "udlc" / "back-translation"
    assert json.loads(cached.read_text()) == augmenter.texts[n:]
    assert compiled.task.info(compiled, state)["back_translation"] == str(cached)

    def untouchable(*args, **kwargs):
        raise AssertionError("translated again instead of reading the cache")

    monkeypatch.setitem(ops.TEXT_APPLY, "back_translation", untouchable)
    _, again = compiled_data(spec)  # a resume, or a second run with the same inputs
    assert again.data.augment.texts == augmenter.texts and again.data.augment.translations == cached


def test_back_translation_needs_a_seq2seq_folder(tmp_path) -> None:
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    refused_at(write_spec(tmp_path, [{"back_translation": "enc"}]), "back_translation", "no seq2seq")
    (tmp_path / "empty").mkdir()
    refused_at(write_spec(tmp_path, [{"back_translation": {"model": "empty"}}]), "back_translation",
               "has no config.json")


@pytest.mark.long
def test_a_text_classifier_trains_with_every_text_augmentation(tmp_path, monkeypatch) -> None:
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny_t5(tmp_path / "t5")
    spec = write_spec(tmp_path, [{"back_translation": {"model": "t5", "max_length": 6}}, {"random_swap": 1},
                                 {"random_deletion": 0.1}, {"random_insertion": "syn.csv"},
                                 {"synonym_replacement": {"synonyms": "syn.csv", "rows": 0.5}}, {"token_mask": 0.1}])
    spec.write_text(spec.read_text().replace("epochs: 2", "epochs: 1"))
    run = train_spec(compile_spec(spec, ["train.epochs=1"]), out=tmp_path / "runs", quiet=True)
    assert "test_accuracy" in json.loads((run / "results.json").read_text())
    assert json.loads((run / "run.json").read_text())["back_translation"].endswith(".json")
    assert line_of(spec, "back_translation") > 0


class Killed(Exception):
    pass


def test_a_resumed_run_draws_the_augmentations_the_straight_run_drew(tmp_path) -> None:
    from safetensors.torch import load_file

    from udlc.tasks import compile_spec
    from udlc.trainer.run import resume_run, train_spec

    synonyms = "syn.csv"  # relative to the spec: the run folder's copy of the spec holds it absolute
    spec = write_spec(tmp_path, [{"random_swap": 1}, {"random_deletion": 0.2}, {"random_insertion": synonyms},
                                 {"synonym_replacement": {"synonyms": synonyms, "rows": 0.5}}, {"token_mask": 0.1}])
    spec.write_text(spec.read_text().replace("epochs: 2", "epochs: 3"))
    straight = train_spec(compile_spec(spec), out=tmp_path / "straight", quiet=True)

    def kill(row: dict) -> None:
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train_spec(compile_spec(spec), out=tmp_path / "killed", quiet=True, on_epoch=kill)
    (killed,) = (tmp_path / "killed").glob("*/*")
    assert str(tmp_path / "syn.csv") in (killed / "spec.yaml").read_text()
    resume_run(killed, quiet=True)
    a, b = (load_file(str(run / "checkpoints" / "last.safetensors")) for run in (straight, killed))
    assert [k for k in a if not a[k].equal(b[k])] == []
    assert json.loads((killed / "results.json").read_text()) == json.loads((straight / "results.json").read_text())


def test_a_text_classifier_takes_a_step_on_an_augmented_batch(tmp_path) -> None:
    from udlc.compiler.lower import lower
    from udlc.tasks.fields import inputs_of

    spec = write_spec(tmp_path, [{"random_swap": 1}, {"random_deletion": 0.1}, {"random_insertion": "syn.csv"},
                                 {"synonym_replacement": "syn.csv"}, {"token_mask": 0.1}])
    compiled, state = compiled_data(spec)
    torch.manual_seed(0)
    model = lower(compiled.graphs["model"])
    batches = compiled.task.batches(state, "train", batch_size=16, shuffle=True, device="cpu")
    batch = next(iter(batches.epoch_batches(torch.Generator().manual_seed(0))))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = state.loss_fn(model(*inputs_of(state.inputs, batch)), batch["target"])
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_rows_is_the_share_of_lines_an_operation_changes(tmp_path) -> None:
    from udlc.data.text_augment import TextAugmenter

    texts = [" ".join(f"w{i}_{j}" for j in range(12)) for i in range(4000)]
    for share in (0.0, 0.3, 1.0):
        aug = config({"random_swap": {"n": 1, "rows": share}})
        augmenter = TextAugmenter(texts, [0] * len(texts), [aug], tmp_path, encode=lambda t: t, mask_id=None)
        draws = rng(7)  # one stream for the epoch, as TextAugmenter.samples draws
        changed = sum(a != augmenter.text(a, draws) for a in texts)
        sd = (len(texts) * share * (1 - share)) ** 0.5
        assert abs(changed - share * len(texts)) <= 5 * sd, (share, changed)
