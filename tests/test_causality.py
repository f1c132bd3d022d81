"""Causality is checked, not assumed: a model that predicts each next token (task language_model, a seq2seq
decoder) is refused by `check` where its output at position t can read a later position, at the line that
writes the offending layer; every shipped such model is causal in fact (tokens after k changed, the logits up
to k equal); and the registry's word for how each layer reads positions holds for every sample it registers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml

from tests.conftest import edited, edited_spec, refused_at, train_here, trained_network, write_spec
from udlc.compiler.causality import CAUSAL, FREE, LATER, follow
from udlc.compiler.infer import bind, bindings
from udlc.errors import SpecErrors
from udlc.layers import REGISTRY
from udlc.layers.registry import ALL, EACH, EARLIER, SHAPE, LayerConfig, LayerType, register
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parents[1]
LM_SPEC = ROOT / "tests" / "specs" / "contract" / "language_model.yaml"
LM = yaml.safe_load(LM_SPEC.read_text())
S2S_SPEC = ROOT / "tests" / "specs" / "contract" / "seq2seq.yaml"
ENCODER = {"transformer_encoder_block": {"d_model": 16, "num_heads": 2, "d_ff": 32, "repeat": 2}}


def lm_with(tmp_path: Path, block: dict, name: str = "lm.yaml") -> Path:
    """The contract language model with its gpt_block replaced by `block`."""
    layers = [*LM["model"]["layers"][:2], block, *LM["model"]["layers"][3:]]
    return write_spec(tmp_path / name, edited(LM, {"model.layers": layers, "data.max_chars": 3000,
                                                   "train.epochs": 1}))


# ---- check refuses, at the line -------------------------------------------------------------------------


def test_an_encoder_block_in_a_language_model_is_refused_at_its_line(tmp_path: Path) -> None:
    spec = lm_with(tmp_path, ENCODER)
    refused_at(spec, "transformer_encoder_block", "`causal: true` in the arguments of 'transformer_encoder_block'")
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors  # the two repetitions' attentions, written once: one error
    assert "lets position t see later positions" in e.message and e.span.file == str(spec)


def test_a_non_causal_attention_written_in_the_spec_is_refused_at_its_own_line(tmp_path: Path) -> None:
    block = {"residual": ["layernorm", {"multihead_attention": {"num_heads": 2}}]}
    refused_at(lm_with(tmp_path, block), "multihead_attention", "write `causal: true` on this attention")


def test_a_convolution_over_time_is_refused_and_names_the_layer(tmp_path: Path) -> None:
    """conv1d with padding 1 reads position t + 1. The transposes around it move T off axis 0, where the
    registry's words no longer say what happens to it: each of the three is named (and nothing else)."""
    conv = [{"transpose": [0, 1]}, {"conv1d": {"out_channels": 16, "kernel_size": 3, "padding": 1}},
            {"transpose": [0, 1]}]
    layers = [*LM["model"]["layers"][:2], *conv, *LM["model"]["layers"][2:]]
    spec = write_spec(tmp_path / "conv.yaml", edited(LM, {"model.layers": layers}))
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    lines = spec.read_text().splitlines()
    assert {e.span.line for e in info.value.errors} == {i for i, text in enumerate(lines, 1)
                                                       if "- transpose" in text or "- conv1d" in text}
    assert len(info.value.errors) == 3


def test_a_seq2seq_decoder_must_be_causal_and_its_encoder_need_not(tmp_path: Path) -> None:
    contract = yaml.safe_load(S2S_SPEC.read_text())
    layers = contract["model"]["layers"]
    # After the decoder block, an encoder block reads later target tokens: refused at its line.
    extra = {"transformer_encoder_block_pre_norm": {"d_model": 16, "num_heads": 2, "d_ff": 32}}
    bad = edited_spec(tmp_path / "s2s.yaml", S2S_SPEC, {"model.layers": [*layers[:7], extra, *layers[7:]]})
    refused_at(bad, "transformer_encoder_block_pre_norm: {d_model", "causal: true")
    # The shipped one, whose encoder blocks read the whole source, checks.
    compile_spec(S2S_SPEC)


