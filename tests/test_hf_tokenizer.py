"""`data.tokenizer_file` (udlc.data.tokenizer_file): a Hugging Face tokenizer.json read as the model's own tokenizer.

The reference is the `tokenizers` library itself: a GPT-2-style byte-level BPE (ByteLevel pre-tokenizer, decoder and
post-processor, an <|endoftext|> added token) trained here on a little text and saved as tokenizer.json; udlc's ids
must be its `encode(...).ids`, through the file and through the JSON the ONNX metadata carries. `udlc import` of a
tiny GPT-2 folder holding that file writes the option, and (long) `udlc generate` on the export encodes a prompt in
the file's ids and continues it as transformers does greedily."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests.conftest import refused_at
from udlc.cli import main

TEXTS = ["def f(x):\n    return x + 1\n", "héllo wörld — ünïcode ✓ 日本", "  two  spaces\n\n\ttab", "x" * 50]
LM_SPEC = """udlc: 1
name: tokenizer-file
seed: 0
task: {{language_model: {{context: 16}}}}
data: {{source: stdlib, max_chars: 4000, tokenizer: bpe, tokenizer_file: {file}}}
model:
  input: {{shape: [T], dtype: int64}}
  layers:
    - embedding: {{num_embeddings: {rows}, embedding_dim: 16}}
    - learned_positions: {{max_len: 16}}
    - gpt_block: {{d_model: 16, num_heads: 2, d_ff: 32}}
    - linear: {{out_features: {width}, bias: false}}
