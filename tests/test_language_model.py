"""task: language_model — text sources and tokenizers, what check refuses at its line, training that learns
a text, bits per byte, and generation from the exported file with onnxruntime alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_failure, edited, line_of, train_here, trained_network, write_spec
from udlc.data.text import (ByteTokenizer, CharTokenizer, TextData, fit_tokenizer, load_text_data, split_text,
                            tokenizer_from_json)
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

PANGRAM = "the quick brown fox jumps over the lazy dog\n"
ALPHABET = "abcdefghijklmnopqrstuvwxyz \n"  # 28 characters, as the pangram, each one fixing the next
VOCAB = 29  # its char tokenizer: the 28 characters and the unknown id

LM = {
    "udlc": 1,
    "name": "tiny-lm",
    "seed": 0,
    "task": {"language_model": {"context": 16}},
    "data": {"source": "corpus.txt", "tokenizer": "char", "split": [0.8, 0.1, 0.1]},
    "model": {
        "input": {"shape": ["T"], "dtype": "int64"},
        "layers": [
            {"embedding": {"num_embeddings": VOCAB, "embedding_dim": 32, "init": "normal"}},
            {"learned_positions": {"max_len": 32}},
            *[{"residual": ["layernorm", {"multihead_attention": {"num_heads": 2, "causal": True}}]},
              {"residual": ["layernorm", {"linear": 64}, "gelu", {"linear": 32}]}] * 2,
            "layernorm",
            {"linear": {"out_features": VOCAB, "id": "logits"}},
        ],
    },
    "loss": "cross_entropy",
    "metrics": ["accuracy"],
    "optimizer": {"adamw": {"lr": 0.01}},
    "train": {"epochs": 6, "batch_size": 16},
}


def lm_spec(tmp_path: Path, text: str = ALPHABET * 100, **changes) -> Path:
    (tmp_path / "corpus.txt").write_text(text)
    doc = edited(LM, changes)
    return write_spec(tmp_path / "lm.yaml", doc)


def error_at(spec: Path) -> tuple[int, str, str]:
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    return e.span.line, e.message, e.hint or ""


# ---- tokenizers and text --------------------------------------------------------------------------


@pytest.mark.parametrize("tok", [ByteTokenizer(), CharTokenizer.fit("hello wörld ✓\n")], ids=["byte", "char"])
def test_tokenizers_round_trip_and_rebuild_from_their_json(tok) -> None:
    text = "wörld ✓ hello\n"
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == text
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert again.vocab_size == tok.vocab_size and np.array_equal(again.encode(text), ids)


def test_byte_ids_are_utf8_bytes_and_a_char_vocabulary_is_the_texts_characters() -> None:
    assert ByteTokenizer().encode("é").tolist() == [0xC3, 0xA9]
    tok = CharTokenizer.fit("banana")
    assert tok.chars == "abn" and tok.encode("nab").tolist() == [2, 0, 1]
    assert tok.encode("d!").tolist() == [3, 3]  # a character the text never held: the unknown id


def test_bpe_learns_merges_from_the_training_text_and_round_trips_any_text() -> None:
    pytest.importorskip("tokenizers")
    tok = fit_tokenizer("bpe", PANGRAM * 50, PANGRAM * 50, 300)
    assert 256 < tok.vocab_size <= 300
    assert len(tok.encode(PANGRAM)) < len(PANGRAM.encode()) / 2  # merges learned: fewer tokens than bytes
    unseen = "Zebra ✓ 42"
    assert tok.decode(tok.encode(unseen)) == unseen  # byte-level: nothing is out of vocabulary
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert np.array_equal(again.encode(PANGRAM), tok.encode(PANGRAM))


def test_splits_are_contiguous_stretches_cut_at_line_ends() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    parts = split_text(text, [0.8, 0.1, 0.1])
    assert "".join(parts) == text
    assert all(p.endswith("\n") for p in parts[:2])
    assert abs(len(parts[0]) / len(text) - 0.8) < 0.01 and abs(len(parts[1]) / len(text) - 0.1) < 0.01


def test_windows_hold_the_next_token_as_target() -> None:
    ids = np.arange(50, dtype=np.int64)
    data = TextData(ByteTokenizer(), {"train": ids}, {"train": 50})
    x, y = data.windows("train", 8)
    assert x.shape == y.shape == (6, 8)  # (50 - 1) // 8 windows
    assert np.array_equal(y, x + 1) and x[1, 0] == 8  # non-overlapping, shifted by one


def test_the_stdlib_corpus_is_python_source_read_offline(tmp_path: Path) -> None:
    data = load_text_data("stdlib", 20_000, "byte", None, [0.9, 0.05, 0.05], tmp_path)
    text = ByteTokenizer().decode(data.ids["train"])
    assert "def " in text and "import " in text
    assert sum(data.bytes.values()) == sum(len(v) for v in data.ids.values())  # byte tokenizer: a token a byte


# ---- check ----------------------------------------------------------------------------------------


def test_a_language_model_spec_checks(tmp_path: Path) -> None:
    compiled = compile_spec(lm_spec(tmp_path))
    assert compiled.task.name == "language_model" and compiled.task.options.context == 16


@pytest.mark.parametrize("change, marker, words", [
    ({"model.layers": LM["model"]["layers"][:-1] + [{"linear": 30}]}, "linear: 30", "has 29 tokens"),
    ({"model.input": ["T", 4], "model.layers": [{"linear": VOCAB}]}, "input:", "token ids"),
    ({"model.input": [16]}, "embedding:", "int64"),
    ({"data.source": "moons", "data.tokenizer": None}, "source: moons", "holds samples"),
    ({"loss": "mse"}, "loss: mse", "cross_entropy"),
    ({"metrics": ["f1_macro"]}, "f1_macro", "not computed"),
    ({"model.input": {"shape": [8], "dtype": "int64"}}, "input:", "context is 16"),
    ({"model.layers": [{"embedding": {"num_embeddings": 20, "embedding_dim": 8}}, {"linear": VOCAB}]},
     "- embedding:", "20 rows"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, change, marker, words) -> None:
    spec = lm_spec(tmp_path, **change)
    if change.get("data.tokenizer", "") is None:
        text = spec.read_text().replace("tokenizer: null", "")
        spec.write_text(text)
    line, message, hint = error_at(spec)
    assert line == line_of(spec, marker) and words in message + hint


def test_text_is_refused_by_the_supervised_task_and_tokenizer_by_sample_sets(tmp_path: Path) -> None:
    spec = lm_spec(tmp_path, task="supervised")
    line, message, hint = error_at(spec)
    assert line == line_of(spec, "source: corpus.txt") and "language_model" in hint
    spec = write_spec(tmp_path / "m.yaml", {"udlc": 1, "name": "m", "data": {"source": "moons", "tokenizer": "byte"},
                                            "model": {"input": [2], "layers": [{"linear": 2}]},
                                            "loss": "cross_entropy"})
    line, message, _ = error_at(spec)
    assert line == line_of(spec, "tokenizer: byte") and "text sources" in message


def test_a_char_vocabulary_is_read_from_the_text_at_check_time(tmp_path: Path) -> None:
    spec = lm_spec(tmp_path, text="abc\n" * 200)  # 4 characters and the unknown id, the model gives 29
    line, message, hint = error_at(spec)
    assert line == line_of(spec, "out_features: 29") - 1 and "linear: 5" in hint  # the layer, a line above


# ---- training, export, generation -----------------------------------------------------------------


def exported(run_dir: Path) -> Path:
    """The run's model.onnx, exported on first use."""
    if not (run_dir / "model.onnx").is_file():
        from udlc.exporter.onnx import export_run

        export_run(run_dir)
    return run_dir / "model.onnx"