@pytest.mark.slow
def test_with_causal_true_the_encoder_block_checks_and_trains_a_causal_model(tmp_path: Path, one_torch_thread) -> None:
    import torch

    spec = lm_with(tmp_path, {"transformer_encoder_block": {**ENCODER["transformer_encoder_block"], "causal": True}})
    compile_spec(spec)
    run = train_here(spec, tmp_path / "runs")
    assert "train_loss" in (run / "metrics.jsonl").read_text()
    tokens = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    assert_causal(trained_network(run), {"x": tokens}, "x", k=5)


# ---- every shipped model is causal in fact ------------------------------------------------------------------


def perturbed(inputs: dict, sequence: str, k: int, generator) -> dict:
    """The inputs with the tokens of `sequence` after position k changed (to other ids below the largest)."""
    import torch

    x = inputs[sequence].clone()
    later = x[:, k + 1:]
    x[:, k + 1:] = (later + torch.randint(1, 5, later.shape, generator=generator)) % int(x.max() + 1)
    return {**inputs, sequence: x}


def assert_causal(model, inputs: dict, sequence: str, k: int, causal: bool = True) -> None:
    """The logits at positions up to k do not move when the tokens after k change (those after k do)."""
    import torch

    with torch.no_grad():
        before = model(*inputs.values())
        after = model(*perturbed(inputs, sequence, k, torch.Generator().manual_seed(1)).values())
    assert not torch.allclose(before[:, k + 1:], after[:, k + 1:])  # the change reaches the model at all
    assert torch.allclose(before[:, :k + 1], after[:, :k + 1], rtol=0, atol=1e-6) is causal


def network(spec: Path, overrides: tuple[str, ...] = ()):
    """The spec's network, untrained (the model only: the task's data checks are not what is tested here)."""
    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_spec

    return lower(resolve_spec(spec, overrides).graph, seed=0).eval()


