"""examples/text-reviews-eda.yaml, the text example where EDA's synonym replacement helps: its data is what its
generator writes, its thesaurus never crosses a label, and the spec compiles and trains (two steps)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from udlc.data.synonyms import read_synonyms
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "text-reviews-eda.yaml"
DATA = ROOT / "examples" / "data"


def generator():
    spec = importlib.util.spec_from_file_location("make_reviews", DATA / "make_reviews.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    generator().main(tmp_path)
    for name in ("reviews.csv", "review-synonyms.csv"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"rerun make_reviews.py: {name} differs"


def test_the_thesaurus_keeps_each_word_in_its_group_and_leaves_out_the_unlisted() -> None:
    gen = generator()
    synonyms = read_synonyms(DATA / "review-synonyms.csv", "data.augment[0]")
    group_of = {w: i for i, group in enumerate(g for groups in (gen.POSITIVE_ADJ, gen.NEGATIVE_ADJ, gen.POSITIVE_VERB,
                gen.NEGATIVE_VERB, gen.POSITIVE_FEEL, gen.NEGATIVE_FEEL, gen.NOUNS, gen.ADVERBS) for g in groups)
                for w in group}
    for word, others in synonyms.items():  # a synonym of the other polarity would make a mislabelled row
        assert all(group_of[s] == group_of[word] for s in others), (word, others)
    listed = set(synonyms) | {s for others in synonyms.values() for s in others}
    assert not listed & gen.UNLISTED
    assert {"good", "bad", "love", "hate"} <= set(synonyms)


def test_the_spec_compiles_with_its_synonym_replacement() -> None:
    compiled = compile_spec(SPEC)
    assert compiled.task.name == "sequence_classification"
    (augment,) = compiled.spec.data.augment
    assert augment.type == "synonym_replacement" and (SPEC.parent / augment.synonyms).is_file()


def test_it_trains_two_steps(tmp_path: Path) -> None:
    from udlc.trainer.run import train_spec

    small = tmp_path / "reviews.csv"  # 32 training rows (data.limit does not apply to a CSV text column)
    small.write_text("".join((DATA / "reviews.csv").read_text().splitlines(keepends=True)[:41]))
    compiled = compile_spec(SPEC, [f"data.source={small}", "data.split=[0.8,0.1,0.1]", "train.batch_size=16",
                                   "train.epochs=1"])
    run = train_spec(compiled, out=tmp_path / "runs", quiet=True)
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    assert 0.0 <= json.loads((run / "results.json").read_text())["test_accuracy"] <= 1.0
