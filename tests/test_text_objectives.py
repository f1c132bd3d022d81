"""BERT's and T5's objectives (udlc.data.masking, udlc.tasks.masked_lm, udlc.tasks.span_corruption), sentence pairs
(udlc.data.pairs) and text to text from a CSV (task seq2seq): the draws against their stated proportions, the loss
at the chosen positions only, pairs and span corruption against hand-written examples, the zoo's BERT and T5
checked and trained a step, and each mistake refused by `check` at its line."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest

from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "examples" / "zoo"
CONTRACT = Path(__file__).parent / "specs" / "contract"


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """`count` of `n` draws is within `sigmas` binomial standard deviations of n·p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# ---- BERT's masking ---------------------------------------------------------------------------------------------


def test_masking_chooses_15_percent_and_masks_80_randomizes_10_keeps_10() -> None:
    import torch

    from udlc.data.masking import mask_tokens

    vocab, mask_id = 50_000, 50_002  # a large vocabulary: a random token equals the original once in 50,000
    ids = torch.randint(vocab, (400, 500), generator=torch.Generator().manual_seed(1))
    inputs, chosen = mask_tokens(ids, 0.15, mask_id, vocab, torch.Generator().manual_seed(0))
    n, k = ids.numel(), int(chosen.sum())
    assert within(k, n, 0.15)
    masked = int((inputs == mask_id)[chosen].sum())
    kept = int((inputs == ids)[chosen].sum())
    randomized = k - masked - kept
    assert within(masked, k, 0.8)
    assert within(randomized, k, 0.1 * (1 - 1 / vocab)) and within(kept, k, 0.1 + 0.1 / vocab)
    assert torch.equal(inputs[~chosen], ids[~chosen])  # what is not chosen is left as it is
    assert int(inputs[chosen & (inputs != mask_id)].max()) < vocab  # random tokens are the base's, never a special


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """The contract example's masked LM: its task, run state and a training batch drawn from a seeded generator."""
    import torch

    compiled = compile_spec(CONTRACT / "masked_language_model.yaml")
    task = compiled.task
    state = task.start(compiled, task.load_data(compiled), torch.device("cpu"))
    batches = task.batches(state, "train", batch_size=8, shuffle=True, device=torch.device("cpu"))
    batch = next(batches.epoch_batches(torch.Generator().manual_seed(0)))
    return compiled, task, state, batch


def fake_setup(model, state):
    """What train_step and evaluate use of the loop's Setup."""
    class S:
        models = {state.net: model}
        run_state = state
        autocast = staticmethod(contextlib.nullcontext)

        @staticmethod
        def update(net, loss, batch):
            return loss.item()

    return S()


def garbled(model, keep):
    """`model` whose outputs are noise wherever `keep(inputs)` is False."""
    import torch

    class Garbled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            out = self.model(*inputs)
            noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)) * 100
            return torch.where(keep(inputs)[..., None], out, noise)

    return Garbled()


def test_the_loss_is_the_chosen_positions_alone(masked_run) -> None:
    """A network whose outputs at every position not chosen are garbage has the same training and validation loss;
    garbage at a chosen position changes it."""
    import torch

    from udlc.compiler.lower import lower

    compiled, task, state, batch = masked_run
    model = lower(compiled.graphs[state.net], seed=0).eval()  # no dropout: the same outputs on each call
    chosen = batch["chosen"]
    assert 0 < int(chosen.sum()) < chosen.numel()
    same = garbled(model, lambda inputs: chosen)
    other = garbled(model, lambda inputs: ~chosen)
    loss = task.train_step(fake_setup(model, state), batch)[0]["loss"]
    assert task.train_step(fake_setup(same, state), batch)[0]["loss"] == pytest.approx(loss, abs=1e-6)
    assert abs(task.train_step(fake_setup(other, state), batch)[0]["loss"] - loss) > 1.0

    val = task.batches(state, "val", batch_size=8, shuffle=False, device=torch.device("cpu"))
    masks = [b["chosen"] for b in val.epoch_batches(None)]
    assert all(torch.equal(a, b["chosen"]) for a, b in zip(masks, val.epoch_batches(None)))  # the same each time
    lookup = iter(masks)
    tokens_at = garbled(model, lambda inputs: next(lookup))
    assert task.evaluate(fake_setup(tokens_at, state), val)["loss"] == pytest.approx(
        task.evaluate(fake_setup(model, state), val)["loss"], abs=1e-5)


