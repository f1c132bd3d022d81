"""torch.onnx.export rebuilds its registry of ~500 torchlib functions on every call (1 to 2 s here), and torch.export
lists the composite ops it may keep on every call too. conftest.py calls `cache_torchlib_registry` before each test
once torch is imported, so every ONNX export in a test process after the first reuses both; modules that export many
files also ask for `fast_exporter` (one torch thread). Test speed only: the registry is the same, nothing in udlc adds
to it (no custom translation table), and the op list is kept per set of op namespaces."""

from __future__ import annotations

import pytest

_cached = False


def cache_torchlib_registry() -> None:
    """Build the exporter's torchlib registry once per opset for the rest of this process (idempotent)."""
    global _cached
    if _cached:
        return
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:  # another torch (or torch blocked for this test): export at its own speed
        return
    _cached = True
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        return
    cache: dict = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original.__func__(cls, *args, **kwargs)
        return cache[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    _cache_composite_ops()


def _cache_composite_ops() -> None:
    """torch.export lists the composite ops it may keep by asking the dispatcher about every op namespace, twice an
    export (about 0.1 s each here). The answer changes only when ops are registered: kept per set of namespaces."""
    import torch

    try:
        from torch._export import utils
        from torch.export import decomp_utils, exported_program
    except ImportError:
        return
    original = getattr(utils, "_collect_all_valid_cia_ops", None)
    users = (utils, exported_program, decomp_utils)
    if original is None or any(getattr(m, "_collect_all_valid_cia_ops", None) is not original for m in users):
        return  # another torch: leave it be
    cache: dict = {}

    def collect():
        key = tuple(torch.ops._dir)
        if key not in cache:
            cache[key] = original()
        return cache[key]

    for module in users:
        module._collect_all_valid_cia_ops = collect


@pytest.fixture(scope="module")
def fast_exporter():
    """For a module that exports many ONNX files: the registry cached, and torch on one thread meanwhile."""
    import torch

    cache_torchlib_registry()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