def token_inputs(graph, sequence: str, length: int) -> dict:
    """A batch of two for each input: ids that every embedding of the input has rows for, masks all true; the
    sequence `length` long, any other 7."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = {}
    for name in graph.inputs:
        n = length if name.startswith(sequence) else 7
        rows = min((node.config.num_embeddings for node in graph.nodes.values()
                    if node.op == "embedding" and name in node.inputs), default=2)
        out[name] = (torch.ones(2, n, dtype=torch.bool) if graph.input_dtypes.get(name) == "bool"
                     else torch.randint(0, rows, (2, n), generator=g))
    return out


# The tasks that predict each next token, and the input holding the tokens (None: the network's one input).
NEXT_TOKEN = {"language_model": None, "seq2seq": "decoder"}


def shipped_next_token_specs() -> list:
    """Every shipped spec of such a task (examples, the zoo, the contract test's), each zoo model at one
    repetition of every repeated block (the zoo tests' shallow depth), in the longer tier."""
    found = []
    for folder in ("examples", "examples/zoo", "tests/specs/contract"):
        for path in sorted((ROOT / folder).glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            task = doc.get("task")
            name = task if isinstance(task, str) else (task.get("type") or next(iter(task))) if task else None
            if name not in NEXT_TOKEN:
                continue
            layers = [next(iter(e.items())) if isinstance(e, dict) else (e, None) for e in doc["model"]["layers"]]
            shallow = tuple(f"model.layers[{i}].{op}.repeat=1" for i, (op, args) in enumerate(layers)
                            if folder.endswith("zoo") and isinstance(args, dict) and "repeat" in args)
            found.append(pytest.param(path, NEXT_TOKEN[name], shallow, id=f"{folder}/{path.name}",
                                      marks=[pytest.mark.long] if folder.endswith("zoo") else []))
    return found


SHIPPED = shipped_next_token_specs()


def test_the_shipped_next_token_specs_are_found() -> None:
    assert {p.id for p in SHIPPED} >= {"examples/char-lm.yaml", "examples/zoo/gpt2.yaml",
                                       "tests/specs/contract/language_model.yaml", "examples/reverse-seq2seq.yaml"}


@pytest.mark.parametrize("path,sequence,shallow", SHIPPED)
def test_every_shipped_next_token_model_is_causal(path: Path, sequence: str | None, shallow: tuple,
                                                  one_torch_thread) -> None:
    """Check accepts its network (the graph's flow is causal), and built at random, tokens after k changed,
    its logits up to k are equal."""
    from udlc.compiler.causality import causality_errors
    from udlc.compiler.pipeline import resolve_spec

    compiled = resolve_spec(path, shallow)  # the model: the zoo's data checks train a tokenizer, not tested here
    graph = compiled.graph
    sequence = sequence or next(iter(graph.inputs))
    assert causality_errors(graph, [sequence, f"{sequence}_mask"], compiled.doc, "...") == []
    assert follow(graph, [sequence]).states[graph.outputs[0]] == CAUSAL
    assert_causal(network(path, shallow), token_inputs(graph, sequence, 12), sequence, k=5)


def test_the_negative_control_an_encoder_network_reads_later_tokens(tmp_path: Path, one_torch_thread) -> None:
    """The same measure on the refused spec's network: it does see later tokens, so the test above can fail."""
    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_spec

    graph = resolve_spec(lm_with(tmp_path, ENCODER)).graph  # the model only: check refuses the task
    assert follow(graph, ["x"]).states[graph.outputs[0]] == LATER
    assert_causal(lower(graph, seed=0).eval(), token_inputs(graph, "x", 12), "x", k=5, causal=False)


# ---- the registry's words, and what the graph makes of them ------------------------------------------------


def reads(op: str, **args) -> tuple[str, ...]:
    lt = REGISTRY[op]
    return lt.reads_of(lt.config.model_validate(args), lt.arity or 2)


def test_the_words_of_a_few_layers() -> None:
    assert reads("linear", out_features=3) == reads("layernorm") == reads("gelu") == (EACH,)
    assert reads("multihead_attention", num_heads=2) == (ALL,)
    assert reads("multihead_attention", num_heads=2, causal=True) == (EARLIER,)
    assert reads("masked_multihead_attention", num_heads=2, causal=True) == (EARLIER, EARLIER)
    assert reads("cross_attention", num_heads=2) == (EACH, ALL)  # each query position, the whole memory
    assert reads("relative_position_bias", num_heads=2) == (SHAPE,)
    assert reads("concat", dim=-1) == (EACH, EACH) and reads("concat", dim=0) == (ALL, ALL)
    assert reads("softmax", dim=1) == (EACH,) and reads("softmax", dim=-1) == (ALL,)  # -1 may be T itself
    for op, args in [("conv1d", {"out_channels": 2, "kernel_size": 3}), ("global_avgpool", {}),
                     ("transpose", {"dims": [0, 1]}), ("flatten", {}), ("mean", {"dim": 0})]:
        assert reads(op, **args) == (ALL,), op


def test_a_layer_that_says_nothing_reads_every_position() -> None:
    """The safe default: a new layer is not taken for a position-wise one until it says so."""
    import inspect

    assert LayerType.__dataclass_fields__["reads"].default == ALL
    assert inspect.signature(register).parameters["reads"].default == ALL
    class Sideways(LayerConfig):
        type: Literal["test_sideways"] = "test_sideways"

    with pytest.raises(ValueError, match="reads 'sideways' is not one of"):
        register(Sideways, shape=lambda cfg, x: x, build=lambda cfg, x: None, reads="sideways", samples=[({}, ((1,),))])
    assert "test_sideways" not in REGISTRY


def test_the_graph_follows_positions_through_free_and_causal_values() -> None:
    """seq2seq: the encoder's non-causal attention leaves its memory FREE of the decoder's tokens; the decoder's
    causal attention and cross-attention keep the logits CAUSAL; with the source as the sequence, they are LATER."""
    graph = compile_spec(ROOT / "tests" / "specs" / "contract" / "seq2seq.yaml").graph
    flow = follow(graph, ["decoder", "decoder_mask"])
    assert flow.states["memory"] == FREE and flow.states[graph.outputs[0]] == CAUSAL
    assert follow(graph, ["source", "source_mask"]).states[graph.outputs[0]] == LATER


def test_an_output_that_sees_later_positions_counts_only_where_the_logits_use_it(tmp_path: Path) -> None:
    """Causal attention's weights (heads, T, T) hold no positions on axis 0, so they count as reading every token;
    a model that uses only its `out` is causal, and checks."""
    att = [{"multihead_attention_with_weights": {"num_heads": 2, "causal": True, "id": "att"}},
           {"identity": {"from": "att.out"}}]
    spec = write_spec(tmp_path / "w.yaml", edited(LM, {"model.layers": [*LM["model"]["layers"][:2], *att,
                                                                        *LM["model"]["layers"][3:]]}))
    graph = compile_spec(spec).graph
    flow = follow(graph, ["x"])
    assert (flow.states["att.out"], flow.states["att.weights"]) == (CAUSAL, LATER)
    assert flow.lookahead == {"att": ["att.weights"]}


def concrete(shapes: tuple, size: int) -> list[tuple[int, ...]]:
    names = list(dict.fromkeys(d for s in shapes for d in s if isinstance(d, str)))
    return [bind(s, {n: size for n in bindings(names)[0]}) for s in shapes]


WORDED = [(name, i) for name, lt in REGISTRY.items() for i, (args, _) in enumerate(lt.samples)
          if set(lt.reads_of(lt.config.model_validate(args), len(lt.samples[i][1]))) != {ALL}]


@pytest.mark.parametrize("name,index", WORDED, ids=[f"{n}-{i}" for n, i in WORDED])
def test_each_layer_reads_positions_as_its_word_says(name: str, index: int) -> None:
    """Every registered sample of a layer that claims EACH, EARLIER or SHAPE for an input, run: with that input's
    positions after k changed (axis 0, where a sequence holds them), the outputs up to k are equal; with a SHAPE
    input's values all changed, no output moves. As udlc.compiler.causality reads the words, a float input of
    one axis holds no sequence (no features after the positions): those samples claim nothing."""
    import torch

    from udlc.layers.registry import random_input

    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    sizes = concrete(shapes, 6)
    dtypes = list(lt.sample_dtypes) + ["float32"] * (len(shapes) - len(lt.sample_dtypes))
    words = lt.reads_of(cfg, len(shapes))
    n = sizes[0][0] if sizes[0] else 0  # the positions: axis 0 of the first input
    # The inputs holding those positions as a sequence does (see the docstring); a bias (heads, T, T) does not.
    moved = [w in (EACH, EARLIER) and s[:1] == (n,) and (len(s) > 1 or d != "float32")
             for w, s, d in zip(words, sizes, dtypes)]
    torch.manual_seed(0)
    module = lt.build(cfg, *sizes).eval()
    g = torch.Generator().manual_seed(0)
    inputs = [random_input((2, *s), d, g) for s, d in zip(sizes, dtypes)]
    changed = [x.clone() for x in inputs]
    for y, move, word, d in zip(changed, moved, words, dtypes):
        if move:
            y[:, n // 2:] = random_input(tuple(y[:, n // 2:].shape), d, g)
        elif word == SHAPE:
            y.copy_(random_input(tuple(y.shape), d, g))
    with torch.no_grad():
        before, after = module(*inputs), module(*changed)
    before, after = (before, after) if lt.outputs else ((before,), (after,))
    for b, a in zip(before, after):
        if not any(moved):
            assert torch.equal(b, a)  # only SHAPE inputs changed
        elif b.dim() > 1 and b.shape[1] == n:
            torch.testing.assert_close(b[:, :n // 2], a[:, :n // 2], rtol=0, atol=1e-6)