# ---- special tokens and sentence pairs --------------------------------------------------------------------------


def test_special_tokens_follow_the_base_ids_and_come_back_from_json() -> None:
    from udlc.data.specials import BERT_SPECIALS, SPAN_SPECIALS
    from udlc.data.tokens import SpecialTokenizer
    from udlc.data.text import ByteTokenizer, tokenizer_from_json

    tok = SpecialTokenizer(ByteTokenizer(), BERT_SPECIALS)
    assert tok.vocab_size == 259 and [tok.id(s) for s in BERT_SPECIALS] == [256, 257, 258]
    assert tok.encode("a[MASK]é").tolist() == [97, 258, 0xC3, 0xA9]  # é: two bytes, decoded together
    assert tok.decode([97, 258, 0xC3, 0xA9]) == "a[MASK]é"
    again = tokenizer_from_json(tok.to_json())
    assert again.encode("x[SEP]").tolist() == [120, 257] and again.vocab_size == 259
    t5 = SpecialTokenizer(ByteTokenizer(), SPAN_SPECIALS)  # T5's sentinels last, <extra_id_0> on the last id
    assert t5.id("<extra_id_0>") == t5.vocab_size - 1 == 357 and t5.id("<extra_id_1>") == 356
    assert t5.encode("<extra_id_10>").tolist() == [t5.id("<extra_id_10>")]  # not <extra_id_1> and "0>"


def test_a_pair_is_cls_first_sep_second_sep_with_types_0_then_1() -> None:
    from udlc.data.pairs import encode_pair
    from udlc.data.specials import BERT_SPECIALS
    from udlc.data.tokens import SpecialTokenizer
    from udlc.data.text import ByteTokenizer

    tok = SpecialTokenizer(ByteTokenizer(), BERT_SPECIALS)
    ids, types = encode_pair(tok, "hi", "yo", 16)
    assert ids.tolist() == [256, ord("h"), ord("i"), 257, ord("y"), ord("o"), 257]
    assert types.tolist() == [0, 0, 0, 0, 1, 1, 1]
    ids, types = encode_pair(tok, "abcdef", "xy", 8)  # 5 places for 8 tokens: the longer text loses 3 at its end
    assert ids.tolist() == [256, *b"abc", 257, *b"xy", 257] and types.tolist() == [0] * 5 + [1] * 3


# ---- T5's span corruption ---------------------------------------------------------------------------------------


def test_span_corruption_of_t5s_example_by_hand() -> None:
    """The paper's example: "Thank you for inviting me to your party last week ." with "for inviting" and "last"
    hidden."""
    import torch

    from udlc.data.masking import corrupt

    words = "Thank you for inviting me to your party last week .".split()
    ids = torch.arange(len(words))
    noise = torch.tensor([w in ("for", "inviting", "last") for w in words])
    x0, x1, eos = 100, 99, 101
    source, target = corrupt(ids, noise, [x0, x1, 98], eos)
    name = dict(enumerate(words)) | {x0: "<X>", x1: "<Y>", 98: "<Z>", eos: "</s>"}
    assert [name[int(i)] for i in source] == "Thank you <X> me to your party <Y> week . </s>".split()
    # the target numbers the clean spans (T5's noise_span_to_unique_sentinel of the clean mask): the paper's <Z>
    assert [name[int(i)] for i in target] == "<X> for inviting <Y> last <Z> </s>".split()


def test_span_noise_has_t5s_counts_and_a_fixed_generator_gives_a_fixed_pair() -> None:
    import torch

    from udlc.data.masking import corrupt, noise_mask, span_counts

    assert span_counts(568, 0.15, 3) == (85, 28)  # T5's default: 568 tokens → a 512-token source, 114 to write
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        mask = noise_mask(40, 0.15, 3, g)
        runs = int((mask[1:] & ~mask[:-1]).sum()) + int(mask[0])
        assert int(mask.sum()) == 6 and runs == 2 and not mask[0] and mask[-1]  # clean first, noise last
    mask = noise_mask(20, 0.15, 3, torch.Generator().manual_seed(0))
    assert mask.nonzero().flatten().tolist() == [17, 18, 19]  # 3 noise tokens in 1 span, drawn from seed 0
    source, target = corrupt(torch.arange(10, 30), mask, [99], 1)
    assert source.tolist() == list(range(10, 27)) + [99, 1] and target.tolist() == [99, 27, 28, 29, 1]


