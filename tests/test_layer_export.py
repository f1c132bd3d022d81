"""Every registered layer sample exports to ONNX with parity and a dynamic batch (and dynamic symbolic sizes):
a new layer type is tested by registering it with samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fast_export import fast_exporter  # noqa: F401  (a fixture: pytest finds it by name)
from udlc.layers import REGISTRY

pytestmark = pytest.mark.usefixtures("fast_exporter")


# The attention variants are one module with flags (udlc.layers.attention); exporting each takes seconds.
# `make test` exports the plain self- and cross-attention (and the task tests export causal and cached ones); the
# longer tier (`make test-all`, CI) exports every variant.
VARIANTS = {n for n in REGISTRY if "attention" in n} - {"multihead_attention", "cross_attention"}
# An export's fixed cost is most of a small layer's time, so `make test` exports the other layer types a few to a
# file: every type's samples, each compared with torch as below. The longer tier exports every type on its own too,
# for a failure that names one type.
GROUPS = 12
EVERY = sorted(set(REGISTRY) - VARIANTS)
GROUPED = [EVERY[i::GROUPS] for i in range(GROUPS)]


@pytest.mark.parametrize("names", GROUPED, ids=lambda names: "+".join(names))
def test_every_layer_type_exports_with_its_neighbours(tmp_path: Path, names: list[str]) -> None:
    exports_with_a_dynamic_batch(tmp_path, names)


@pytest.mark.long
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_layer_sample_exports_with_a_dynamic_batch(tmp_path: Path, name: str) -> None:
    exports_with_a_dynamic_batch(tmp_path, [name])


def exports_with_a_dynamic_batch(tmp_path: Path, names: list[str]) -> None:
    """All of the layer types' samples side by side in one module, exported once (an export's fixed cost is most
    of its time), each sample's outputs then compared with torch at two batch sizes and symbol sizes."""
    import onnxruntime as ort
    import torch

    from udlc.compiler.infer import bind, bindings, infer
    from udlc.exporter.onnx import export_module, smallest_sizes
    from udlc.layers.registry import random_input
    from udlc.spec.training import OnnxExport

    samples = []  # (module, its inputs' shapes and dtypes, its output shapes)
    owners = []  # the layer type of each output, for a failure's message
    for name in names:
        lt = REGISTRY[name]
        for args, shapes in lt.samples:
            cfg = lt.config.model_validate(args)
            dtypes = list(lt.sample_dtypes) + ["float32"] * (len(shapes) - len(lt.sample_dtypes))
            symbols = list(dict.fromkeys(d for s in shapes for d in s if isinstance(d, str)))
            torch.manual_seed(0)
            module = lt.build(cfg, *[bind(s, bindings(symbols)[0]) for s in shapes]).eval()
            samples.append((module, list(zip(shapes, dtypes)), infer(lt, cfg, list(shapes), dtypes)[0]))
            owners += [name] * len(samples[-1][2])

    class Samples(torch.nn.Module):
        """Every sample's module on its own inputs; their outputs in order, as one tuple."""

        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(m for m, *_ in samples)

        def forward(self, *xs):
            outs, start = [], 0
            for layer, (_, typed, _) in zip(self.layers, samples):
                out = layer(*xs[start:start + len(typed)])
                outs += list(out) if isinstance(out, tuple) else [out]
                start += len(typed)
            return tuple(outs)

    inputs = [(f"x{i}", tuple(s), d) for i, (s, d) in enumerate(t for _, typed, _ in samples for t in typed)]
    out_shapes = [s for *_, outs in samples for s in outs]
    symbols = list(dict.fromkeys(d for _, s, _ in inputs for d in s if isinstance(d, str)))
    model = Samples().eval()
    path = export_module(model, inputs, tmp_path / "layer.onnx", OnnxExport(opset=18),
                         symbols=smallest_sizes(symbols, out_shapes))  # raises on mismatch
    assert path == tmp_path / "layer.onnx" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.onnx"]  # no temporary left behind

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [n for n, *_ in inputs]
    gen = torch.Generator().manual_seed(0)
    for batch, size in ((1, 9), (5, 14)):  # two batch sizes, and two lengths of every symbol (T)
        binding = {sym: size for sym in symbols}
        xs = [random_input((batch, *bind(s, binding)), d, gen).numpy() for _, s, d in inputs]
        outs = session.run(None, {n: x for (n, *_), x in zip(inputs, xs)})
        assert [o.shape for o in outs] == [(batch, *bind(s, binding)) for s in out_shapes]
        with torch.no_grad():
            expected = model(*(torch.from_numpy(x) for x in xs))
        for i, (out, e) in enumerate(zip(outs, expected, strict=True)):
            np.testing.assert_allclose(out, e.numpy(), atol=1e-5, rtol=1e-4,
                                       err_msg=f"{owners[i]}: output {i} of {names}")
