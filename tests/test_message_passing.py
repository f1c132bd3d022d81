"""The graph layers equal PyG's with the same weights, a batch of graphs equals its graphs one by one, and
renumbering the nodes renumbers the outputs (the layers see a graph, not an order)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from udlc.layers import REGISTRY  # noqa: E402


def pyg():
    """PyG's layers, imported by the test that compares with them (about 3 s of imports, torch._dynamo
    included): collecting the suite, in each xdist worker, does not pay for it."""
    return pytest.importorskip("torch_geometric.nn")


def random_graph(n: int, e: int, f: int, seed: int):
    """Node features and an edge list without self loops (as udlc.data.nodes gives them)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    src = torch.randint(0, n, (e,), generator=g)
    dst = (src + torch.randint(1, n, (e,), generator=g)) % n  # never src itself
    return x, torch.stack([src, dst])


def ours(name: str, f: int, **args):
    lt = REGISTRY[name]
    return lt.build(lt.config.model_validate(args), ("N", f), (2, "E")).eval()


def theirs(name: str, f: int, layer, **args):
    """PyG's layer of the same kind, holding our layer's weights."""
    if name == "gcn_conv":
        ref = pyg().GCNConv(f, args["out_features"])
        ref.lin.weight.data.copy_(layer.lin.weight)
        ref.bias.data.copy_(layer.bias)
    elif name == "gat_conv":
        ref = pyg().GATConv(f, args["out_features"], heads=args.get("heads", 1), concat=args.get("concat", True),
                          negative_slope=args.get("negative_slope", 0.2))
        for p in ("att_src", "att_dst", "bias"):
            getattr(ref, p).data.copy_(getattr(layer, p))
        ref.lin.weight.data.copy_(layer.lin.weight)
    elif name == "sage_conv":
        ref = pyg().SAGEConv(f, args["out_features"])
        ref.load_state_dict(layer.state_dict())
    else:
        mlp = torch.nn.Sequential(torch.nn.Linear(f, args.get("hidden") or args["out_features"]), torch.nn.ReLU(),
                                  torch.nn.Linear(args.get("hidden") or args["out_features"], args["out_features"]))
        ref = pyg().GINConv(mlp, eps=args.get("eps", 0.0))
        ref.nn.load_state_dict(layer.mlp.state_dict())  # after: GINConv re-initializes the MLP it is given
    return ref.eval()


CASES = [
    ("gcn_conv", {"out_features": 5}),
    ("gat_conv", {"out_features": 4, "heads": 3}),
    ("gat_conv", {"out_features": 4, "heads": 2, "concat": False, "negative_slope": 0.1}),
    ("sage_conv", {"out_features": 6}),
    ("gin_conv", {"out_features": 3, "hidden": 8, "eps": 0.5}),
]


@pytest.mark.parametrize("name, args", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_each_layer_equals_pyg_with_the_same_weights(name: str, args: dict) -> None:
    torch.manual_seed(0)
    layer = ours(name, 6, **args)
    ref = theirs(name, 6, layer, **args)
    for n, e, seed in ((7, 15, 0), (30, 90, 1), (5, 0, 2)):  # the last: no edges, self loops only
        x, edges = random_graph(n, e, 6, seed)
        with torch.no_grad():
            got = layer(x[None], edges[None])[0]
            want = ref(x, edges)
        assert torch.allclose(got, want, atol=1e-5), (n, e, (got - want).abs().max())


def test_gcn_weights_edges_as_pyg_does() -> None:
    torch.manual_seed(0)
    layer = ours("gcn_conv", 4, out_features=3)
    ref = theirs("gcn_conv", 4, layer, out_features=3)
    x, edges = random_graph(9, 20, 4, 3)
    weight = torch.rand(20) + 0.1
    with torch.no_grad():
        assert torch.allclose(layer(x[None], edges[None], weight[None])[0], ref(x, edges, weight), atol=1e-5)


@pytest.mark.parametrize("name, args", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_a_batch_of_graphs_is_its_graphs_one_by_one(name: str, args: dict) -> None:
    torch.manual_seed(0)
    layer = ours(name, 6, **args)
    graphs = [random_graph(8, 12, 6, seed) for seed in (4, 5, 6)]
    x = torch.stack([g[0] for g in graphs])
    edges = torch.stack([g[1] for g in graphs])
    with torch.no_grad():
        together = layer(x, edges)
        apart = torch.cat([layer(g[0][None], g[1][None]) for g in graphs])
    assert torch.allclose(together, apart, atol=1e-6)


@pytest.mark.parametrize("name, args", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_renumbering_the_nodes_renumbers_the_outputs(name: str, args: dict) -> None:
    torch.manual_seed(0)
    layer = ours(name, 6, **args)
    x, edges = random_graph(12, 30, 6, 7)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(8))  # new node i is old node order[i]
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(12)
    with torch.no_grad():
        before = layer(x[None], edges[None])[0]
        after = layer(x[order][None], new_id[edges][None])[0]
    assert torch.allclose(after, before[order], atol=1e-5)


@pytest.mark.parametrize("name, theirs_name", [("global_mean_pool", "global_mean_pool"),
                                               ("global_max_pool", "global_max_pool"),
                                               ("global_add_pool", "global_add_pool")])
def test_each_readout_gives_every_node_pygs_row_of_its_graph(name: str, theirs_name: str) -> None:
    lt = REGISTRY[name]
    pool = lt.build(lt.config.model_validate({}), ("N", 4), ("N",))
    batch = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2])
    h = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(0))  # two samples, same graph ids
    got = pool(h, torch.stack([batch, batch]))
    for k in range(2):
        want = getattr(pyg(), theirs_name)(h[k], batch)  # (G, 4)
        assert torch.allclose(got[k], want[batch], atol=1e-6)


WIDE = [("gcn_conv", {"out_features": 32}), ("gat_conv", {"out_features": 8, "heads": 4}),
        ("sage_conv", {"out_features": 32}), ("gin_conv", {"out_features": 32}), ("global_add_pool", {})]


@pytest.mark.slow
@pytest.mark.parametrize("name, args", WIDE, ids=[n for n, _ in WIDE])
def test_onnxruntime_sums_messages_exactly_on_many_threads(name: str, args: dict, tmp_path) -> None:
    """Many edges into few nodes, run repeatedly on onnxruntime's default thread pool: ScatterND summed such
    repeated indices wrongly on several threads, so the layers sum with ScatterElements (scatter_add)."""
    import numpy as np
    import onnxruntime as ort

    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    lt = REGISTRY[name]
    pool = name.startswith("global")
    width = 32 if pool else 16
    second = ("N",) if pool else (2, "E")
    torch.manual_seed(0)
    layer = lt.build(lt.config.model_validate(args), ("N", width), second).eval()
    inputs = [("x", ("N", width), "float32"), ("edges", second, "int64")]
    path = export_module(layer, inputs, tmp_path / "layer.onnx", OnnxExport(), symbols={"N": 2, "E": 2})
    session = ort.InferenceSession(str(path))
    worst = 0.0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 2000, width, generator=g)
        second_input = (torch.randint(0, 50, (1, 2000), generator=g) if pool else
                        torch.randint(0, 2000, (1, 2, 40000), generator=g) % torch.tensor([[[2000], [50]]]))
        with torch.no_grad():
            expected = layer(x, second_input).numpy()
        got = session.run(None, {"x": x.numpy(), "edges": second_input.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-6)))
    assert worst < 1e-4, worst