# ---- the mistakes `check` refuses, at their lines -------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path) -> list:
    with pytest.raises(SpecErrors) as e:
        compile_spec(path)
    return e.value.errors


def test_a_mask_rate_out_of_range_is_refused_at_its_line(tmp_path: Path) -> None:
    text = (CONTRACT / "masked_language_model.yaml").read_text().replace(
        "task: {masked_language_model: {context: 16}}", "task:\n  masked_language_model:\n    context: 16\n"
        "    mask_rate: 1.5")
    (e,) = refused(write(tmp_path, "s.yaml", text))
    assert e.span.line == text.splitlines().index("    mask_rate: 1.5") + 1 and "must be < 1.0 (got 1.5)" in e.message


def test_a_pair_csv_without_its_second_column_is_refused_at_the_column(tmp_path: Path) -> None:
    write(tmp_path, "pairs.csv", "premise,hypothesis,label\na b,c d,yes\ne f,g h,no\n")
    text = (CONTRACT / "sequence_classification.yaml").read_text().replace(
        "data: {source: lines.csv, text: line, target: kind, tokenizer: char, split: [0.7, 0.15, 0.15]}",
        "data:\n  source: pairs.csv\n  text: [premise, hypotheses]\n  target: label")
    (e,) = refused(write(tmp_path, "s.yaml", text))
    assert e.span.line == text.splitlines().index("  text: [premise, hypotheses]") + 1
    assert "no column 'hypotheses'" in e.message and "hypothesis" in e.hint


def test_span_corruption_on_a_network_that_is_no_encoder_decoder_is_refused(tmp_path: Path) -> None:
    text = (CONTRACT / "language_model.yaml").read_text().replace(
        "task: {language_model: {context: 16}}", "task: {span_corruption: {context: 16}}").replace(
        "  input: {shape: [T], dtype: int64}", "  inputs:\n    ids: {shape: [T], dtype: int64}").replace(
        "{num_embeddings: 256,", "{from: ids, num_embeddings: 256,")
    errors = refused(write(tmp_path, "s.yaml", text))
    assert any("no field of a seq2seq batch" in e.message and e.span.line == text.splitlines().index(
        "    ids: {shape: [T], dtype: int64}") + 1 for e in errors)
    assert any("must read `source`" in e.message for e in errors)


def test_a_masked_model_of_the_wrong_width_is_refused_at_its_last_layer(tmp_path: Path) -> None:
    text = (CONTRACT / "masked_language_model.yaml").read_text().replace("num_embeddings: 259", "num_embeddings: 256")
    errors = refused(write(tmp_path, "s.yaml", text))
    assert any("259 tokens" in e.message and e.hint == "end with `linear: 259`" for e in errors)


# ---- the zoo's BERT and T5 ----------------------------------------------------------------------------------------


def shallow(name: str) -> list[str]:
    """Overrides that repeat every repeated block once (as tests/test_zoo_transformers.py's zoo_graph does)."""
    import yaml

    layers = yaml.safe_load((ZOO / f"{name}.yaml").read_text())["model"]["layers"]
    return [f"model.layers[{i}].{op}.repeat=1" for i, layer in enumerate(layers) if isinstance(layer, dict)
            for op, arg in layer.items() if isinstance(arg, dict) and "repeat" in arg]


def test_bert_base_and_t5_small_pass_check_with_their_objectives() -> None:
    bert, t5 = compile_spec(ZOO / "bert_base.yaml"), compile_spec(ZOO / "t5_small.yaml")
    assert bert.task.name == "masked_language_model" and bert.graph.total_params == 109_514_298
    assert bert.graph.output_shapes == [("T", 30522)]
    assert t5.task.name == "span_corruption" and t5.graph.total_params == 60_506_624
    assert t5.task.counts()[2:] == (512, 114)


@pytest.mark.long
@pytest.mark.parametrize("name,task", [("bert_base", "masked_language_model"), ("t5_small", "span_corruption")])
def test_bert_base_and_t5_small_train_a_step_at_a_shallow_size(name: str, task: str, tmp_path: Path,
                                                               one_torch_thread) -> None:
    from udlc.trainer.run import train_spec

    overrides = shallow(name) + [f"task.{task}.context=24", "data.max_chars=3000", "train.epochs=1",
                                 "train.batch_size=64", "train.checkpoint_seconds=0"]
    run = train_spec(compile_spec(ZOO / f"{name}.yaml", overrides), out=tmp_path, quiet=True)
    assert (run / "checkpoints" / "last.safetensors").is_file()