loss: cross_entropy
optimizer: {{adamw: {{lr: 0.003}}}}
train: {{epochs: 1, batch_size: 8, checkpoint_seconds: 0}}
"""


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory) -> Path:
    """A GPT-2-style tokenizer.json: byte-level BPE of 300 ids, the last <|endoftext|>."""
    import inspect
    import textwrap

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([inspect.getsource(textwrap)], trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def reference(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def lm_spec(folder: Path, file: str, rows: int, width: int | None = None) -> Path:
    path = folder / "lm.yaml"
    path.write_text(LM_SPEC.format(file=file, rows=rows, width=width or rows))
    return path


def test_ids_and_text_are_the_files_own(tok_file: Path) -> None:
    from udlc.data.text import load_corpus, read_text, split_text, tokenizer_from_json
    from udlc.data.tokenizer_file import json_vocab_size, read_tokenizer_json

    ref = reference(tok_file)
    data = SimpleNamespace(source="stdlib", max_chars=4000, split=[0.8, 0.1, 0.1], tokenizer="bpe", vocab_size=None,
                           pad_vocab=None, tokenizer_file=tok_file.name)
    corpus = load_corpus(data, tok_file.parent)  # the language model task's data, in the file's ids
    ours = corpus.tokenizer
    val = split_text(read_text("stdlib", 4000, tok_file.parent), data.split)[1]
    assert corpus.ids["val"].tolist() == ref.encode(val).ids
    carried = tokenizer_from_json(json.loads(json.dumps(ours.to_json())))  # as the ONNX metadata carries it
    assert ours.vocab_size == carried.vocab_size == ref.get_vocab_size() == 300
    assert json_vocab_size(read_tokenizer_json(tok_file)) == 300  # check's count, from the JSON alone
    for text in TEXTS + ["a<|endoftext|>b"]:
        expected = ref.encode(text).ids
        assert ours.encode(text).tolist() == carried.encode(text).tolist() == expected
    for text in TEXTS:
        assert ours.decode(ours.encode(text)) == text == ref.decode(ref.encode(text).ids)
    assert ref.token_to_id("<|endoftext|>") in ours.encode("a<|endoftext|>b").tolist()  # one id, not its bytes


def test_check_sizes_the_network_by_the_file(tmp_path: Path, tok_file: Path) -> None:
    from udlc.tasks import compile_spec

    (tmp_path / "tokenizer.json").write_text(tok_file.read_text())
    compile_spec(lm_spec(tmp_path, "tokenizer.json", 300))  # no error
    compile_spec(lm_spec(tmp_path, "tokenizer.json", 320, 300))  # more rows than ids: unused rows are allowed
    refused_at(lm_spec(tmp_path, "tokenizer.json", 299, 300), "num_embeddings: 299", "num_embeddings: 300")
    refused_at(lm_spec(tmp_path, "tokenizer.json", 320), "out_features: 320", "linear: 300")


def test_check_refuses_what_is_not_a_bpe_tokenizer_json(tmp_path: Path, tok_file: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 300}))
    (tmp_path / "broken.json").write_text('{"model": ')
    wordpiece = json.loads(tok_file.read_text())
    wordpiece["model"] = {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}
    (tmp_path / "wordpiece.json").write_text(json.dumps(wordpiece))
    for file, words in [("missing.json", "no file missing.json"), ("config.json", "not a Hugging Face tokenizers"),
                        ("broken.json", "is not JSON"), ("wordpiece.json", "a WordPiece tokenizer")]:
        refused_at(lm_spec(tmp_path, file, 300), "tokenizer_file", words)
    spec = lm_spec(tmp_path, "config.json", 300)
    for old, new, words in [("tokenizer: bpe", "tokenizer: byte", "give `tokenizer: bpe`"),
                            ("tokenizer: bpe", "tokenizer: bpe, vocab_size: 300", "drop `vocab_size`")]:
        spec.write_text(LM_SPEC.format(file=tok_file, rows=300, width=300).replace(old, new))
        refused_at(spec, "tokenizer_file", words)
    spec.write_text(LM_SPEC.format(file=tok_file, rows=300, width=300)
                    .replace("tokenizer: bpe", "tokenizer: bpe, vocab_size: 299, pad_vocab: true"))
    refused_at(spec, "vocab_size: 299", "vocab_size: 300 or more")


def gpt2_folder(tmp_path: Path, tok_file: Path | None, vocab: int = 300):
    """A tiny random GPT-2 saved as transformers saves it, with the tokenizer.json beside it."""
    import transformers as T

    model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                   bos_token_id=299, eos_token_id=299)).eval()
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    if tok_file is not None:
        (folder / "tokenizer.json").write_text(tok_file.read_text())
    return model, folder


def udlc(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_import_reads_the_folders_tokenizer_json(tmp_path: Path, tok_file: Path) -> None:
    _, folder = gpt2_folder(tmp_path, tok_file, vocab=304)  # a network wider than the file's ids: padded
    spec = tmp_path / "specs" / "gpt2.yaml"
    udlc("import", str(folder), "-o", str(spec))
    data = next(line for line in spec.read_text().splitlines() if line.startswith("data:"))
    assert 'tokenizer_file: "../gpt2/tokenizer.json", vocab_size: 304, pad_vocab: true' in data, data
    assert "stand-in" not in spec.read_text()
    assert "OK" in udlc("check", str(spec))
    wordpiece = json.loads(tok_file.read_text())
    wordpiece["model"] = {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}
    (folder / "tokenizer.json").write_text(json.dumps(wordpiece))  # one udlc cannot read: the stand-in, and why
    out = " ".join(udlc("import", str(folder), "-o", str(spec), "--overwrite").split())
    assert "tokenizer.json is not used: tokenizer.json is a WordPiece tokenizer" in out, out
    (folder / "tokenizer.json").unlink()  # none: the stand-in, said so
    udlc("import", str(folder), "-o", str(spec), "--overwrite")
    data = next(line for line in spec.read_text().splitlines() if line.startswith("data:"))
    assert "stand-in" in data and "tokenizer_file" not in data, data


@pytest.mark.long
def test_generate_encodes_the_prompt_with_the_files_tokenizer(tmp_path: Path, tok_file: Path) -> None:
    import torch

    from udlc.runtime.generate import Asked, LanguageModelFile

    model, folder = gpt2_folder(tmp_path, tok_file)
    spec = tmp_path / "gpt2.yaml"
    udlc("import", str(folder), "-o", str(spec))
    onnx = tmp_path / "gpt2.onnx"
    udlc("export", str(spec), "-o", str(onnx))
    prompt = "def f(x):\n    return"
    ids = reference(tok_file).encode(prompt).ids
    reader = LanguageModelFile(onnx)
    assert reader.encode(prompt) == ids
    with torch.no_grad():
        expected = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                  pad_token_id=0)[0, len(ids):].tolist()
    assert list(reader.tokens(ids, Asked(max_new_tokens=6, temperature=0))) == expected
    out = udlc("generate", str(onnx), "--prompt", prompt, "--max-new-tokens", "6", "--temperature", "0")
    assert out.startswith(prompt + reference(tok_file).decode(expected)), out


@pytest.mark.long
def test_a_run_trains_in_the_files_ids_and_its_spec_names_the_file_absolutely(tmp_path: Path, tok_file: Path) -> None:
    import yaml

    from tests.conftest import train_here
    from udlc.runs import RunFolder

    (tmp_path / "tokenizer.json").write_text(tok_file.read_text())
    run = train_here(lm_spec(tmp_path, "tokenizer.json", 300), tmp_path / "runs")
    data = yaml.safe_load((run / "spec.yaml").read_text())["data"]
    assert data["tokenizer_file"] == str((tmp_path / "tokenizer.json").resolve())
    assert RunFolder.open(run).compiled().spec.data.tokenizer_file == data["tokenizer_file"]
    import udlc as api
    from udlc.runtime.generate import LanguageModelFile

    assert LanguageModelFile(api.export(run)).encode(TEXTS[0]) == reference(tok_file).encode(TEXTS[0]).ids


@pytest.mark.parametrize("task", ["masked_language_model", "span_corruption"])
def test_tasks_that_add_special_tokens_refuse_a_tokenizer_file(tmp_path: Path, tok_file: Path, task: str) -> None:
    """Their tokenizer is learned with [MASK] or T5's sentinels added (udlc.data.specials): a published file would
    pass `check` and then not be what trains."""
    contract = Path(__file__).resolve().parent / "specs" / "contract" / f"{task}.yaml"
    text = contract.read_text()
    data_line = next(line for line in text.splitlines() if line.startswith("data:"))
    spec = tmp_path / "spec.yaml"
    data = data_line.replace("tokenizer: byte", "tokenizer: bpe").rstrip().rstrip("}") + f", tokenizer_file: {tok_file}}}"
    spec.write_text(text.replace(data_line, data))
    refused_at(spec, "tokenizer_file", "read by language_model")
