"""Sequence layers by value: embedding (and its padding row), patch_embed, transpose, permute, select, cls_token,
mean, rmsnorm; and a token-id spec through the compiler. The registry-wide tests (tests/test_layers.py,
tests/test_export.py) check their shapes, parameters, FLOPs and ONNX export; these check what they compute."""

from __future__ import annotations

import pytest

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors
from udlc.layers import REGISTRY, ShapeError


def build(name: str, args: dict, *shapes: tuple):
    lt = REGISTRY[name]
    return lt.build(lt.config.model_validate(args), *shapes)


def shape_of(name: str, args: dict, *shapes: tuple) -> tuple:
    lt = REGISTRY[name]
    return lt.shape(lt.config.model_validate(args), *shapes)


def compile_model(model: str):
    return resolve_text(f"udlc: 1\nname: t\ndata: {{source: digits}}\nloss: mse\nmodel:\n{model}", "t.yaml")


# ---- embedding ------------------------------------------------------------------------------------


def test_embedding_looks_up_rows_as_torch_does() -> None:
    import torch

    layer = build("embedding", {"embedding_dim": 4, "num_embeddings": 10}, (3,))
    reference = torch.nn.Embedding(10, 4)
    reference.load_state_dict(layer.state_dict())
    ids = torch.tensor([[0, 9, 3], [3, 3, 1]])
    out = layer(ids)
    assert out.shape == (2, 3, 4) and out.dtype == torch.float32
    assert torch.equal(out, reference(ids))
    assert torch.equal(out[1, 0], layer.weight[3])  # row 3 of the table, for id 3


def test_padding_row_starts_at_zero_and_is_never_trained() -> None:
    import torch

    layer = build("embedding", {"embedding_dim": 3, "num_embeddings": 5, "padding_idx": 2}, (4,))
    assert torch.equal(layer.weight[2], torch.zeros(3)) and layer.weight[0].abs().sum() > 0
    layer(torch.tensor([[2, 0, 2, 4]])).pow(2).sum().backward()
    grad = layer.weight.grad
    assert torch.equal(grad[2], torch.zeros(3))  # the padding id was looked up twice, yet gets no gradient
    assert grad[0].abs().sum() > 0 and grad[4].abs().sum() > 0


def test_padding_idx_must_be_an_id_of_the_vocabulary() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="padding_idx 5 is not an id of the vocabulary"):
        REGISTRY["embedding"].config.model_validate({"embedding_dim": 3, "num_embeddings": 5, "padding_idx": 5})


def test_float_input_to_an_embedding_is_refused_at_its_line() -> None:
    with pytest.raises(SpecErrors) as info:
        compile_model("  input: [T]\n  layers:\n    - relu\n    - embedding: {embedding_dim: 8, num_embeddings: 100}\n")
    (err,) = info.value.errors
    assert "expects int64 token ids but gets float32" in err.message
    assert "dtype: int64" in err.hint
    assert err.span.line == 9  # the embedding's line, not the input's


def test_token_ids_compile_through_cls_token_and_select_with_symbolic_shapes() -> None:
    graph = compile_model("""\
  input: {shape: [T], dtype: int64}
  layers:
    - embedding: {embedding_dim: 16, num_embeddings: 1000, id: tokens}
    - cls_token
    - select: 0
""").graph
    assert graph.inputs == {"x": ("T",)} and graph.symbols == ["T"]
    assert [(n.op, n.shape) for n in graph.nodes.values()] == [
        ("embedding", ("T", 16)), ("cls_token", ("T+1", 16)), ("select", (16,))]
    assert [n.params for n in graph.nodes.values()] == [1000 * 16, 16, 0]


def test_a_linear_tied_to_an_embedding_shares_its_table() -> None:
    import torch

    from udlc.compiler.lower import lower

    graph = compile_model("""\
  input: {shape: [T], dtype: int64}
  layers:
    - embedding: {embedding_dim: 8, num_embeddings: 50, id: tokens}
    - layernorm
    - linear: {tie: tokens, id: logits}
""").graph
    assert graph.nodes["logits"].shape == ("T", 50)
    assert graph.nodes["logits"].params == 50  # the bias only: the weight is counted once, in the embedding
    module = lower(graph, seed=0)
    assert module.logits.weight is module.tokens.weight
    assert module(torch.tensor([[1, 2, 3]])).shape == (1, 3, 50)


# ---- patch_embed ----------------------------------------------------------------------------------