# ---- sentence pairs and text to text, trained, exported and answered ----------------------------------------------

PAIRS_SPEC = """udlc: 1
name: pairs
seed: 0
task: {sequence_classification: {max_tokens: 24}}
data: {source: pairs.csv, text: [first, second], target: label, tokenizer: char, split: [0.6, 0.2, 0.2]}
model:
  inputs:
    tokens: {shape: [T], dtype: int64}
    tokens_mask: {shape: [T], dtype: bool}
    token_types: {shape: [T], dtype: int64}
  init: normal
  layers:
    - embedding: {num_embeddings: VOCAB, embedding_dim: 16, from: tokens}
    - learned_positions: {max_len: 24, id: chars}
    - embedding: {num_embeddings: 2, embedding_dim: 16, from: token_types, id: types}
    - add: {from: [chars, types], id: embedded}
    - masked_transformer_encoder_block_pre_norm: {from: [embedded, tokens_mask], d_model: 16, num_heads: 2, d_ff: 32}
    - layernorm
    - select: 0
    - linear: 2
loss: cross_entropy
optimizer: {adamw: {lr: 0.003}}
train: {epochs: 1, batch_size: 16, checkpoint_seconds: 0}
"""


def pair_rows(n: int = 40) -> str:
    words = ["cat", "dog", "sun", "map", "red", "box"]
    rows = [f"{a},{b},{'same' if a == b else 'different'}" for i in range(n)
            for a, b in [(words[i % 6], words[(i * 7 // 3) % 6])]]
    return "first,second,label\n" + "\n".join(rows) + "\n"


@pytest.mark.long
def test_sentence_pairs_train_export_and_udlc_predict_reads_a_csv_of_pairs_without_torch(tmp_path: Path, invoke
                                                                                      ) -> None:
    import subprocess
    import sys

    from udlc.exporter.onnx import export_run
    from udlc.trainer.run import train_spec

    write(tmp_path, "pairs.csv", pair_rows())
    vocab = len(set(pair_rows().split("\n", 1)[1].replace(",same", "").replace(",different", "").replace(",", "\n")))
    spec = write(tmp_path, "pairs.yaml", PAIRS_SPEC.replace("VOCAB", str(vocab + 1 + 3)))  # chars, unknown, specials
    run = train_spec(compile_spec(spec), out=tmp_path / "runs", quiet=True)
    model = export_run(run)
    asked = write(tmp_path, "ask.csv", "second,first\nsun,sun\nbox,cat\nred,red\n")
    probe = ("import sys\nfrom udlc.runtime.readers import open_reader\n"
             f"print(open_reader({str(model)!r}, 'predict').answer_file({str(asked)!r}), end='')\n"
             "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("line,")
    missing = write(tmp_path, "one.csv", "first\nsun\n")
    result = invoke("predict", model, missing)
    assert result.returncode != 0 and "second" in result.stderr


@pytest.mark.long
def test_text_to_text_from_a_csv_maps_a_source_to_its_target_with_udlc_generate(tmp_path: Path, invoke) -> None:
    """A CSV of words and their reversals, learned by heart: `udlc generate` on a source prints its target."""
    from udlc.exporter.onnx import export_run
    from udlc.trainer.run import train_spec

    words = ["cat", "dog", "sun", "map", "red", "box", "owl", "fig"]
    write(tmp_path, "words.csv", "word,reversed\n" + "".join(f"{w},{w[::-1]}\n" for w in words * 4))
    text = (CONTRACT / "seq2seq.yaml").read_text().replace(
        "data: {source: reverse, samples: 300, split: [0.8, 0.1, 0.1]}",
        "data: {source: words.csv, text: word, target: reversed, tokenizer: char, split: [0.9, 0.1, 0.0]}").replace(
        "num_embeddings: 13", "num_embeddings: 23").replace("linear: 13", "linear: 23").replace(
        "epochs: 2, batch_size: 64", "epochs: 150, batch_size: 32")
    spec = write(tmp_path, "t2t.yaml", text)  # 20 characters, the unknown one, <bos>, <eos>: 23 ids
    run = train_spec(compile_spec(spec), out=tmp_path / "runs", quiet=True)
    model = export_run(run)
    for word in ("cat", "owl"):
        result = invoke("generate", model, "--prompt", word)
        assert result.returncode == 0 and result.stdout.strip() == word[::-1], result.stderr
