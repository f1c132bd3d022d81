"""A fixture for test modules that export many ONNX files: `from tests.fast_export import fast_exporter`, then
`pytestmark = pytest.mark.usefixtures("fast_exporter")`."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def fast_exporter():
    """torch.onnx.export rebuilds its registry of ~500 torchlib functions on every call (about 1 s
    here); build it once per opset for the module that imports this fixture and asks for it. Test speed only:
    the registry is the same."""
    import torch

    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:  # another torch: export at its own speed
        yield
        return
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return
    cache: dict = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original.__func__(cls, *args, **kwargs)
        return cache[key]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original
        torch.set_num_threads(threads)