def test_patch_embed_projects_each_patch_row_by_row() -> None:
    import torch

    d, p = 5, 2
    layer = build("patch_embed", {"embed_dim": d, "patch_size": p}, (3, 8, 8))
    assert shape_of("patch_embed", {"embed_dim": d, "patch_size": p}, (3, 8, 8)) == (16, d)
    image = torch.randn(1, 3, 8, 8)
    out = layer(image)
    assert out.shape == (1, 16, d)
    kernel, bias = layer.proj.weight, layer.proj.bias  # (d, 3, p, p), (d,)
    for n in range(16):
        row, col = divmod(n, 8 // p)  # patches are numbered along each row first
        patch = image[0, :, row * p:(row + 1) * p, col * p:(col + 1) * p]
        expected = (kernel * patch).sum(dim=(1, 2, 3)) + bias
        torch.testing.assert_close(out[0, n], expected)


def test_patch_embed_refuses_sizes_the_patch_does_not_divide() -> None:
    with pytest.raises(ShapeError) as info:
        shape_of("patch_embed", {"embed_dim": 4, "patch_size": 3}, (3, 9, 8))
    assert "patch_size 3 does not divide the height and width of the input (3, 9, 8)" in info.value.message
    with pytest.raises(ShapeError, match=r"expects input \(channels, height, width\)"):
        shape_of("patch_embed", {"embed_dim": 4, "patch_size": 2}, (8, 8))


# ---- moving and picking axes ----------------------------------------------------------------------


def test_transpose_and_permute_move_values_with_their_axes() -> None:
    import torch

    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # batch 2, samples (3, 4, 5)
    assert torch.equal(build("transpose", {"dims": [0, 2]}, (3, 4, 5))(x), x.transpose(1, 3))
    assert torch.equal(build("transpose", {"dims": [-1, -2]}, (3, 4, 5))(x), x.transpose(2, 3))
    out = build("permute", {"dims": [1, 2, 0]}, (3, 4, 5))(x)
    assert out.shape == (2, 4, 5, 3) and out[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert shape_of("transpose", {"dims": [0, 1]}, (7, 6)) == (6, 7)


def test_select_takes_one_position_and_removes_its_axis() -> None:
    import torch

    x = torch.arange(2 * 3 * 4).reshape(2, 3, 4)  # batch 2, samples (3, 4)
    assert torch.equal(build("select", {"index": 0}, (3, 4))(x), x[:, 0])
    assert torch.equal(build("select", {"index": -1}, (3, 4))(x), x[:, 2])
    assert torch.equal(build("select", {"index": 1, "dim": 1}, (3, 4))(x), x[:, :, 1])
    assert shape_of("select", {"index": -1}, (3, 4)) == (4,)


def test_cls_token_prepends_one_learned_vector() -> None:
    import torch

    layer = build("cls_token", {}, (3, 4))
    x = torch.randn(2, 3, 4)
    out = layer(x)
    assert out.shape == (2, 4, 4)
    assert torch.equal(out[:, 1:], x)  # the sequence follows, unchanged
    assert torch.equal(out[0, 0], layer.token) and torch.equal(out[1, 0], layer.token)  # the same token for all
    out[:, 0].sum().backward()
    assert torch.equal(layer.token.grad, torch.full((4,), 2.0))  # learned: one gradient per sample


def test_mean_averages_one_axis() -> None:
    import torch

    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(build("mean", {"dim": 0}, (3, 4))(x), x.mean(dim=1))
    assert build("mean", {"dim": -1, "keepdim": True}, (3, 4))(x).shape == (2, 3, 1)


@pytest.mark.parametrize("name,args,shape,text", [
    ("transpose", {"dims": [0, -2]}, (3, 4), "dims [0, -2] name the same axis of the input (3, 4)"),
    ("transpose", {"dims": [0, 2]}, (3, 4), "dims 2 is out of range for the input (3, 4)"),
    ("permute", {"dims": [1, 0]}, (3, 4, 5), "has 2 axes, but the input (3, 4, 5) has 3"),
    ("permute", {"dims": [1, -1]}, (3, 4), "names an axis twice"),  # -1 is axis 1
    ("select", {"index": 3}, (3, 4), "index 3 is out of range for axis 0 of the input (3, 4)"),
    ("select", {"index": -5, "dim": 1}, (3, 4), "index -5 is out of range for axis 1"),
    ("cls_token", {}, (8,), "expects input (length, features) but gets (8,)"),
    ("mean", {"dim": 1}, (8,), "dim 1 is out of range for the input (8,)"),
])
def test_bad_axes_raise_shape_errors(name: str, args: dict, shape: tuple, text: str) -> None:
    with pytest.raises(ShapeError) as info:
        shape_of(name, args, shape)
    assert text in info.value.message


def test_select_on_a_symbolic_input_speaks_of_the_symbol() -> None:
    graph = compile_model("  input: [T, 4]\n  layers: [{select: {index: -1, dim: 1}}]\n").graph
    assert graph.nodes["select"].shape == ("T",)
    with pytest.raises(SpecErrors) as info:
        compile_model("  input: [T, 4]\n  layers: [{select: {index: 4, dim: 1}}]\n")
    (err,) = info.value.errors
    assert "index 4 is out of range for axis 1 of the input (T, 4)" in err.message


# ---- rmsnorm --------------------------------------------------------------------------------------


def test_rmsnorm_is_the_formula() -> None:
    import torch

    layer = build("rmsnorm", {"eps": 1e-3}, (3, 6))
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, 6))  # not all ones, so the scale shows
    x = torch.randn(2, 3, 6)
    expected = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-3) * layer.weight
    torch.testing.assert_close(layer(x), expected)
    bare = build("rmsnorm", {"elementwise_affine": False}, (6,))
    assert list(bare.parameters()) == []
    torch.testing.assert_close(bare(x[:, 0]).pow(2).mean(dim=-1), torch.ones(2), atol=1e-4, rtol=0)