@pytest.fixture(scope="module")
def alphabet_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    return train_here(lm_spec(root), root / "runs")


@pytest.mark.slow
def test_a_small_transformer_learns_a_repeated_text(alphabet_run: Path) -> None:
    rows = [json.loads(line) for line in (alphabet_run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if "val_loss" in r]
    assert epochs[-1]["val_loss"] < 0.5 * epochs[0]["train_loss"]
    last = epochs[-1]
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_loss"]), rel=1e-6)
    # char tokens of ASCII text are bytes: bits per byte is the loss in bits
    assert last["val_bits_per_byte"] == pytest.approx(last["val_loss"] / math.log(2), rel=1e-6)
    assert last["val_accuracy"] > 0.8


@pytest.mark.slow
def test_generation_runs_from_the_onnx_file_and_follows_the_text(alphabet_run: Path, invoke) -> None:
    result = invoke("generate", alphabet_run, "--prompt", "uvw", "--max-new-tokens", "30", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "uvw" + (ALPHABET * 2)[23:53] + "\n"
    assert (alphabet_run / "model.onnx").is_file()  # exported on first use


@pytest.mark.slow
def test_greedy_onnx_generation_equals_the_torch_model(alphabet_run: Path) -> None:
    import torch

    from udlc.runtime.generate import LanguageModelFile

    network = trained_network(alphabet_run)
    lm = LanguageModelFile(exported(alphabet_run))
    assert lm.cached  # a transformer's file carries its key/value cache
    prompt = "xyz \nab"
    ids = lm.tokenizer.encode(prompt).tolist()
    for _ in range(30):  # longer than the context of 16: both crop to the last 16 tokens
        with torch.no_grad():
            logits = network(torch.tensor([ids[-16:]]))
        ids.append(int(logits[0, -1].argmax()))
    assert prompt + lm.generate(prompt, 30, temperature=0, use_cache=False).text == lm.tokenizer.decode(ids)
    # Within the context the cache changes nothing: 7 prompt tokens and 9 new ones fill the 16 positions.
    assert prompt + lm.generate(prompt, 9, temperature=0).text == lm.tokenizer.decode(ids[:16])


@pytest.mark.slow
def test_cached_and_uncached_steps_give_the_same_logits(alphabet_run: Path) -> None:
    from udlc.runtime.generate import LanguageModelFile

    lm = LanguageModelFile(exported(alphabet_run))
    ids = lm.tokenizer.encode("hello world \nabc").tolist()  # 15 tokens: within the context of 16
    logits, past = lm.run(ids[:10])
    for i in range(10, len(ids)):
        logits, past = lm.run([ids[i]], past)
        whole, _ = lm.run(ids[:i + 1])
        assert np.allclose(logits, whole, atol=1e-4)
    assert past[0].shape[2] == len(ids)  # (batch, kv_heads, positions, head_dim)


def test_only_networks_that_work_position_by_position_get_a_cache(tmp_path: Path) -> None:
    from udlc.compiler.pipeline import resolve_spec
    from udlc.exporter.decoding import cache_plan

    graph = compile_spec(lm_spec(tmp_path)).graph
    cached, why = cache_plan(graph)
    assert len(cached) == 2 and why is None
    conv = {"conv1d": {"out_channels": 32, "kernel_size": 3, "padding": 1}}
    layers = [LM["model"]["layers"][0], {"transpose": [0, 1]}, conv, {"transpose": [0, 1]},
              *LM["model"]["layers"][1:]]
    # a convolution over T reads t+1: the task check refuses it (tests/test_causality.py); the plan is read before it
    graph = resolve_spec(lm_spec(tmp_path, **{"model.layers": layers})).graph
    cached, why = cache_plan(graph)
    assert cached == [] and "transpose" in why


@pytest.mark.slow
def test_sampling_follows_its_seed_and_top_k_1_is_greedy(alphabet_run: Path) -> None:
    from udlc.runtime.generate import LanguageModelFile

    lm = LanguageModelFile(exported(alphabet_run))
    a, b = (lm.generate("abc", 40, temperature=1.5, seed=7).text for _ in range(2))
    assert a == b
    assert lm.generate("abc", 40, temperature=1.0, top_k=1).text == lm.generate("abc", 40, temperature=0).text
    assert a != lm.generate("abc", 40, temperature=1.5, seed=8).text


@pytest.mark.slow
def test_predict_and_generate_refuse_each_others_models(alphabet_run: Path, tmp_path: Path, invoke) -> None:
    model = exported(alphabet_run)
    (tmp_path / "x.csv").write_text("a\n1\n")
    out = assert_clean_failure(invoke("predict", model, tmp_path / "x.csv"))
    assert "udlc generate" in out
    unseen = invoke("generate", model, "--prompt", "€", "--max-new-tokens", "3")  # the unknown id: no error
    assert unseen.returncode == 0 and unseen.stdout.startswith("€"), unseen.stderr


def test_a_positions_table_bounds_the_lengths_that_runs_and_exports_pick(tmp_path: Path) -> None:
    """Shape inference probes T at 32 and 61; a table of 20 rows must not make `summary --torch` or an export
    run the network at those lengths."""
    from udlc.compiler.lower import cross_check
    from udlc.exporter.onnx import check_sizes, trace_sizes

    layers = [dict(LM["model"]["layers"][0]), {"learned_positions": {"max_len": 20}}, *LM["model"]["layers"][2:]]
    graph = compile_spec(lm_spec(tmp_path, **{"model.layers": layers})).graph
    assert graph.bounds == {"T": 20}
    assert cross_check(graph).startswith("torch agrees")
    assert trace_sizes({"T": 2}, {"T": 10}) == {"T": 8} and check_sizes({"T": 2}, {"T": 10}) == {"T": 10}
    assert check_sizes({"T": 2}, {"T": 8}) == {"T": 7}  # no room above the traced size: one below it
    assert check_sizes({"T": 2}) == {"T": 13}


@pytest.mark.slow
def test_a_language_model_quantizes_dynamically_and_still_continues_the_text(alphabet_run: Path, tmp_path: Path,
                                                                               invoke) -> None:
    """`udlc export --quantize int8` on an attention model: dynamic quantization, scored by next-token accuracy
    on the test text; the int8 file keeps its key/value cache and generates as the float one does."""
    import shutil

    exported(alphabet_run)
    run = Path(shutil.copytree(alphabet_run, tmp_path / "run"))
    result = invoke("export", run, "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    scores = [float(line.split("next-token accuracy ")[1].split()[0]) for line in lines[1:3]]
    assert scores[0] > 0.8 and scores[0] - scores[1] <= 0.01, lines
    assert "dynamic int8" in lines[3]
    result = invoke("generate", run / "model.int8.onnx", "--prompt", "uvw", "--max-new-tokens", "30",
                    "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "uvw" + (ALPHABET * 2)[23:53] + "\n"


def test_validation_shares_of_a_text_sum_to_the_whole_split(tmp_path: Path, one_torch_thread) -> None:
    """On several processes each validates a share of the windows and the sums are added up: windows of one at a
    time on two processes leave process 0 only stand-ins, and both score the split as one process does. (The sum
    over processes is played here by hand, so that no process group is needed.)"""
    import torch

    from udlc.trainer.distributed import Processes, Shard
    from udlc.guide.probe import probe_setup

    compiled = compile_spec(lm_spec(tmp_path))
    data = compiled.task.load_data(compiled)
    s = probe_setup(compiled, data)
    val = compiled.task.batches(s.run_state, "val", batch_size=1, shuffle=False, device=torch.device("cpu"))
    whole = compiled.task.evaluate(s, val)
    sums: dict[int, list[float]] = {}

    class Played(Processes):
        """Records each process's sums; once both are known, gives their total."""

        def sum(self, values: list[float]) -> list[float]:
            sums[self.rank] = values
            return [a + b for a, b in zip(sums[0], sums[1])] if len(sums) == 2 else values

    for rank in (1, 0):  # the first pass records the sums (process 0 alone has no token to divide by)
        compiled.task.evaluate(s, Shard(val, Played(rank, 2, rank), order=None))
    assert sums[0][:2] == [0.0, 0]  # no nats, no tokens: only stand-ins in process 0
    for rank in (0, 1):
        score = compiled.task.evaluate(s, Shard(val, Played(rank, 2, rank), order=None))
        assert score.keys() == whole.keys()
        assert all(score[k] == pytest.approx(whole[k], rel=1e-6) for k in whole), (score, whole)
